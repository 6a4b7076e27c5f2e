"""`cycleml` commands: train, models."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
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
    budget: Annotated[
        float | None,
        typer.Option(
            "--budget",
            min=0.001,
            help="Seconds for the whole run (candidates + tuning); "
            "default: training.tune.timeout, else picked from the data size (at most 60).",
        ),
    ] = None,
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Train the candidates, tune the best within the time budget, and register the winner."""
    proj = _project(project or _default_project())
    if as_json or not err.is_terminal:
        outcome = proj.train(problem, budget)  # no bar: JSON mode, or stderr is not a terminal
        if as_json:
            _print_json(outcome.to_dict())
            return
    else:
        outcome = _train_with_bar(proj, problem, budget)
    _print_outcome(outcome.to_dict())


def _train_with_bar(proj, problem: str, budget: float | None):
    """Train with a Rich progress bar on stderr: the step, tuning trials, best score, time left."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    proj._problem(problem)  # an unknown problem fails before the bar is drawn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task(f"{problem}: starting", total=None, detail="")
        state: dict = {}

        def on_trial(event: dict) -> None:
            if "start" not in state or state.get("algorithm") != event["algorithm"]:
                state.update(algorithm=event["algorithm"], left=event["seconds_left"])
                bar.reset(task, total=max(event["seconds_left"], 0.1))
            best = "—" if event["best"] is None else f"{event['best']:.4f}"
            state["start"] = True
            bar.update(
                task,
                description=f"{problem}: tuning {event['algorithm']}",
                completed=state["left"] - event["seconds_left"],
                detail=f"trials {event['trial']}, best {best}, {event['seconds_left']:.0f} s left",
            )

        outcome = proj.train(
            problem,
            budget,
            progress=lambda msg: bar.update(task, description=f"{problem}: {msg}"),
            on_trial=on_trial,
        )
    return outcome


def _print_outcome(data: dict) -> None:
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
            ("* " if b["chosen"] else "  ") + b["algorithm"] + (" (tuned)" if b["tuned"] else ""),
            fmt(b["valid"]),
            fmt(b["test"]),
        )
    out.print(table)
    for t in data["tuning"]:
        out.print(
            f"tuned {t['algorithm']}: {t['trials']} trials ({t['pruned']} pruned) over "
            f"{t['cv_folds']} folds in {t['seconds']:.1f} s"
            + ("" if t["kept"] else "; the defaults stayed better on the selection score")
        )
    if data["threshold"] is not None:
        out.print(f"threshold {data['threshold']:.3f}: {data['threshold_note']}")
    for note in data["notes"]:
        out.print(f"note: {escape(note)}")
    for s in data["suggestions"]:
        out.print(f"suggestion ({s['id']}): {s['title']} — {s['action']}", markup=False)
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
    table = Table("model", "stage", "algorithm", "metric", "second", "dataset", "created")
    for v in versions:
        first, second = _two_metrics(v.metrics)
        table.add_row(
            v.name,
            v.stage,
            v.algorithm,
            first,
            second,
            v.dataset_version_id,
            f"{v.created_at:%Y-%m-%d %H:%M}",
        )
    out.print(table)
    if not versions:
        out.print("no models yet: run `cycleml train PROBLEM`")


# The two figures `models list` shows, by the metrics a task has (first match wins).
_LIST_METRICS = (
    ("roc_auc", "recall"),
    ("accuracy", "f1_macro"),
    ("r2", "mae"),
    ("mae", "rmse"),
)


def _two_metrics(metrics: dict) -> tuple[str, str]:
    ranked = sorted(k for k in metrics if k.startswith(("ndcg@", "map@")))
    if ranked:
        pairs = [(ranked[0], ranked[1] if len(ranked) > 1 else "")]
    else:
        pairs = [p for p in _LIST_METRICS if p[0] in metrics]
    if not pairs:
        return "", ""
    a, b = pairs[0]
    return (
        f"{a} {_short(metrics.get(a))}",
        f"{b} {_short(metrics.get(b))}" if b and b in metrics else "",
    )


@models_app.command("show")
@command
def models_show(
    problem: Annotated[str, typer.Argument(help="Problem name.")],
    version: Annotated[int | None, typer.Argument(help="Version (default: production).")] = None,
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One version's lineage: dataset, parameters, metrics, code version, artifact."""
    mv = _project(project or _default_project()).model(problem, version)
    data = mv.to_dict()
    if as_json:
        _print_json(data)
        return
    table = Table("field", "value", title=mv.name, title_justify="left")
    for key in (
        "stage",
        "algorithm",
        "dataset_version_id",
        "code_version",
        "training_seconds",
        "artifact_sha256",
        "artifact_size",
        "threshold",
        "created_at",
    ):
        table.add_row(key, str(data[key]))
    for key, value in mv.metrics.items():
        if isinstance(value, int | float):
            table.add_row(f"test {key}", _short(value))
    for key, value in mv.params.items():
        table.add_row(f"param {key}", str(value))
    out.print(table)


@models_app.command("compare")
@command
def models_compare(
    problem: Annotated[str, typer.Argument(help="Problem name.")],
    v1: Annotated[int, typer.Argument(help="First version.")],
    v2: Annotated[int, typer.Argument(help="Second version.")],
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Two versions' metrics side by side, both scored on the same test rows."""
    result = _project(project or _default_project()).compare(problem, v1, v2)
    if as_json:
        _print_json(result)
        return
    a, b = result["versions"]
    table = Table("metric", a["model"], b["model"], title=result["basis"], title_justify="left")
    for key, value in a["metrics"].items():
        if isinstance(value, int | float):
            table.add_row(key, _short(value), _short(b["metrics"].get(key)))
    out.print(table)
    out.print(f"{result['rows']} test rows of dataset {result['dataset_version']}")


@models_app.command("promote")
@command
def models_promote(
    problem: Annotated[str, typer.Argument(help="Problem name.")],
    version: Annotated[int, typer.Argument(help="Version to promote.")],
    stage: Annotated[str, typer.Option(help="none, staging, production or archived.")] = (
        "production"
    ),
    force: Annotated[
        bool, typer.Option("--force", help="Skip the check against the champion.")
    ] = False,
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Move a version to a stage; to production only if it beats the champion (or --force)."""
    mv = _project(project or _default_project()).promote(problem, version, stage, force=force)
    if as_json:
        _print_json(mv.to_dict())
        return
    out.print(f"{mv.name} is now in {mv.stage}")


@models_app.command("export")
@command
def models_export(
    problem: Annotated[str, typer.Argument(help="Problem name.")],
    version: Annotated[int, typer.Argument(help="Version to export.")],
    to: Annotated[str, typer.Option("--to", help="Folder to write (new or empty).")],
    format: Annotated[str, typer.Option("--format", help="Export format: mlflow.")] = "mlflow",
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write a version as an MLflow pyfunc model directory."""
    path = _project(project or _default_project()).export(problem, version, to, format=format)
    if as_json:
        _print_json({"path": str(path), "format": format})
        return
    out.print(f"wrote {path} (load it with mlflow.pyfunc.load_model)")


# -- deploy ----------------------------------------------------------------------------------------
