"""`cycleml` commands: profile."""

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
    out,
)


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
