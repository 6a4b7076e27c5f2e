"""The drift report: one offline HTML page (Plotly inlined, no CDN) built from the result dict of
``cycleml.monitor.compare``: the drift table (method, statistic, threshold, drifted or not), the
domain classifier, the data-quality findings, drift over time when the run was chunked, and the
reference-vs-current distribution of each feature. It shows what the JSON holds, nothing else."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from ..errors import RequestError
from ._html import fmt

_ENV = Environment(
    loader=PackageLoader("cycleml.reports", "templates"), autoescape=select_autoescape(["html"])
)
CHART_FEATURES = 200
DRIFT_COLUMNS = [
    "feature",
    "kind",
    "method",
    "statistic",
    "p-value",
    "threshold",
    "drifted",
    "note",
]


def drift_report(path: str | Path, result: dict[str, Any], title: str | None = None) -> Path:
    """Write the report of ``result`` to ``path``; returns the path."""
    import plotly.offline

    path = Path(path)
    rows = list(result["features"])
    for label in ("prediction", "target"):
        if result.get(label):
            rows.append({**result[label], "feature": f"{result[label]['feature']} ({label})"})
    domain = result.get("domain_classifier") or {}
    html = _ENV.get_template("drift.html").render(
        title=title or _title(result),
        overview=_overview(result),
        drift_columns=DRIFT_COLUMNS,
        drift_rows=[{"index": i, "cells": _cells(r)} for i, r in enumerate(rows)],
        domain=_domain_text(domain),
        domain_features=[
            (f["feature"], fmt(f["importance"])) for f in domain.get("top_features", [])
        ],
        quality=result.get("quality", []),
        heatmap=_heatmap_over_time(result.get("drift_over_time"))
        or _heatmap(result.get("chunks") or []),
        performance=_performance(result.get("performance")),
        chunk_notes=[
            f"{c['chunk']}: {c['skipped']}" for c in result.get("chunks") or [] if "skipped" in c
        ],
        charts=[_chart(i, r) for i, r in enumerate(rows[:CHART_FEATURES])],
        charts_left=max(len(rows) - CHART_FEATURES, 0),
        plotly_js=plotly.offline.get_plotlyjs(),
        alert_rules=_alert_rows(result),  # alerts (issue 8)
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(html, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise RequestError(
            f"cannot write the drift report to {path}: {exc.strerror or exc}",
            hint="pass an --html path in a folder you may write to",
        ) from None
    return path


def _title(result: dict) -> str:
    if result.get("problem"):
        return f"Drift: {result['problem']} ({result.get('model', '')})"
    ref, cur = (
        result["reference"].get("path", "reference"),
        result["current"].get("path", "current"),
    )
    return f"Drift: {cur} vs {ref}"


def _overview(result: dict) -> list[tuple[str, str]]:
    ref, cur = result["reference"], result["current"]
    ref_name = ref.get("path") or ref.get("dataset_version") or "—"
    items = [
        ("reference", f"{ref_name}: {ref['rows']:,} rows"),
        ("current", f"{cur.get('path') or cur.get('source') or '—'}: {cur['rows']:,} rows"),
        ("drifted features", f"{len(result['drifted'])} of {result['tested']} compared "
         f"({result['drift_share']:.0%}): {', '.join(result['drifted']) or '—'}"),
        ("dataset drift", "yes" if result["dataset_drift"] else "no"),
        ("drift share threshold", fmt(result["options"]["drift_share"])),
    ]  # fmt: skip
    if result.get("not_compared"):
        items.append(("not compared (timestamps)", ", ".join(result["not_compared"])))
    if result.get("created_at"):
        items.insert(0, ("run", f"{result.get('id', '—')} at {result['created_at']}"))
    return items


def _cells(row: dict) -> list[str]:
    note = row.get("skipped") or ""
    if row.get("compared_as"):
        note = (note + "; " if note else "") + f"compared as {row['compared_as']}"
    return [
        row["feature"],
        fmt(row.get("kind")),
        fmt(row.get("method")),
        fmt(row.get("statistic")),
        fmt(row.get("p_value")),
        (("p < " if row.get("score") == "p_value" else "≥ ") + fmt(row["threshold"]))
        if row.get("threshold") is not None
        else "—",
        "yes" if row.get("drifted") else "no",
        note,
    ]


def _domain_text(domain: dict) -> str:
    if not domain:
        return "Not run (domain_classifier: false)."
    if "skipped" in domain:
        return f"Skipped: {domain['skipped']}."
    verdict = "drift" if domain["drifted"] else "no drift"
    return (
        f"ROC-AUC {domain['roc_auc']:.3f} telling reference from current rows "
        f"({domain['rows']['reference']:,} + {domain['rows']['current']:,} sampled; "
        f"{domain['method']}); threshold {domain['threshold']}: {verdict}."
    )


def _figure(fig: Any) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False})


def _chart(index: int, row: dict) -> dict:
    import plotly.graph_objects as go

    dist = row.get("distribution") or {}
    out = {"index": index, "name": row["feature"], "figure": None, "note": ""}
    if not dist:
        out["note"] = row.get("skipped") or "no distribution to draw"
        return out
    if "bins" in dist:
        bins = dist["bins"]
        x = [(a + b) / 2 for a, b in zip(bins[:-1], bins[1:], strict=True)]
    else:
        x = dist["categories"]
    fig = go.Figure(
        [
            go.Bar(name="reference", x=x, y=dist["reference"], marker_color="#4c78a8"),
            go.Bar(name="current", x=x, y=dist["current"], marker_color="#f58518"),
        ]
    )
    stat = fmt(row.get("statistic"))
    fig.update_layout(
        barmode="group",
        height=300,
        margin={"t": 40, "b": 40},
        title=f"{row['feature']}: {row.get('method') or ''} {stat}"
        + (" (drifted)" if row.get("drifted") else ""),
        yaxis_title="share of rows",
    )
    if dist.get("other_categories"):
        out["note"] = f"{dist['other_categories']} less common categories not drawn"
    out["figure"] = _figure(fig)
    return out


def _heatmap(chunks: list[dict]) -> str | None:
    import plotly.graph_objects as go

    done = [c for c in chunks if "features" in c]
    if not done:
        return None
    features = list(done[0]["features"])
    z = [[1.0 if c["features"][f]["drifted"] else 0.0 for c in done] for f in features]
    text = [[fmt(c["features"][f]["statistic"]) for c in done] for f in features]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=[c["chunk"] for c in done],
            y=features,
            text=text,
            texttemplate="%{text}",
            colorscale=[[0, "#eef5ee"], [1, "#d62728"]],
            showscale=False,
            zmin=0,
            zmax=1,
        )
    )
    fig.update_layout(
        title="drifted (red) per feature and chunk; cells show the statistic",
        height=max(300, 24 * len(features) + 120),
    )
    return _figure(fig)


# -- drift and performance over time (issue 8, "monperf") ------------------------------------------


def _heatmap_over_time(over: dict | None) -> str | None:
    """Features x chunks: red where the feature drifted, grey where the chunk was skipped;
    cells show the score the threshold bounds (p-value or distance)."""
    import plotly.graph_objects as go

    if not over or not over.get("chunks") or not over.get("features"):
        return None
    z = [[None if d is None else (1.0 if d else 0.0) for d in row] for row in over["drifted"]]
    text = [[fmt(v) if v is not None else "skipped" for v in row] for row in over["values"]]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=over["chunks"],
            y=over["features"],
            text=text,
            texttemplate="%{text}",
            colorscale=[[0, "#eef5ee"], [1, "#d62728"]],
            showscale=False,
            zmin=0,
            zmax=1,
            hoverongaps=False,
        )
    )
    fig.update_layout(
        title="drifted (red) per feature and chunk; cells show the p-value or distance",
        height=max(300, 24 * len(over["features"]) + 120),
        xaxis={"type": "category"},
        yaxis={"autorange": "reversed"},  # the first feature on top, as in the tables
    )
    return _figure(fig)


PERFORMANCE_COLUMNS = ["chunk", "rows", "labelled", "realised", "estimated (interval)", "note"]


def _performance(perf: dict | None) -> dict | None:
    """The performance section: status lines, a chart of the main metric over the chunks
    (realised, estimated with its interval, the training value as a line) and a table."""
    if not perf:
        return None
    if perf.get("skipped"):
        return {"notes": [perf["skipped"]], "chart": None, "rows": []}
    metric = "roc_auc" if perf.get("task") == "binary" else "rmse"
    chunks = perf.get("chunks") or []
    notes = [
        f"labels from {perf.get('labels_from')}: {perf.get('realised_status')}",
        f"estimated (CBPE): {perf.get('estimated_status')}",
        f"a drop is flagged beyond a tolerance of {fmt(perf.get('tolerance'))}",
    ]
    rows = []
    for c in chunks:
        real = (c.get("realised") or {}).get(metric)
        est = c.get("estimated") or {}
        estimated = (
            f"{fmt(est.get(metric))} ({fmt(est.get(metric + '_low'))}–"
            f"{fmt(est.get(metric + '_high'))})"
            if est.get(metric) is not None
            else "—"
        )
        note = c.get("realised_note") or ""
        if c.get("dropped"):
            note = (note + "; " if note else "") + "dropped: " + ", ".join(c["dropped"])
        rows.append(
            [c.get("chunk") or c["start"], c["n"], c["n_labelled"], fmt(real), estimated, note]
        )
    return {
        "metric": metric,
        "notes": notes,
        "chart": _performance_chart(perf, metric),
        "columns": PERFORMANCE_COLUMNS,
        "rows": rows,
    }


def _performance_chart(perf: dict, metric: str) -> str | None:
    import plotly.graph_objects as go

    chunks = perf.get("chunks") or []
    if not chunks:
        return None
    x = [c.get("chunk") or c["start"] for c in chunks]
    real = [(c.get("realised") or {}).get(metric) for c in chunks]
    est = [(c.get("estimated") or {}).get(metric) for c in chunks]
    low = [(c.get("estimated") or {}).get(metric + "_low") for c in chunks]
    high = [(c.get("estimated") or {}).get(metric + "_high") for c in chunks]
    fig = go.Figure()
    if any(v is not None for v in est):
        fig.add_trace(go.Scatter(x=x, y=high, mode="lines", line={"width": 0}, showlegend=False))
        fig.add_trace(
            go.Scatter(
                x=x,
                y=low,
                mode="lines",
                line={"width": 0},
                fill="tonexty",
                fillcolor="rgba(245,133,24,0.2)",
                name="estimated interval",
            )
        )
        fig.add_trace(
            go.Scatter(x=x, y=est, mode="lines+markers", name="estimated", line={"dash": "dot"})
        )
    fig.add_trace(go.Scatter(x=x, y=real, mode="lines+markers", name="realised"))
    training = (perf.get("reference") or {}).get(metric)
    if training is not None:
        fig.add_hline(
            y=training,
            line={"color": "#444", "dash": "dash"},
            annotation_text=f"training {training:.3f}",
        )
    fig.update_layout(
        title=f"{metric} per chunk",
        height=360,
        margin={"t": 50, "b": 40},
        xaxis={"type": "category"},
    )
    return _figure(fig)


# -- alerts (issue 8, "alerts"): the rules checked on the run and what they raised ---------------


def _alert_rows(result: dict) -> list[dict]:
    raised = {a["rule"]: a for a in result.get("alerts") or []}
    rows = []
    for check in result.get("rules") or []:
        when = " or ".join(
            f"{side} {check[side]:g}" for side in ("above", "below") if check.get(side) is not None
        )
        window = check.get("window") or {}
        if window.get("chunks", 1) > 1:
            when += f" in {window['breaches']} of the latest {window['chunks']}"
        alert = raised.get(check["rule"])
        if alert is not None:
            outcome = f"alert {alert['id']}: {alert['message']}"
            if alert.get("webhook_status"):
                outcome += f" (webhook: {alert['webhook_status']})"
        else:
            outcome = check.get("note") or "no alert"
        values = ", ".join(f"{v['where']}: {fmt(v.get('value'))}" for v in check["values"])
        rows.append(
            {
                "rule": check["rule"],
                "metric": check["metric"],
                "when": when,
                "values": values or "—",
                "severity": check["severity"],
                "alert": alert is not None,
                "outcome": outcome,
            }
        )
    return rows
