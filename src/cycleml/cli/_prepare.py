"""`cycleml` commands: dataset build."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from ._common import (
    JsonOpt,
    ProjectOpt,
    _default_project,
    _figures,
    _print_json,
    _project,
    command,
    dataset_app,
    err,
    out,
)


@dataset_app.command("build")
@command
def dataset_build(
    problem: Annotated[str, typer.Argument(help="Problem name from cycleml.yaml.")],
    force: Annotated[
        bool, typer.Option("--force", help="Rebuild even if this version exists.")
    ] = False,
    engine: Annotated[
        str | None,
        typer.Option(
            "--engine", help="duckdb or dask (features on a Dask cluster); default: the spec's."
        ),
    ] = None,
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Build the training set as of every cutoff and record it as a dataset version."""
    proj = _project(project or _default_project())
    with err.status(f"building the {problem} dataset"):
        version = proj.build_dataset(problem, force=force, engine=engine)
    if as_json:
        _print_json(version.to_dict())
        return
    _figures(
        f"dataset {version.id}" + (" (unchanged, reused)" if version.reused else ""),
        {
            "problem": version.problem,
            "rows": version.rows,
            "cutoffs": version.cutoffs,
            "label balance": version.label_balance,
            "features": len(version.features),
            "seconds": round(version.build_seconds, 2),
        },
    )
    for note in version.notes:
        out.print(f"note: {escape(note)}")
