"""The `cycleml` command line: parses arguments, calls :class:`cycleml.Project`, prints."""

from __future__ import annotations

import functools
import json
import os
import traceback
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .._version import __version__
from ..errors import CycleMLError

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
    from ..project import Project

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
