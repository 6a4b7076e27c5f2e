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
    err,
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
        str | None,
        typer.Argument(
            help="Problem name from cycleml.yaml (omit with --reference); or `alerts` / "
            "`decisions` to list stored alerts / retrain decisions."
        ),
    ] = None,
    listed: Annotated[
        str | None,
        typer.Argument(help="With `alerts` or `decisions`: only this problem."),
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
        str | None,
        typer.Option(
            "--chunk", help="Also compare each `day`, `week` (or, log: every N rows) on its own."
        ),
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
    retrain: Annotated[
        bool,
        typer.Option(
            "--retrain", help="Problem: when the run raises an alert, train and maybe promote."
        ),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="With --retrain: retrain even without an alert.")
    ] = False,
    budget: Annotated[
        float | None, typer.Option("--budget", help="With --retrain: training seconds.")
    ] = None,
    retry: Annotated[
        bool, typer.Option("--retry", help="With `alerts`: send undelivered alerts again.")
    ] = False,
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Drift and data quality: of what PROBLEM's production model scored against its training
    data, or (--reference A --current B) of any two files or sources. `cycleml monitor alerts
    [PROBLEM]` and `cycleml monitor decisions [PROBLEM]` list alerts and retrain decisions."""
    if problem in LISTS and reference is None and current is None:
        _lists(problem, listed, project, retry=retry, as_json=as_json)
        return
    if listed is not None or retry:
        raise RequestError(
            f"unexpected {'--retry' if retry else repr(listed)}",
            hint="cycleml monitor alerts [PROBLEM] [--retry], or cycleml monitor PROBLEM",
        )
    if (force or budget is not None) and not retrain:
        raise RequestError("--force and --budget go with --retrain", hint="add --retrain")
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
            if retrain:  # issue 8: the retrain loop
                with err.status("monitoring, then retraining if an alert is raised") as status:
                    result = proj.monitor_and_retrain(
                        problem,
                        force=force,
                        budget=budget,
                        progress=lambda m: status.update(escape(m)),
                        current=scored,
                        since=since,
                        chunk=chunk,
                        html=html,
                    )
            else:
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
    _print_performance(result.get("performance"))  # monperf: performance over time
    _print_alerts(result)
    if result.get("html"):
        out.print(f"report: {result['html']}")


# -- alerts and the retrain loop (issue 8, "alerts") ----------------------------------------------
LISTS = ("alerts", "decisions")


def _lists(
    what: str, problem: str | None, project: Path | None, *, retry: bool, as_json: bool
) -> None:
    """`cycleml monitor alerts [PROBLEM] [--retry]` and `cycleml monitor decisions [PROBLEM]`."""
    if retry and what != "alerts":
        raise RequestError("--retry goes with `cycleml monitor alerts`", hint="drop --retry")
    proj = _project(project or _default_project())
    try:
        sent = proj.retry_alerts(problem) if retry else None
        rows = proj.alerts(problem) if what == "alerts" else proj.retrain_decisions(problem)
    finally:
        proj.close()
    if as_json:
        _print_json({what: rows, **({"retry": sent} if sent is not None else {})})
        return
    if sent is not None:
        out.print(
            f"webhook: {len(sent['delivered'])} delivered, {len(sent['pending'])} still pending, "
            f"{len(sent['failed'])} failed, {len(sent['not_tried'])} not tried"
        )
    if what == "alerts":
        table = Table("id", "time", "problem", "rule", "severity", "message", "webhook",
                      title="alerts (newest first)", title_justify="left")  # fmt: skip
        for a in rows:
            hook = a["webhook_status"] or "—"
            if a["webhook_status"] in ("pending", "failed"):
                hook += f" ({a['webhook_attempts']} tries: {a['webhook_error'] or ''})"
            colour = "red" if a["severity"] == "critical" else "yellow"
            table.add_row(str(a["id"]), a["created_at"][:19], escape(a["problem"]),
                          escape(a["rule"]), f"[{colour}]{a['severity']}[/]",
                          escape(a["message"]), escape(hook))  # fmt: skip
    else:
        for d in rows:
            champ, chal = d["result"].get("champion") or {}, d["result"].get("challenger") or {}
            verdict = "[green]promoted[/]" if d["promoted"] else "kept out"
            out.print(
                f"decision {d['id']} at {d['created_at'][:19]} ({escape(d['problem'])}): "
                f"{escape(chal.get('model', 'no challenger'))} {verdict}; {d['metric']} "
                f"{_short(d['challenger_score'])} vs {escape(champ.get('model', '—'))} "
                f"{_short(d['champion_score'])}, margin {_short(d['margin'])}"
            )
            out.print(f"  {escape(d['reason'] or '')}")
        if not rows:
            out.print("no retrain decisions stored yet")
        return
    out.print(table if rows else f"no {what} stored yet")


def _print_alerts(result: dict) -> None:
    for check in result.get("rules") or []:
        if check.get("note") and not check["alert"]:
            out.print(f"rule {escape(check['rule'])}: {escape(check['note'])}")
    for alert in result.get("alerts") or []:
        colour = "red" if alert["severity"] == "critical" else "yellow"
        hook = f" (webhook: {alert['webhook_status']})" if alert.get("webhook_status") else ""
        out.print(f"[{colour}]alert {alert['id']}[/]: {escape(alert['message'])}{hook}")
    retrain = result.get("retrain")
    if retrain:
        verdict = "[green]promoted[/]" if retrain.get("promoted") else "not promoted"
        if not retrain.get("retrained"):
            verdict = "not retrained"
        out.print(f"retrain: {verdict}: {escape(retrain['reason'])}")


# -- end of alerts and the retrain loop ------------------------------------------------------------


# -- performance over time (issue 8, monperf) ------------------------------------------------------


def _print_performance(perf: dict | None) -> None:
    """Per chunk: rows, labelled rows, the realised and estimated main metric, drops."""
    if not perf:
        return
    if perf.get("skipped"):
        out.print(f"performance: {escape(perf['skipped'])}")
        return
    metric = "roc_auc" if perf.get("task") == "binary" else "rmse"
    table = Table(
        "chunk",
        "rows",
        "labelled",
        f"realised {metric}",
        f"estimated {metric}",
        "dropped",
        "note",
        title=f"performance (training {metric} {_short(perf['reference'].get(metric))})",
        title_justify="left",
    )
    for chunk in perf.get("chunks") or []:
        est = chunk.get("estimated") or {}
        table.add_row(
            escape(str(chunk.get("chunk") or chunk["start"])),
            str(chunk["n"]),
            str(chunk["n_labelled"]),
            _short((chunk.get("realised") or {}).get(metric)),
            _short(est.get(metric)),
            "[red]" + escape(", ".join(chunk["dropped"])) + "[/]" if chunk.get("dropped") else "",
            escape(chunk.get("realised_note") or ""),
        )
    out.print(table)
    out.print(f"estimated: {escape(str(perf.get('estimated_status')))}")
