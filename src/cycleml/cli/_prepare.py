"""`cycleml` commands: dataset build."""

from __future__ import annotations

from datetime import datetime
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
    app,
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


# -- `cycleml features materialize` (issue 6: the online store) ------------------------------------

features_app = typer.Typer(help="Feature vectors: the online store.", no_args_is_help=True)
app.add_typer(features_app, name="features")


@features_app.command("materialize")
@command
def features_materialize(
    problem: Annotated[str, typer.Argument(help="Problem name from cycleml.yaml.")],
    as_of: Annotated[
        datetime | None,
        typer.Option("--as-of", help="Compute the features as of this time (default: now, UTC)."),
    ] = None,
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write the latest feature vector of every eligible entity into the store's online store
    (replacing the problem's rows at once), for one-read entity predictions."""
    proj = _project(project or _default_project())
    if as_json or not err.is_terminal:
        result = proj.materialize(problem, as_of)
    else:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=err,
            transient=True,
        ) as bar:
            task = bar.add_task(f"{problem}: computing features", total=None)

            def progress(phase: str, done: int, total: int) -> None:
                bar.update(
                    task, description=f"{problem}: {phase}", completed=done, total=total or None
                )

            result = proj.materialize(problem, as_of, progress=progress)
    if as_json:
        _print_json(result)
        return
    _figures(f"online store of {problem}", result)
