"""`cycleml` commands: experiment analyze."""

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
    command,
    experiment_app,
    out,
)


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
