"""The `cycleml` command line: parses arguments, calls :class:`cycleml.Project`, prints."""

from __future__ import annotations

import functools
import json
import os
import sys
import traceback
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ._version import __version__
from .errors import CycleMLError, RequestError

app = typer.Typer(
    name="cycleml",
    help="Carry a machine-learning problem through its whole life: data, features, models, "
    "serving, experiments, monitoring.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
dataset_app = typer.Typer(help="Training datasets (point-in-time correct).", no_args_is_help=True)
models_app = typer.Typer(help="The model registry.", no_args_is_help=True)
experiment_app = typer.Typer(help="A/B experiments.", no_args_is_help=True)
app.add_typer(dataset_app, name="dataset")
app.add_typer(models_app, name="models")
app.add_typer(experiment_app, name="experiment")

out = Console()
# Error lines are not wrapped at the terminal width, so each stays one line for grep and logs.
err = Console(stderr=True, soft_wrap=True, highlight=False)

ProjectOpt = Annotated[
    Path, typer.Option("--project", "-p", help="Project folder (holds cycleml.yaml).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")]


def _default_project() -> Path:
    return Path(os.environ.get("CYCLEML_PROJECT", "."))


DEBUG_ENV = "CYCLEML_DEBUG"
INTERNAL_EXIT = 70  # EX_SOFTWARE: a bug in cycleml rather than a user mistake


def command(fn):
    """Turn CycleMLError into `error: ...` + hint and a non-zero exit, never a traceback; any
    other exception is reported as an internal error (exit 70), with the traceback only when
    CYCLEML_DEBUG is set."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        as_json = bool(kwargs.get("as_json", False))
        try:
            return fn(*args, **kwargs)
        except CycleMLError as exc:
            _print_error(exc, as_json)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err.print("interrupted")
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort, click.exceptions.Exit, click.Abort, click.ClickException):
            raise  # typer's and click's own control flow (typer.Exit is a RuntimeError)
        except BrokenPipeError:
            raise  # the reader went away (`cycleml sources | head`): handled in main()
        except Exception as exc:
            _print_internal_error(exc, as_json)
            raise typer.Exit(INTERNAL_EXIT) from None

    return wrapper


def _print_error(exc: CycleMLError, as_json: bool) -> None:
    if as_json:
        print(json.dumps(exc.to_dict(), default=str))
        return
    err.print(f"[bold red]error:[/] {escape(exc.message)}")
    for issue in getattr(exc, "issues", []):
        err.print(f"  - {issue}", markup=False)
    if exc.hint:
        err.print(f"[bold]hint:[/] {escape(exc.hint)}")


def _print_internal_error(exc: BaseException, as_json: bool) -> None:
    detail = str(exc).strip().splitlines()
    message = f"internal error: {type(exc).__name__}: {detail[0] if detail else ''}".rstrip(": ")
    debug = bool(os.environ.get(DEBUG_ENV))
    hint = (
        "this is a bug in cycleml, not in your project; please report it with the traceback above"
        if debug
        else f"this is a bug in cycleml; rerun with {DEBUG_ENV}=1 to see the traceback, and "
        "please report it"
    )
    if debug:
        err.print("".join(traceback.format_exception(exc)), markup=False, end="")
    if as_json:
        print(json.dumps({"error": "InternalError", "message": message, "hint": hint}))
        return
    err.print(f"[bold red]error:[/] {escape(message)}")
    err.print(f"[bold]hint:[/] {escape(hint)}")


def _project(path: Path):
    from .project import Project

    return Project(path)


def _print_json(data: Any) -> None:
    print(json.dumps(data, default=_json_default, indent=2))


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def _figures(title: str, figures: dict) -> None:
    table = Table(title=title, title_justify="left", show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in figures.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={_short(v)}" for k, v in value.items())
        elif isinstance(value, list):
            value = ", ".join(str(v) for v in value) or "—"
        table.add_row(key, escape(_short(value)))
    out.print(table)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "—" if value is None else str(value)


def version_callback(value: bool) -> None:
    if value:
        print(f"cycleml {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=version_callback, is_eager=True, help="Show the version."
        ),
    ] = False,
) -> None:
    """cycleml: one tool for the whole life of a machine-learning problem."""


# -- define and collect ------------------------------------------------------------------------


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
    from ._init import init_project

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
    from .quickstart import run_quickstart

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


@app.command()
@command
def sources(project: ProjectOpt = None, as_json: JsonOpt = False) -> None:
    """List the sources with their row counts, columns and types (or why one cannot be read)."""
    infos = _project(project or _default_project()).sources()
    if as_json:
        _print_json([i.to_dict() for i in infos])
    else:
        table = Table("source", "kind", "rows", "columns", "entity", "time", "location")
        for i in infos:
            cols = (
                f"[red]{escape(i.error)}[/]"
                if i.error
                else escape(", ".join(f"{k}:{v}" for k, v in i.columns.items()))
            )
            table.add_row(
                i.name,
                i.kind,
                _short(i.rows),
                cols,
                i.entity or "",
                i.time or "",
                escape(i.location),
            )
        out.print(table)
    if any(i.error for i in infos):
        raise typer.Exit(3)


@app.command()
@command
def profile(
    source: Annotated[str | None, typer.Argument(help="One source (default: all).")] = None,
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Profile sources: per-column statistics computed in DuckDB."""
    results = _project(project or _default_project()).profile(source)
    if as_json:
        _print_json(results)
        return
    for result in results:
        table = Table(
            "column",
            "type",
            "null rate",
            "distinct",
            "min",
            "max",
            "mean",
            "top",
            title=f"{result['source']}: {result['rows']:,} rows",
            title_justify="left",
        )
        for c in result["columns"]:
            top = ", ".join(f"{t['value']} ({t['count']})" for t in c.get("top", [])[:3])
            table.add_row(
                c["name"],
                c["type"],
                f"{c['null_rate']:.1%}",
                str(c["distinct"]),
                _short(c.get("min")),
                _short(c.get("max")),
                _short(c.get("mean")),
                top,
            )
        out.print(table)


# -- prepare and train ---------------------------------------------------------------------------


@dataset_app.command("build")
@command
def dataset_build(
    problem: Annotated[str, typer.Argument(help="Problem name from cycleml.yaml.")],
    force: Annotated[
        bool, typer.Option("--force", help="Rebuild even if this version exists.")
    ] = False,
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Build the training set as of every cutoff and record it as a dataset version."""
    proj = _project(project or _default_project())
    with err.status(f"building the {problem} dataset"):
        version = proj.build_dataset(problem, force=force)
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
        out.print(f"note: {note}")


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


@app.command()
@command
def predict(
    problem: Annotated[str, typer.Argument(help="Problem name from cycleml.yaml.")],
    batch: Annotated[
        bool,
        typer.Option("--batch", help="Score every eligible entity into the predictions table."),
    ] = False,
    as_of: Annotated[
        datetime | None, typer.Option("--as-of", help="Score as of this time (default: now, UTC).")
    ] = None,
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Batch predictions with the production model into the store's predictions table."""
    if not batch:
        raise RequestError(
            "only batch scoring is available from the command line",
            hint="add --batch; for online predictions run `cycleml serve`",
        )
    proj = _project(project or _default_project())
    with err.status(f"scoring {problem}"):
        run = proj.predict_batch(problem, as_of=as_of)
    if as_json:
        _print_json(run.to_dict())
        return
    _figures(f"predictions run {run.id}", run.to_dict())


@app.command()
@command
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    project: ProjectOpt = None,
) -> None:
    """Serve online predictions (FastAPI on uvicorn). OpenAPI docs at /docs."""
    import uvicorn

    from .serve import is_loopback

    if not is_loopback(host) and not os.environ.get("CYCLEML_API_TOKEN"):
        raise RequestError(
            f"binding {host} exposes the service beyond this machine without a token",
            hint="set CYCLEML_API_TOKEN (clients then send `Authorization: Bearer <token>`), "
            "or bind 127.0.0.1",
        )
    proj = _project(project or _default_project())
    proj.store.open()
    err.print(f"serving {proj.spec.name} on http://{host}:{port} (docs at /docs)")
    uvicorn.run(proj.app(), host=host, port=port, log_level="info")


# -- experiment and monitor ------------------------------------------------------------------------


@experiment_app.command("analyze")
@command
def experiment_analyze(
    name: Annotated[str, typer.Argument(help="Experiment name from cycleml.yaml.")],
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Analyse an experiment: per-variant values, lift with confidence intervals, SRM, decision."""
    result = _project(project or _default_project()).analyze_experiment(name)
    if as_json:
        _print_json(result)
        return
    table = Table(
        "variant",
        "units",
        "metric",
        "value",
        "lift",
        "95% CI",
        "p-value",
        title=name,
        title_justify="left",
    )
    for v in result["variants"]:
        for metric, m in v["metrics"].items():
            has_ci = m.get("ci_low") is not None and m.get("ci_high") is not None
            ci = f"{m['ci_low']:+.4g} to {m['ci_high']:+.4g}" if has_ci else ""
            lift = f"{m['relative_lift']:+.2%}" if m.get("relative_lift") is not None else ""
            table.add_row(
                v["variant"],
                str(v["units"]),
                metric,
                _short(m.get("value")),
                lift,
                ci,
                _short(m.get("p_value")),
            )
    out.print(table)
    out.print(f"sample ratio check p = {_short(result['srm']['p_value'])}")
    out.print(f"[bold]decision:[/] {result['decision']}")


@app.command()
@command
def monitor(
    problem: Annotated[str, typer.Argument(help="Problem name from cycleml.yaml.")],
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Drift of the latest batch-scored inputs against the production model's training data."""
    result = _project(project or _default_project()).monitor(problem)
    if as_json:
        _print_json(result)
        return
    table = Table(
        "feature",
        "method",
        "statistic",
        "p-value",
        "drifted",
        title=f"{problem}: drift",
        title_justify="left",
    )
    for row in result["features"]:
        table.add_row(
            row["feature"],
            row.get("method", ""),
            _short(row.get("statistic")),
            _short(row.get("p_value")),
            "[red]yes[/]" if row["drifted"] else "no",
        )
    out.print(table)
    out.print(
        f"drift share {result['drift_share']:.0%}; "
        f"dataset drift: {'yes' if result['dataset_drift'] else 'no'}"
    )


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except SystemExit as exc:
        sys.exit(exc.code)
    except BrokenPipeError:
        # stdout was closed early (`cycleml sources --json | head`): exit quietly, as cat does.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(141)
    except Exception as exc:  # raised outside a command (option callbacks, typer itself)
        _print_internal_error(exc, "--json" in sys.argv[1:])
        sys.exit(INTERNAL_EXIT)
