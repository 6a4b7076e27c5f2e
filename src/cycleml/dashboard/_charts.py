"""The dashboard's charts: Plotly figures built from stored results, embedded as JSON.

Each chart is a dict ``{"name", "title", "json"}``; the page puts ``json`` in the chart div's
``data-figure`` attribute and ``/static/dashboard.js`` draws it with Plotly's basic JS bundle
(scatter and bar traces: the drift heatmap is drawn as bar tiles). Figures are plain dicts in
Plotly's JSON schema, serialised by orjson: no ``plotly`` import or per-figure validation on the
server, and curves are rounded to what a chart can show. A chart is only made when there is data
to draw (the callers show an empty state otherwise)."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

BLUE, ORANGE, GREY, RED, GREEN = "#1f5fa8", "#c2530a", "#5f6b7a", "#b3261e", "#1b7a3d"
NOT_DRIFTED = "#8cc79c"  # heatmap tile of a feature that did not drift
LAYOUT = {
    "margin": {"l": 56, "r": 16, "t": 44, "b": 48},
    "height": 320,
    "autosize": True,
    "font": {"family": "system-ui, sans-serif", "size": 12, "color": "#1a1a1a"},
    "paper_bgcolor": "#ffffff",
    "plot_bgcolor": "#ffffff",
    "showlegend": False,
}
AXIS = {
    "gridcolor": "#e3e6ea",
    "zerolinecolor": "#c5cad1",
    "automargin": True,
    "tickfont": {"color": "#3d4652"},
}
# A legend above the plot area, under the title (never over the axis titles).
LEGEND_TOP = {"orientation": "h", "x": 0, "xanchor": "left", "y": 1.0, "yanchor": "bottom"}
# A legend inside the plot area's empty lower-right corner (ROC, calibration).
LEGEND_INSIDE = {
    "x": 0.98,
    "xanchor": "right",
    "y": 0.04,
    "yanchor": "bottom",
    "bgcolor": "rgba(255,255,255,0.85)",
    "bordercolor": "#c5cad1",
    "borderwidth": 1,
}
LABEL_WIDTH = 22  # characters per line of a category label (feature names, top values)


def chart_name(*parts: str) -> str:
    """A chart name: parts joined by ``-``, whitespace and quotes replaced (safe in an id)."""
    return "-".join(re.sub(r"[\s\"'<>&]+", "_", str(p)) for p in parts)


def make(name: str, traces: list[dict], title: str, **layout: Any) -> dict:
    """The chart dict of ``traces`` (Plotly trace dicts) and ``layout`` keys. A ``legend``
    shows the legend (``LEGEND_TOP`` gets the top margin it needs)."""
    merged = {**LAYOUT, **layout, "title": {"text": title, "x": 0.01, "font": {"size": 14}}}
    if "legend" in layout:
        merged["showlegend"] = True
        if layout["legend"] is LEGEND_TOP:
            merged["margin"] = {**merged["margin"], "t": 72}
            merged["title"]["y"] = 0.97
            merged["title"]["yanchor"] = "top"
    for axis in ("xaxis", "yaxis"):
        merged[axis] = {**AXIS, **merged.get(axis, {})}
    figure = {"data": traces, "layout": merged}
    text = orjson.dumps(figure, default=str, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    return {"name": name, "title": title, "json": text}


def _finite(values: list) -> bool:
    return any(isinstance(v, int | float) and math.isfinite(v) for v in values)


def _values(values: list) -> list:
    """Numbers as floats, anything not finite as None (a gap in the chart). Stored values are
    drawn as stored: rounding them saved no measurable time on a page."""
    return [_number(v) for v in values]


def wrap_label(text: str, width: int = LABEL_WIDTH, lines: int = 2) -> str:
    """``text`` on at most ``lines`` lines of about ``width`` characters (``<br>`` between,
    broken after ``_``, ``-``, ``.`` or a space), the rest cut with an ellipsis."""
    tokens = re.findall(r"[^_\-. ]*[_\-. ]?", text)
    out: list[str] = [""]
    for token in (t for t in tokens if t):
        while len(token) > width:  # a token longer than a line: cut it
            room = width - len(out[-1])
            out[-1] += token[:room]
            token = token[room:]
            out.append("")
        if out[-1] and len(out[-1]) + len(token) > width:
            out.append("")
        out[-1] += token
    out = [line for line in out if line]
    if len(out) > lines:
        out = out[:lines]
        out[-1] = out[-1][: width - 1].rstrip("_-. ") + "…"
    return "<br>".join(out)


def _categories(names: list[str]) -> list[str]:
    """Wrapped labels, unique (two names cut to the same label would merge into one bar)."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        label = wrap_label(name)
        if label in seen:
            seen[label] += 1
            label = f"{label} ({seen[label]})"
        else:
            seen[label] = 1
        out.append(label)
    return out


def _label_lines(labels: list[str]) -> int:
    return max((label.count("<br>") + 1 for label in labels), default=1)


# -- data ------------------------------------------------------------------------------------------


def missingness(source: str, columns: list[dict]) -> dict | None:
    if not columns:
        return None
    bar = {
        "type": "bar",
        "x": [c["name"] for c in columns],
        "y": _values([float(c.get("null_rate") or 0.0) for c in columns]),
        "marker": {"color": BLUE},
        "hovertemplate": "%{x}: %{y:.1%} missing<extra></extra>",
    }
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
    if hist.get("unit") == "bin":
        edges = hist["edges"]
        x = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:], strict=False)]
        widths = [b - a for a, b in zip(edges[:-1], edges[1:], strict=False)]
        bar = {"type": "bar", "x": x, "y": hist["counts"], "marker": {"color": BLUE}}
        if widths:
            bar["width"] = widths
        title = f"{column['name']}: histogram"
    else:
        bar = {"type": "bar", "x": hist["starts"], "y": hist["counts"], "marker": {"color": BLUE}}
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
    top = top[:15][::-1]
    full = [_text(t["value"]) for t in top]
    labels = _categories([_short(v) for v in full])
    bar = {
        "type": "bar",
        "x": [t["count"] for t in top],
        "y": labels,
        "customdata": full,
        "hovertemplate": "%{customdata}: %{x:,} rows<extra></extra>",
        "orientation": "h",
        "marker": {"color": ORANGE},
    }
    return make(
        chart_name("top-values", source, column["name"]),
        [bar],
        f"{column['name']}: top values",
        xaxis={"title": {"text": "rows"}},
        yaxis={"type": "category"},
        height=max(260, 16 * (_label_lines(labels) + 0.5) * len(top) + 100),
    )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _short(text: str) -> str:
    return text if len(text) <= 40 else text[:39] + "…"


# -- problem ---------------------------------------------------------------------------------------


def label_balance(rows: list[dict], numeric: bool) -> dict | None:
    """``rows``: ``{"cutoff", "rows", "value"}`` per cutoff (positive rate, or the mean label)."""
    if not rows:
        return None
    name = "mean label" if numeric else "positive rate"
    x = [r["cutoff"] for r in rows]
    traces = [
        {
            "type": "bar",
            "x": x,
            "y": [r["rows"] for r in rows],
            "name": "rows",
            "yaxis": "y2",
            "marker": {"color": "#c9d6e8"},
        },
        {
            "type": "scatter",
            "x": x,
            "y": _values([r["value"] for r in rows]),
            "mode": "lines+markers",
            "name": name,
            "marker": {"color": BLUE},
            "line": {"color": BLUE},
            "text": [f"{r['rows']:,} rows" for r in rows],
        },
    ]
    return make(
        "label-balance",
        traces,
        "Label balance per cutoff",
        legend=LEGEND_TOP,
        yaxis={"title": {"text": name}, "rangemode": "tozero"},
        yaxis2={
            "title": {"text": "rows"},
            "overlaying": "y",
            "side": "right",
            "showgrid": False,
            "automargin": True,
            "tickfont": AXIS["tickfont"],
        },
    )


def importance(rows: list[dict]) -> dict | None:
    """Permutation importance per feature; long feature names are wrapped on two lines and
    cut after that, the full name is in the hover."""
    if not rows:
        return None
    rows = rows[:25][::-1]
    names = [str(r["feature"]) for r in rows]
    labels = _categories(names)
    bar = {
        "type": "bar",
        "x": _values([float(r["importance"]) for r in rows]),
        "y": labels,
        "customdata": names,
        "hovertemplate": "%{customdata}: %{x:.4g}<extra></extra>",
        "error_x": {"type": "data", "array": _values([float(r.get("std") or 0) for r in rows])},
        "orientation": "h",
        "marker": {"color": BLUE},
    }
    per_row = 16 * _label_lines(labels) + 8
    return make(
        "importance",
        [bar],
        "Permutation importance (validation)",
        height=max(320, per_row * len(rows) + 110),
        xaxis={"title": {"text": "drop in the validation metric when shuffled"}},
        yaxis={"type": "category", "tickfont": {"size": 11, "color": AXIS["tickfont"]["color"]}},
    )


# -- models ----------------------------------------------------------------------------------------


def leaderboard(board: list[dict], key: str) -> dict | None:
    rows = [b for b in board if isinstance((b.get("test") or {}).get(key), int | float)]
    if not rows:
        return None
    bar = {
        "type": "bar",
        "x": [b["algorithm"] + (" (tuned)" if b.get("tuned") else "") for b in rows],
        "y": _values([float(b["test"][key]) for b in rows]),
        "marker": {"color": [GREEN if b.get("chosen") else GREY for b in rows]},
        "text": [f"{b['test'][key]:.4g}" for b in rows],
        "textposition": "auto",
        "insidetextfont": {"color": "#ffffff"},
        "outsidetextfont": {"color": "#1a1a1a"},
    }
    return make(
        "leaderboard",
        [bar],
        f"Candidates on the test split ({key}; chosen in green)",
        yaxis={"title": {"text": f"test {key}"}},
    )


def _diagonal(name: str) -> dict:
    return {
        "type": "scatter",
        "x": [0, 1],
        "y": [0, 1],
        "mode": "lines",
        "name": name,
        "line": {"dash": "dot", "color": GREY},
    }


def roc(curves: dict) -> dict | None:
    data = curves.get("roc")
    if not data or not data.get("fpr"):
        return None
    line = {
        "type": "scatter",
        "x": _values(data["fpr"]),
        "y": _values(data["tpr"]),
        "mode": "lines",
        "name": "model",
        "line": {"color": BLUE},
    }
    return make(
        "roc",
        [line, _diagonal("chance")],
        "ROC curve (test)",
        legend=LEGEND_INSIDE,
        xaxis={"title": {"text": "false positive rate"}, "range": [0, 1]},
        yaxis={"title": {"text": "true positive rate"}, "range": [0, 1.02]},
    )


def pr(curves: dict) -> dict | None:
    data = curves.get("pr")
    if not data or not data.get("recall"):
        return None
    line = {
        "type": "scatter",
        "x": _values(data["recall"]),
        "y": _values(data["precision"]),
        "mode": "lines",
        "name": "model",
        "line": {"color": BLUE},
    }
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
    line = {
        "type": "scatter",
        "x": _values([b["mean_predicted"] for b in bins]),
        "y": _values([b["fraction_positive"] for b in bins]),
        "mode": "lines+markers",
        "text": [f"{b['rows']} rows" for b in bins],
        "name": "model",
        "line": {"color": BLUE},
        "marker": {"color": BLUE},
    }
    return make(
        "calibration",
        [line, _diagonal("perfect")],
        "Calibration (test)",
        legend=LEGEND_INSIDE,
        xaxis={"title": {"text": "mean predicted probability"}, "range": [0, 1]},
        yaxis={"title": {"text": "observed positive rate"}, "range": [0, 1.02]},
    )


def residuals(data: dict) -> dict | None:
    if not data or not data.get("predicted"):
        return None
    points = {
        "type": "scatter",
        "x": _values(data["predicted"]),
        "y": _values(data["residual"]),
        "mode": "markers",
        "marker": {"size": 4, "opacity": 0.5, "color": BLUE},
    }
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
    scatter = {
        "type": "scatter",
        "x": [r["created_at"] for r in points],
        "y": _values([float(r["latency_ms"]) for r in points]),
        "mode": "markers",
        "marker": {"size": 5, "color": BLUE},
        "name": "request",
    }
    return make(
        "latency",
        [scatter],
        "Online prediction latency over time",
        yaxis={"title": {"text": "latency (ms)"}, "rangemode": "tozero"},
    )


# -- experiments -----------------------------------------------------------------------------------


def lift(experiment: str, result: dict) -> dict | None:
    """Relative lift of each treatment variant per metric, with its confidence interval."""
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
            values.append(float(value))
            low.append(float(value - lo) if isinstance(lo, int | float) else 0.0)
            high.append(float(hi - value) if isinstance(hi, int | float) else 0.0)
            if metric not in metrics:
                metrics.append(metric)
        if names:
            traces.append(
                {
                    "type": "scatter",
                    "x": _values(values),
                    "y": names,
                    "mode": "markers",
                    "name": str(variant.get("variant")),
                    "marker": {"size": 11},
                    "error_x": {
                        "type": "data",
                        "symmetric": False,
                        "array": _values(high),
                        "arrayminus": _values(low),
                    },
                }
            )
    if not traces:
        return None
    zero = {"type": "line", "x0": 0, "x1": 0, "yref": "paper", "y0": 0, "y1": 1}
    return make(
        chart_name("lift", experiment),
        traces,
        f"{experiment}: relative lift with 95% confidence intervals",
        legend=LEGEND_TOP,
        xaxis={"title": {"text": "relative lift vs control"}, "tickformat": ".0%"},
        yaxis={"type": "category"},
        shapes=[{**zero, "line": {"color": GREY, "dash": "dot"}}],
        height=max(260, 60 * len(metrics) + 160),
    )


# -- monitoring ------------------------------------------------------------------------------------


def drift_heatmap(
    problem: str, columns: list[str], features: list[str], z: list[list]
) -> dict | None:
    """``z[i][j]``: feature i's drift in column j (1 drifted, 0 not, None not compared). Drawn
    as one tile per compared cell (a horizontal bar of length 1 starting at the column's index),
    so the basic Plotly bundle draws it; the hover names the feature, the column and the state."""
    if not columns or not features:
        return None
    labels = _categories(features)
    ys, bases, colors, hover = [], [], [], []
    for i, label in enumerate(labels):
        for j, column in enumerate(columns):
            value = z[i][j] if i < len(z) and j < len(z[i]) else None
            if value is None:
                continue
            ys.append(label)
            bases.append(j)
            colors.append(RED if value else NOT_DRIFTED)
            hover.append([features[i], column, "drifted" if value else "not drifted"])
    if not ys:
        return None
    tiles = {
        "type": "bar",
        "orientation": "h",
        "x": [1] * len(ys),
        "base": bases,
        "y": ys,
        "width": 0.9,
        "marker": {"color": colors, "line": {"color": "#ffffff", "width": 1}},
        "customdata": hover,
        "hovertemplate": "%{customdata[0]} at %{customdata[1]}: %{customdata[2]}<extra></extra>",
    }
    return make(
        chart_name("drift-heatmap", problem),
        [tiles],
        "Drift over time (red: drifted, green: not)",
        barmode="overlay",
        height=max(320, (14 * _label_lines(labels) + 6) * len(features) + 150),
        xaxis={
            "range": [0, len(columns)],
            "tickvals": [j + 0.5 for j in range(len(columns))],
            "ticktext": columns,
            "showgrid": False,
            "zeroline": False,
        },
        yaxis={
            "type": "category",
            "categoryorder": "array",
            "categoryarray": labels,  # every feature has its row, compared or not
            "autorange": "reversed",
            "showgrid": False,
        },
    )


def distribution(problem: str, row: dict) -> dict | None:
    dist = row.get("distribution") or {}
    if not dist or not dist.get("reference"):
        return None
    if "bins" in dist:
        bins = dist["bins"]
        x = [(a + b) / 2 for a, b in zip(bins[:-1], bins[1:], strict=False)]
    else:
        x = [_short(_text(c)) for c in dist.get("categories", [])]
    traces = [
        {
            "type": "bar",
            "name": "reference",
            "x": x,
            "y": _values(dist["reference"]),
            "marker": {"color": BLUE},
        },
        {
            "type": "bar",
            "name": "current",
            "x": x,
            "y": _values(dist["current"]),
            "marker": {"color": ORANGE},
        },
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
        legend=LEGEND_TOP,
        yaxis={"title": {"text": "share of rows"}},
    )


def performance(problem: str, chunks: list[dict], reference: dict, metric: str) -> dict | None:
    """Realised and estimated ``metric`` per chunk, with the training (test) value as a line."""
    x = [str(c.get("start") or c.get("chunk") or i) for i, c in enumerate(chunks)]
    realised = [_number((c.get("realised") or {}).get(metric)) for c in chunks]
    estimated = [_number((c.get("estimated") or {}).get(metric)) for c in chunks]
    traces = []
    for name, values in (("realised", realised), ("estimated", estimated)):
        if _finite(values):
            traces.append(
                {
                    "type": "scatter",
                    "x": x,
                    "y": _values(values),
                    "mode": "lines+markers",
                    "name": name,
                }
            )
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
        legend=LEGEND_TOP,
        yaxis={"title": {"text": metric}},
        shapes=shapes,
    )


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None
