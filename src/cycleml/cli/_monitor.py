"""`cycleml` commands: monitor."""

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
