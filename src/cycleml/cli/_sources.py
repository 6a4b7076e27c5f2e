"""`cycleml` commands: sources."""

from __future__ import annotations

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
    out,
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
