"""The dashboard's charts: Plotly figures built from stored results, embedded as JSON.

Each chart is a dict ``{"name", "title", "json"}``; the page puts ``json`` in the chart div's
``data-figure`` attribute and ``/static/dashboard.js`` draws it with Plotly's bundled JS. A chart
is only made when there is data to draw (the callers show an empty state otherwise)."""

from __future__ import annotations

import json
import math
import re
from typing import Any

BLUE, ORANGE, GREY, RED, GREEN = "#1f5fa8", "#c2530a", "#5f6b7a", "#b3261e", "#1b7a3d"
LAYOUT = {
    "margin": {"l": 56, "r": 16, "t": 44, "b": 48},
    "height": 320,
    "autosize": True,
    "font": {"family": "system-ui, sans-serif", "size": 12, "color": "#1a1a1a"},
    "paper_bgcolor": "#ffffff",
    "plot_bgcolor": "#ffffff",
    "legend": {"orientation": "h", "y": -0.2},
    "template": "none",
}
AXIS = {"gridcolor": "#e3e6ea", "zerolinecolor": "#c5cad1", "automargin": True}


def chart_name(*parts: str) -> str:
    """A chart name: parts joined by ``-``, whitespace and quotes replaced (safe in an id)."""
    return "-".join(re.sub(r"[\s\"'<>&]+", "_", str(p)) for p in parts)


def make(name: str, traces: list, title: str, **layout: Any) -> dict:
    """The chart dict of ``traces`` (``plotly.graph_objects`` traces) and ``layout`` keys,
    built as one ``go.Figure`` (one validation pass; no default template in the JSON)."""
    go = _go()
    merged = {**LAYOUT, **layout, "title": {"text": title, "x": 0.01, "font": {"size": 14}}}
    for axis in ("xaxis", "yaxis"):
        merged[axis] = {**AXIS, **merged.get(axis, {})}
    fig = go.Figure(data=traces, layout=merged)
    return {"name": name, "title": title, "json": fig.to_json(validate=False)}


def _go():
    import plotly.graph_objects as go

    return go


def _finite(values: list) -> bool:
    return any(isinstance(v, int | float) and math.isfinite(v) for v in values)


# -- data ------------------------------------------------------------------------------------------


def missingness(source: str, columns: list[dict]) -> dict | None:
    if not columns:
        return None
    go = _go()
    bar = go.Bar(
        x=[c["name"] for c in columns],
        y=[c.get("null_rate") or 0.0 for c in columns],
        marker_color=BLUE,
        hovertemplate="%{x}: %{y:.1%} missing<extra></extra>",
    )
    return make(
        chart_name("missingness", source),
        [bar],
        f"{source}: missing values per column",
        yaxis={"range": [0, 1], "tickformat": ".0%", "title": {"text": "missing"}},
    )


def histogram(source: str, column: dict) -> dict | None:
    hist = column.get("histogram")
    if not hist or not hist.get("counts"):
        return None
    go = _go()
    if hist.get("unit") == "bin":
        edges = hist["edges"]
        x = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:], strict=False)]
        widths = [b - a for a, b in zip(edges[:-1], edges[1:], strict=False)]
        bar = go.Bar(x=x, y=hist["counts"], width=widths or None, marker_color=BLUE)
        title = f"{column['name']}: histogram"
    else:
        bar = go.Bar(x=hist["starts"], y=hist["counts"], marker_color=BLUE)
        title = f"{column['name']}: rows per {hist['unit']}"
    return make(
        chart_name("histogram", source, column["name"]),
        [bar],
        title,
        bargap=0.02,
        yaxis={"title": {"text": "rows"}},
    )


def top_values(source: str, column: dict) -> dict | None:
    top = column.get("top")
    if not top:
        return None
    go = _go()
    top = top[:15][::-1]
    bar = go.Bar(
        x=[t["count"] for t in top],
        y=[_label(t["value"]) for t in top],
        orientation="h",
        marker_color=ORANGE,
    )
    return make(
        chart_name("top-values", source, column["name"]),
        [bar],
        f"{column['name']}: top values",
        xaxis={"title": {"text": "rows"}},
        yaxis={"type": "category"},
        height=max(260, 22 * len(top) + 100),
    )


def _label(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 32 else text[:29] + "..."


# -- problem ---------------------------------------------------------------------------------------


def label_balance(rows: list[dict], numeric: bool) -> dict | None:
    """``rows``: ``{"cutoff", "rows", "value"}`` per cutoff (positive rate, or the mean label)."""
    if not rows:
        return None
    go = _go()
    name = "mean label" if numeric else "positive rate"
    x = [r["cutoff"] for r in rows]
    traces = [
        go.Bar(x=x, y=[r["rows"] for r in rows], name="rows", yaxis="y2", marker_color="#c9d6e8"),
        go.Scatter(
            x=x,
            y=[r["value"] for r in rows],
            mode="lines+markers",
            name=name,
            marker_color=BLUE,
            text=[f"{r['rows']:,} rows" for r in rows],
        ),
    ]
    return make(
        "label-balance",
        traces,
        "Label balance per cutoff",
        yaxis={"title": {"text": name}, "rangemode": "tozero"},
        yaxis2={"title": {"text": "rows"}, "overlaying": "y", "side": "right", "showgrid": False},
    )


def importance(rows: list[dict]) -> dict | None:
    if not rows:
        return None
    go = _go()
    rows = rows[:25][::-1]
    bar = go.Bar(
        x=[r["importance"] for r in rows],
        y=[r["feature"] for r in rows],
        error_x={"array": [r.get("std") or 0 for r in rows]},
        orientation="h",
        marker_color=BLUE,
    )
    return make(
        "importance",
        [bar],
        "Permutation importance (validation)",
        height=max(320, 22 * len(rows) + 100),
        xaxis={"title": {"text": "drop in the validation metric when shuffled"}},
        yaxis={"type": "category"},
    )


# -- models ----------------------------------------------------------------------------------------


def leaderboard(board: list[dict], key: str) -> dict | None:
    rows = [b for b in board if isinstance((b.get("test") or {}).get(key), int | float)]
    if not rows:
        return None
    go = _go()
    bar = go.Bar(
        x=[b["algorithm"] + (" (tuned)" if b.get("tuned") else "") for b in rows],
        y=[b["test"][key] for b in rows],
        marker_color=[GREEN if b.get("chosen") else GREY for b in rows],
        text=[f"{b['test'][key]:.4g}" for b in rows],
        textposition="auto",
    )
    return make(
        "leaderboard",
        [bar],
        f"Candidates on the test split ({key}; chosen in green)",
        yaxis={"title": {"text": f"test {key}"}},
    )


def _diagonal(name: str):
    return _go().Scatter(
        x=[0, 1], y=[0, 1], mode="lines", name=name, line={"dash": "dot", "color": GREY}
    )


def roc(curves: dict) -> dict | None:
    data = curves.get("roc")
    if not data or not data.get("fpr"):
        return None
    go = _go()
    line = go.Scatter(x=data["fpr"], y=data["tpr"], mode="lines", name="model", line_color=BLUE)
    return make(
        "roc",
        [line, _diagonal("chance")],
        "ROC curve (test)",
        xaxis={"title": {"text": "false positive rate"}},
        yaxis={"title": {"text": "true positive rate"}},
    )


def pr(curves: dict) -> dict | None:
    data = curves.get("pr")
    if not data or not data.get("recall"):
        return None
    go = _go()
    line = go.Scatter(
        x=data["recall"], y=data["precision"], mode="lines", name="model", line_color=BLUE
    )
    return make(
        "pr",
        [line],
        "Precision-recall curve (test)",
        xaxis={"title": {"text": "recall"}},
        yaxis={"title": {"text": "precision"}},
    )


def calibration(bins: list[dict]) -> dict | None:
    if not bins:
        return None
    go = _go()
    line = go.Scatter(
        x=[b["mean_predicted"] for b in bins],
        y=[b["fraction_positive"] for b in bins],
        mode="lines+markers",
        text=[f"{b['rows']} rows" for b in bins],
        name="model",
        line_color=BLUE,
    )
    return make(
        "calibration",
        [line, _diagonal("perfect")],
        "Calibration (test)",
        xaxis={"title": {"text": "mean predicted probability"}},
        yaxis={"title": {"text": "observed positive rate"}},
    )


def residuals(data: dict) -> dict | None:
    if not data or not data.get("predicted"):
        return None
    go = _go()
    points = go.Scatter(
        x=data["predicted"],
        y=data["residual"],
        mode="markers",
        marker={"size": 4, "opacity": 0.5, "color": BLUE},
    )
    return make(
        "residuals",
        [points],
        "Residuals (test)",
        xaxis={"title": {"text": "predicted"}},
        yaxis={"title": {"text": "actual - predicted"}},
    )


# -- predictions -----------------------------------------------------------------------------------


def latency(rows: list[dict]) -> dict | None:
    points = [r for r in rows if r.get("latency_ms") is not None]
    if not points:
        return None
    go = _go()
    scatter = go.Scatter(
        x=[r["created_at"] for r in points],
        y=[r["latency_ms"] for r in points],
        mode="markers",
        marker={"size": 5, "color": BLUE},
        name="request",
    )
    return make(
        "latency",
        [scatter],
        "Online prediction latency over time",
        yaxis={"title": {"text": "latency (ms)"}, "rangemode": "tozero"},
    )


# -- experiments -----------------------------------------------------------------------------------


def lift(experiment: str, result: dict) -> dict | None:
    """Relative lift of each treatment variant per metric, with its confidence interval."""
    go = _go()
    traces = []
    metrics: list[str] = []
    for variant in result.get("variants", []):
        if variant.get("control"):
            continue
        names, values, low, high = [], [], [], []
        for metric, m in (variant.get("metrics") or {}).items():
            value = m.get("relative_lift")
            if not isinstance(value, int | float) or not math.isfinite(value):
                continue
            lo, hi = m.get("relative_ci_low"), m.get("relative_ci_high")
            names.append(metric)
            values.append(value)
            low.append(value - lo if isinstance(lo, int | float) else 0)
            high.append(hi - value if isinstance(hi, int | float) else 0)
            if metric not in metrics:
                metrics.append(metric)
        if names:
            traces.append(
                go.Scatter(
                    x=values,
                    y=names,
                    mode="markers",
                    name=str(variant.get("variant")),
                    marker={"size": 11},
                    error_x={"type": "data", "symmetric": False, "array": high, "arrayminus": low},
                )
            )
    if not traces:
        return None
    zero = {"type": "line", "x0": 0, "x1": 0, "yref": "paper", "y0": 0, "y1": 1}
    return make(
        chart_name("lift", experiment),
        traces,
        f"{experiment}: relative lift with 95% confidence intervals",
        xaxis={"title": {"text": "relative lift vs control"}, "tickformat": ".0%"},
        yaxis={"type": "category"},
        shapes=[{**zero, "line": {"color": GREY, "dash": "dot"}}],
        height=max(240, 60 * len(metrics) + 140),
    )


# -- monitoring ------------------------------------------------------------------------------------


def drift_heatmap(
    problem: str, columns: list[str], features: list[str], z: list[list]
) -> dict | None:
    """``z[i][j]``: feature i's drift in column j (1 drifted, 0 not, None not compared)."""
    if not columns or not features:
        return None
    go = _go()
    heat = go.Heatmap(
        z=z,
        x=columns,
        y=features,
        colorscale=[[0, "#e8f1ea"], [1, RED]],
        zmin=0,
        zmax=1,
        showscale=False,
        xgap=1,
        ygap=1,
        hovertemplate="%{y} at %{x}: %{z}<extra></extra>",
    )
    return make(
        chart_name("drift-heatmap", problem),
        [heat],
        "Drift over time (red: drifted, green: not)",
        height=max(320, 18 * len(features) + 140),
        xaxis={"type": "category"},
        yaxis={"type": "category", "autorange": "reversed"},
    )


def distribution(problem: str, row: dict) -> dict | None:
    dist = row.get("distribution") or {}
    if not dist or not dist.get("reference"):
        return None
    go = _go()
    if "bins" in dist:
        bins = dist["bins"]
        x = [(a + b) / 2 for a, b in zip(bins[:-1], bins[1:], strict=False)]
    else:
        x = [_label(c) for c in dist.get("categories", [])]
    traces = [
        go.Bar(name="reference", x=x, y=dist["reference"], marker_color=BLUE),
        go.Bar(name="current", x=x, y=dist["current"], marker_color=ORANGE),
    ]
    stat = row.get("statistic")
    title = f"{row['feature']}: {row.get('method') or ''}"
    if isinstance(stat, int | float):
        title += f" {stat:.3g}"
    if row.get("drifted"):
        title += " (drifted)"
    return make(
        chart_name("distribution", problem, row["feature"]),
        traces,
        title,
        barmode="group",
        yaxis={"title": {"text": "share of rows"}},
    )


def performance(problem: str, chunks: list[dict], reference: dict, metric: str) -> dict | None:
    """Realised and estimated ``metric`` per chunk, with the training (test) value as a line."""
    go = _go()
    x = [str(c.get("start") or c.get("chunk") or i) for i, c in enumerate(chunks)]
    realised = [_number((c.get("realised") or {}).get(metric)) for c in chunks]
    estimated = [_number((c.get("estimated") or {}).get(metric)) for c in chunks]
    traces = []
    if _finite(realised):
        traces.append(go.Scatter(x=x, y=realised, mode="lines+markers", name="realised"))
    if _finite(estimated):
        traces.append(go.Scatter(x=x, y=estimated, mode="lines+markers", name="estimated"))
    if not traces:
        return None
    shapes = []
    value = (reference or {}).get(metric)
    if isinstance(value, int | float):
        line = {"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": value, "y1": value}
        shapes.append({**line, "line": {"color": GREY, "dash": "dot"}})
    return make(
        chart_name("performance", problem),
        traces,
        f"{metric} over time (dotted: at training)",
        yaxis={"title": {"text": metric}},
        shapes=shapes,
    )


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None
