"""`cycleml` commands: profile."""

from __future__ import annotations

from pathlib import Path
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
    out,
)


@app.command()
@command
def profile(
    source: Annotated[str | None, typer.Argument(help="One source (default: all).")] = None,
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
    html: Annotated[
        Path | None,
        typer.Option("--html", help="Also write the HTML report (all profiled sources) here."),
    ] = None,
) -> None:
    """Profile sources: semantic types, statistics, shape, correlations, cleaning suggestions.

    The HTML report of each source is also stored under .cycleml/reports/profile-SOURCE.html."""
    proj = _project(project or _default_project())
    results = proj.profile(source, html=html)
    if as_json:
        _print_json(results)
        return
    for result in results:
        title = (
            f"{result['source']}: {result['rows']:,} rows, {result['shape']}, "
            f"{result['duplicate_rows']:,} duplicate rows"
        )
        table = Table(
            "column",
            "semantic",
            "null rate",
            "distinct",
            "invalid",
            "min",
            "max",
            "mean",
            "top",
            title=title,
            title_justify="left",
        )
        for c in result["columns"]:
            top = ", ".join(f"{t['value']} ({t['count']})" for t in c.get("top", [])[:3])
            table.add_row(
                c["name"],
                c["semantic"],
                f"{c['null_rate']:.1%}",
                f"{c['distinct']:,}" + ("" if c["distinct_exact"] else "~"),
                f"{c['invalid_rate']:.1%}" if c["invalid"] else "",
                _short(c.get("min")),
                _short(c.get("max")),
                _short(c.get("mean")),
                _short(top),
            )
        out.print(table)
        for note in result["notes"] + [f"sampled: {s['statistic']}" for s in result["sampled"]]:
            out.print(f"  {escape(note)}")
        suggestions = result.get("cleaning_suggestions")
        if suggestions:
            out.print(f"  {len(suggestions)} cleaning suggestions (`cycleml clean` lists them)")
        out.print(f"  report: {proj.reports_dir / ('profile-' + result['source'] + '.html')}")
    if html is not None:
        out.print(f"report of all profiled sources: {html}")
