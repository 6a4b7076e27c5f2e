"""`cycleml` commands: init, quickstart, validate."""

from __future__ import annotations

from pathlib import Path
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
    out,
)


@app.command()
@command
def init(
    directory: Annotated[Path, typer.Argument(help="Folder to create the project in.")] = Path("."),
    demo: Annotated[
        bool, typer.Option("--demo", help="Generate the demo product and its spec.")
    ] = False,
    users: Annotated[int, typer.Option(help="Demo size: number of users.")] = 2000,
    seed: Annotated[int, typer.Option(help="Demo random seed.")] = 0,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite an existing cycleml.yaml.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create cycleml.yaml (a commented starter, or the demo product with --demo)."""
    from .._init import init_project

    result = init_project(directory, demo=demo, n_users=users, seed=seed, overwrite=force)
    if as_json:
        _print_json(result)
        return
    out.print(f"wrote {escape(result['spec'])}")
    if demo:
        out.print(f"demo data: {result['rows']} ({result['start']} to {result['end']})")
    out.print(f"next: cd {escape(str(directory))} && cycleml validate")


@app.command()
@command
def quickstart(
    directory: Annotated[Path, typer.Option("--dir", help="Folder for the demo project.")] = Path(
        "demo-project"
    ),
    users: Annotated[int, typer.Option(help="Demo size: number of users.")] = 2000,
    seed: Annotated[int, typer.Option(help="Demo random seed.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Run the whole lifecycle on the demo product: data, dataset, model, batch and online
    predictions, an experiment and a drift check."""
    from ..quickstart import run_quickstart

    titles = {
        "profile": "1. profile: the demo product's sources",
        "dataset": "2. dataset: churn labels and features as of weekly cutoffs",
        "train": "3. train: candidates compared, best registered",
        "predict": "4. predict --batch: every active user scored",
        "serve": "5. serve: one online prediction through the API (in-process)",
        "experiment": "6. experiment: retention offer, 50/50",
        "monitor": "7. monitor: scored inputs against the training data",
    }

    def show(stage: str, figures: dict) -> None:
        if not as_json:
            _figures(titles[stage], figures)
            out.print()

    if not as_json:
        out.print(f"[bold]cycleml quickstart[/] in {directory} ({users} demo users)\n")
    result = run_quickstart(directory, n_users=users, seed=seed, on_stage=show)
    if as_json:
        _print_json(result)
        return
    out.print(f"done in {result['seconds']} s. Report: [bold]{result['report']}[/]")
    out.print(f"Try: cd {directory} && cycleml models list && cycleml serve")


@app.command()
@command
def validate(project: ProjectOpt = None, as_json: JsonOpt = False) -> None:
    """Check cycleml.yaml and that every source, column and feature it names exists."""
    report = _project(project or _default_project()).validate()
    if as_json:
        _print_json(report.to_dict())
        return
    out.print(
        f"[green]ok[/]: {report.spec.name}: {len(report.sources)} source(s), "
        f"{len(report.spec.problems)} problem(s), {len(report.spec.features)} feature group(s)"
    )
