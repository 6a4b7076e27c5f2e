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
        heatmap=_heatmap(result.get("chunks") or []),
        chunk_notes=[
            f"{c['chunk']}: {c['skipped']}" for c in result.get("chunks") or [] if "skipped" in c
        ],
        charts=[_chart(i, r) for i, r in enumerate(rows[:CHART_FEATURES])],
        charts_left=max(len(rows) - CHART_FEATURES, 0),
        plotly_js=plotly.offline.get_plotlyjs(),
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
