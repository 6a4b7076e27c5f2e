"""`cycleml` commands: train, models."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ._common import (
    JsonOpt,
    ProjectOpt,
    _default_project,
    _print_json,
    _project,
    _short,
    app,
    command,
    err,
    models_app,
    out,
)


@app.command()
@command
def train(
    problem: Annotated[str, typer.Argument(help="Problem name from cycleml.yaml.")],
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Train the candidate algorithms, keep the best, and register it as a model version."""
    proj = _project(project or _default_project())
    with err.status(f"training {problem}") as status:
        outcome = proj.train(problem, progress=lambda msg: status.update(f"{problem}: {msg}"))
    data = outcome.to_dict()
    if as_json:
        _print_json(data)
        return
    table = Table(
        "algorithm",
        "valid",
        "test",
        title=f"{data['model']} ({data['stage']})",
        title_justify="left",
    )
    for b in data["leaderboard"]:
        fmt = lambda m: ", ".join(f"{k} {v:.3f}" for k, v in m.items() if v is not None)  # noqa: E731
        table.add_row(
            ("* " if b["chosen"] else "  ") + b["algorithm"], fmt(b["valid"]), fmt(b["test"])
        )
    out.print(table)
    if data["threshold"] is not None:
        out.print(f"threshold {data['threshold']:.3f}: {data['threshold_note']}")
    for note in data["notes"]:
        out.print(f"note: {note}")
    out.print(f"report: {data['report']}")


@models_app.command("list")
@command
def models_list(
    problem: Annotated[str | None, typer.Argument(help="Only this problem.")] = None,
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List model versions with their stage, algorithm, headline metric and lineage."""
    versions = _project(project or _default_project()).models(problem)
    if as_json:
        _print_json([v.to_dict() for v in versions])
        return
    table = Table("model", "stage", "algorithm", "roc_auc", "recall", "dataset", "created")
    for v in versions:
        table.add_row(
            v.name,
            v.stage,
            v.algorithm,
            _short(v.metrics.get("roc_auc")),
            _short(v.metrics.get("recall")),
            v.dataset_version_id,
            f"{v.created_at:%Y-%m-%d %H:%M}",
        )
    out.print(table)
    if not versions:
        out.print("no models yet: run `cycleml train PROBLEM`")


# -- deploy ----------------------------------------------------------------------------------------
