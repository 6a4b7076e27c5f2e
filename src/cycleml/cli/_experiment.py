"""`cycleml` commands: experiment analyze, experiment plan."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..errors import RequestError
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


def _pct(value: float | None) -> str:
    return f"{value:+.2%}" if value is not None else ""


@experiment_app.command("analyze")
@command
def experiment_analyze(
    name: Annotated[str, typer.Argument(help="Experiment name from cycleml.yaml.")],
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write an HTML report to this path.")
    ] = None,
    no_cache: Annotated[
        bool,
        typer.Option(
            "--no-cache",
            help="Read a served experiment's exposures from the store, not the exposures cache.",
        ),
    ] = False,
) -> None:
    """Analyse an experiment: per-variant values, lift with confidence intervals, SRM, decision."""
    from ..experiments import write_experiment_report

    with out.status(f"analysing {name}"):
        result = _project(project or _default_project()).analyze_experiment(
            name, cache=not no_cache
        )
    if html is not None:
        write_experiment_report(html, result)
    if as_json:
        _print_json(result | ({"html": str(html)} if html else {}))
        return
    confidence = f"{(1 - result['alpha']) * 100:g}%"
    table = Table(
        "variant",
        "units",
        "metric",
        "value",
        "lift",
        f"{confidence} CI",
        "always-valid CI",
        "p-value",
        title=name,
        title_justify="left",
    )
    for v in result["variants"]:
        for metric, m in v["metrics"].items():
            has_ci = m.get("relative_ci_low") is not None
            ci = f"{_pct(m['relative_ci_low'])} to {_pct(m['relative_ci_high'])}" if has_ci else ""
            seq = m.get("sequential") or {}
            always = (
                f"{_pct(seq['relative_ci_low'])} to {_pct(seq['relative_ci_high'])}"
                if seq.get("relative_ci_low") is not None
                else ""
            )
            table.add_row(
                v["variant"],
                str(v["units"]),
                metric,
                _short(m.get("value")),
                _pct(m.get("relative_lift")),
                ci,
                always,
                _short(m.get("p_value")),
            )
    out.print(table)
    for v in result["variants"]:
        for metric, m in v["metrics"].items():
            if m.get("cuped"):
                plain = m["cuped"].get("unadjusted") or {}
                unadjusted = (
                    f"; unadjusted lift {_pct(plain.get('relative_lift'))}, "
                    f"p {_short(plain.get('p_value'))}"
                    if plain
                    else ""
                )
                out.print(
                    f"CUPED {v['variant']} {metric}: variance reduced by "
                    f"{m['cuped']['variance_reduction']:.1%} (theta {m['cuped']['theta']:.4g})"
                    f"{unadjusted}"
                )
    for v in result["variants"]:  # served experiments (issue 7)
        if "exposures" in v:
            out.print(
                f"{v['variant']}: {v['units']} units, {v['exposures']} exposures, "
                f"{v['units_with_outcome']} units with an outcome event"
            )
        for worse in v.get("guardrails_worse", []):
            out.print(f"[red]guardrail worse[/] {v['variant']}: {worse}")
    srm = result["srm"]
    flag = "[red]MISMATCH[/]" if srm["mismatch"] else "ok"
    out.print(f"sample ratio check p = {_short(srm['p_value'])} ({flag})")
    for note in result.get("notes", []):
        out.print(f"note: {note}")
    out.print(f"[bold]decision:[/] {result['decision']}")
    if html is not None:
        out.print(f"report: {html}")


def _weights(text: str | None) -> dict[str, float] | list[float] | None:
    if not text:
        return None
    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        if all("=" in p for p in parts):
            return {k.strip(): float(v) for k, v in (p.split("=", 1) for p in parts)}
        return [float(p) for p in parts]
    except ValueError:
        raise RequestError(
            f"cannot read --weights {text!r}",
            hint="give shares, control first: 0.5,0.5 or control=0.5,treatment=0.5",
        ) from None


@experiment_app.command("plan")
@command
def experiment_plan(
    baseline: Annotated[
        float, typer.Option("--baseline", help="Control rate (proportion) or mean (with --std).")
    ],
    mde: Annotated[
        float | None, typer.Option("--mde", help="Effect to detect; gives the units needed.")
    ] = None,
    units: Annotated[
        int | None, typer.Option("--units", help="Total units; gives the detectable effect.")
    ] = None,
    relative: Annotated[
        bool, typer.Option("--relative", help="--mde is relative to the baseline (0.05 = +5%).")
    ] = False,
    alpha: Annotated[float | None, typer.Option("--alpha", help="Default 0.05.")] = None,
    power: Annotated[float, typer.Option("--power")] = 0.8,
    weights: Annotated[
        str | None, typer.Option("--weights", help="Shares, control first: 0.5,0.5.")
    ] = None,
    std: Annotated[
        float | None, typer.Option("--std", help="Standard deviation: plans a mean metric.")
    ] = None,
    experiment: Annotated[
        str | None,
        typer.Option("--experiment", help="Take alpha and weights from this experiment."),
    ] = None,
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Sample size for a minimum detectable effect, or the MDE of a number of units."""
    kwargs = dict(
        baseline=baseline,
        mde=mde,
        units=units,
        relative=relative,
        alpha=alpha,
        power=power,
        weights=_weights(weights),
        std=std,
    )
    if experiment is not None:
        result = _project(project or _default_project()).plan_experiment(
            experiment=experiment, **kwargs
        )
    else:
        from ..experiments import plan

        kwargs["alpha"] = 0.05 if alpha is None else alpha
        result = plan(**kwargs)
    if as_json:
        _print_json(result)
        return
    rel = result.get("mde_relative")
    effect = f"{result['mde']:+.4g}" + (f" ({rel:+.2%} relative)" if rel is not None else "")
    head = (
        f"{result['test']}, alpha {result['alpha']:g}, power {result['power']:.0%}, "
        f"baseline {result['baseline']:g}" + (f", std {std:g}" if std is not None else "")
    )
    out.print(head)
    per = ", ".join(f"{k} {n:,}" for k, n in result["units_per_variant"].items())
    if units is None:
        out.print(f"to detect {effect}: [bold]{result['total_units']:,} units[/] ({per})")
    else:
        out.print(f"with {units:,} units ({per}): minimum detectable effect [bold]{effect}[/]")


# -- served experiments (issue 7) ----------------------------------------------------------------


@experiment_app.command("assign")
@command
def experiment_assign(
    name: Annotated[str, typer.Argument(help="A served experiment from cycleml.yaml.")],
    unit: Annotated[str, typer.Argument(help="The unit (an entity id).")],
    log: Annotated[
        bool, typer.Option("--log/--no-log", help="Store the first exposure (while it runs).")
    ] = True,
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The variant (and model version) of a unit in a served experiment."""
    result = _project(project or _default_project()).assign_experiment(name, unit, log=log)
    if as_json:
        _print_json(result)
        return
    state = "running" if result["active"] else "not running: the control"
    model = result["model_version"] or "no model (baseline)"
    out.print(f"{name} {unit}: [bold]{result['variant']}[/] ({model}; {state})")
