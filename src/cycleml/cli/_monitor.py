"""`cycleml` commands: monitor (drift and data quality, of a problem or of any two tables)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from ..errors import RequestError
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


def _pairs(values: list[str] | None, what: str) -> dict[str, str]:
    pairs = {}
    for value in values or []:
        key, sep, item = value.partition("=")
        if not sep or not key or not item:
            raise RequestError(
                f"{what} {value!r} is not KEY=VALUE", hint=f"write it as {what} column=value"
            )
        pairs[key.strip()] = item.strip()
    return pairs


def _names(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


@app.command()
@command
def monitor(
    problem: Annotated[
        str | None, typer.Argument(help="Problem name from cycleml.yaml (omit with --reference).")
    ] = None,
    reference: Annotated[
        str | None,
        typer.Option("--reference", help="Ad hoc: the reference (Parquet/CSV file or source)."),
    ] = None,
    current: Annotated[
        str | None,
        typer.Option("--current", help="Ad hoc: the current data (Parquet/CSV file or source)."),
    ] = None,
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write the HTML report here.")
    ] = None,
    since: Annotated[
        datetime | None,
        typer.Option("--since", help="Problem: prediction-log rows logged since this time (UTC)."),
    ] = None,
    scored: Annotated[
        str,
        typer.Option(
            "--from", help="Problem: compare the latest `batch` run, the prediction `log`, or auto."
        ),
    ] = "auto",
    chunk: Annotated[
        str | None, typer.Option("--chunk", help="Also compare each `day` or `week` on its own.")
    ] = None,
    time_column: Annotated[
        str | None, typer.Option("--time", help="Ad hoc: the time column --chunk cuts by.")
    ] = None,
    columns: Annotated[
        str | None, typer.Option("--columns", help="Ad hoc: compare only these (a,b,c).")
    ] = None,
    exclude: Annotated[
        str | None, typer.Option("--exclude", help="Ad hoc: leave these columns out (ids...).")
    ] = None,
    method: Annotated[
        list[str] | None,
        typer.Option("--method", help="COLUMN=METHOD (ks, chi2, z, psi, jensenshannon, ...)."),
    ] = None,
    threshold: Annotated[
        list[str] | None,
        typer.Option("--threshold", help="COLUMN=VALUE or METHOD=VALUE."),
    ] = None,
    prediction: Annotated[
        str | None, typer.Option("--prediction", help="Ad hoc: a score column, compared apart.")
    ] = None,
    target: Annotated[
        str | None, typer.Option("--target", help="Ad hoc: a label column, compared apart.")
    ] = None,
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Drift and data quality: of what PROBLEM's production model scored against its training
    data, or (--reference A --current B) of any two files or sources."""
    adhoc = reference is not None or current is not None
    if adhoc and (reference is None or current is None):
        raise RequestError(
            "an ad hoc check needs both --reference and --current",
            hint="cycleml monitor --reference train.parquet --current today.parquet",
        )
    if adhoc == (problem is not None):
        raise RequestError(
            "give a PROBLEM, or --reference and --current, not both"
            if adhoc
            else "nothing to compare",
            hint="cycleml monitor PROBLEM, or cycleml monitor --reference A --current B",
        )
    if scored not in ("auto", "batch", "log"):
        raise RequestError(f"--from {scored!r} is not auto, batch or log", hint="--from log")
    if adhoc:
        result = _adhoc(
            reference,
            current,
            project,
            html=html,
            chunk=chunk,
            time_column=time_column,
            columns=_names(columns),
            exclude=_names(exclude),
            methods=_pairs(method, "--method"),
            thresholds={k: _number(v) for k, v in _pairs(threshold, "--threshold").items()},
            prediction=prediction,
            target=target,
        )
    else:
        if method or threshold or columns or exclude or prediction or target or time_column:
            raise RequestError(
                "--method, --threshold, --columns, --exclude, --prediction, --target and --time "
                "are for ad hoc checks",
                hint="for a problem, set them under monitoring: in cycleml.yaml",
            )
        proj = _project(project or _default_project())
        try:
            result = proj.monitor(problem, current=scored, since=since, chunk=chunk, html=html)
        finally:
            proj.close()
    if as_json:
        _print_json(result)
        return
    _print(result, problem or f"{current} vs {reference}")


def _number(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise RequestError(
            f"threshold {value!r} is not a number", hint="--threshold psi=0.2"
        ) from None


def _adhoc(reference: str, current: str, project: Path | None, **kwargs: Any) -> dict:
    """With a project (its cycleml.yaml), sources may be named and ``monitoring:`` applies;
    without one, files only and the default settings."""
    folder = project or _default_project()
    overrides = {k: kwargs.pop(k) for k in ("methods", "thresholds")}
    if (folder / "cycleml.yaml").exists():
        from ..monitor import DriftOptions

        proj = _project(folder)
        try:
            base = DriftOptions.from_spec(proj.spec.monitoring).to_dict()
            base["methods"] = {**base["methods"], **overrides["methods"]}
            base["thresholds"] = {**base["thresholds"], **overrides["thresholds"]}
            return proj.drift(reference, current, options=DriftOptions(**base), **kwargs)
        finally:
            proj.close()
    from ..monitor import drift

    return drift(reference, current, **overrides, **kwargs)


def _print(result: dict, title: str) -> None:
    table = Table(
        "feature",
        "kind",
        "method",
        "statistic",
        "p-value",
        "threshold",
        "drifted",
        "note",
        title=f"{escape(title)}: drift",
        title_justify="left",
    )
    rows = list(result["features"])
    for label in ("prediction", "target"):
        if result.get(label):
            rows.append({**result[label], "feature": f"{result[label]['feature']} ({label})"})
    for row in rows:
        table.add_row(
            escape(str(row["feature"])),
            row.get("compared_as") or row.get("kind") or "",
            row.get("method") or "",
            _short(row.get("statistic")),
            _short(row.get("p_value")),
            _short(row.get("threshold")),
            "[red]yes[/]" if row["drifted"] else "no",
            escape(row.get("skipped", "")),
        )
    out.print(table)
    out.print(
        f"drift share {result['drift_share']:.0%} ({len(result['drifted'])} of "
        f"{result['tested']}); dataset drift: {'yes' if result['dataset_drift'] else 'no'}"
    )
    domain = result.get("domain_classifier")
    if domain:
        if "skipped" in domain:
            out.print(f"domain classifier: skipped ({escape(domain['skipped'])})")
        else:
            top = ", ".join(f["feature"] for f in domain["top_features"][:5])
            out.print(
                f"domain classifier: ROC-AUC {domain['roc_auc']:.3f} "
                f"({'drift' if domain['drifted'] else 'no drift'}; driven by {escape(top)})"
            )
    for finding in result.get("quality", []):
        colour = "red" if finding["severity"] == "error" else "yellow"
        out.print(f"[{colour}]{finding['check']}[/]: {escape(finding['message'])}")
    for chunk in result.get("chunks") or []:
        if "skipped" in chunk:
            out.print(f"chunk {chunk['chunk']}: {escape(chunk['skipped'])}")
        else:
            drifted = ", ".join(chunk["drifted"]) or "none"
            out.print(f"chunk {chunk['chunk']}: {chunk['rows']} rows, drifted: {escape(drifted)}")
    if result.get("html"):
        out.print(f"report: {result['html']}")
