"""`cycleml clean suggest [SOURCE]` and `cycleml clean apply ID`."""

from __future__ import annotations

import json
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
    app,
    command,
    out,
)

clean_app = typer.Typer(
    help="Cleaning suggestions, and recording them as steps in cycleml.yaml.",
    no_args_is_help=True,
)
app.add_typer(clean_app, name="clean")


@clean_app.command("suggest")
@command
def suggest(
    source: Annotated[str | None, typer.Argument(help="One source (default: all).")] = None,
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Suggest cleaning steps with their evidence and a preview; nothing is changed."""
    suggestions = _project(project or _default_project()).clean_suggestions(source)
    if as_json:
        _print_json({"suggestions": suggestions})
        return
    if not suggestions:
        out.print("no cleaning suggestions: the data looks clean to the rules")
        return
    table = Table(title="cleaning suggestions", title_justify="left")
    table.add_column("id", no_wrap=True)
    table.add_column("suggestion")
    table.add_column("evidence")
    table.add_column("applies in")
    for s in suggestions:
        evidence = ", ".join(f"{k}={_brief(v)}" for k, v in s["evidence"].items())
        title = s["title"] + (f"\n[dim]{escape(s['note'])}[/]" if s.get("note") else "")
        table.add_row(escape(s["id"]), title, escape(evidence), s["applies_in"])
    out.print(table)
    out.print("record one with `cycleml clean apply ID` (it edits cycleml.yaml, never the data)")


@clean_app.command("apply")
@command
def apply(
    step_id: Annotated[str, typer.Argument(metavar="ID", help="A suggestion id.")],
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
    fingerprint: Annotated[
        str | None,
        typer.Option(
            "--fingerprint",
            help="The suggestion's data fingerprint (`clean suggest --json`): refuse if the "
            "source's data differ now. Default: the latest stored profile's.",
        ),
    ] = None,
) -> None:
    """Record a suggestion's step under `cleaning:` in cycleml.yaml."""
    result = _project(project or _default_project()).apply_cleaning(step_id, fingerprint)
    if as_json:
        _print_json(result)
        return
    out.print(escape(result["message"]))


def _brief(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."
