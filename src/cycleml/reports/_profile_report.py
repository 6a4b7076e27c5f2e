"""The profile report: one HTML page with Plotly charts, built from the profile dicts.

The page works offline: Plotly's bundled JavaScript is inlined once in the page head, and every
figure is a ``<div>`` plus a call to ``Plotly.newPlot`` (no CDN, no external script). Charts:
missingness per column, a histogram per number/datetime column, top values of the other
columns, and the correlation heatmap; then the cleaning suggestions, when the profile carries
them (``cleaning_suggestions``). It shows what the JSON holds, nothing else.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from ..errors import RequestError
from ._html import fmt

_ENV = Environment(
    loader=PackageLoader("cycleml.reports", "templates"), autoescape=select_autoescape(["html"])
)
# Per-column charts drawn for at most this many columns of a source (the tables list all).
CHART_COLUMNS = 300


def profile_report(path: str | Path, profiles: list[dict[str, Any]]) -> Path:
    """Write the report of ``profiles`` (one section per source) to ``path``."""
    import plotly.offline

    path = Path(path)
    sources = [_source(p) for p in profiles]
    html = _ENV.get_template("profile.html").render(
        title="Profile: " + ", ".join(p["source"] for p in profiles),
        sources=sources,
        plotly_js=plotly.offline.get_plotlyjs(),
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(html, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise RequestError(
            f"cannot write the profile report to {path}: {exc.strerror or exc}",
            hint="pass an --html path in a folder you may write to",
        ) from None
    return path


def _figure(fig: Any) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False})


def _source(profile: dict[str, Any]) -> dict[str, Any]:
    import plotly.graph_objects as go

    columns = profile["columns"]
    overview = [
        ("rows", fmt(profile["rows"])),
        (
            "columns",
            f"{fmt(len(columns))} profiled of {fmt(profile['columns_total'])}"
            if profile.get("truncated")
            else fmt(len(columns)),
        ),
        ("shape", profile["shape"]),
        ("duplicate rows", f"{profile['duplicate_rows']} ({profile['duplicate_method']})"),
        ("declared entity / time", f"{fmt(profile['entity'])} / {fmt(profile['time'])}"),
        ("entity candidates", ", ".join(e["column"] for e in profile["entity_candidates"]) or "—"),
        ("time candidates", ", ".join(t["column"] for t in profile["time_candidates"]) or "—"),
        ("empty columns", ", ".join(profile["empty_columns"]) or "—"),
        ("seconds", fmt(profile["seconds"])),
    ]
    overview += [("note", note) for note in profile.get("notes", [])]
    overview += [
        ("sampled", f"{s['statistic']}: {fmt(s['rows'])} of {fmt(s['of'])} rows ({s['method']})")
        for s in profile.get("sampled", [])
    ]
    charted = columns[:CHART_COLUMNS]
    missing = None
    if charted and profile["rows"]:
        fig = go.Figure(go.Bar(x=[c["name"] for c in charted], y=[c["null_rate"] for c in charted]))
        fig.update_layout(
            title="Missing values (share of rows)", height=320, yaxis={"range": [0, 1]}
        )
        missing = _figure(fig)
    column_views = []
    for i, c in enumerate(columns):
        chart = _column_chart(c) if i < CHART_COLUMNS else None
        column_views.append({"column": c, "rows": _column_rows(c), "chart": chart})
    heatmap = None
    corr = profile["correlations"]
    if corr["columns"]:
        fig = go.Figure(
            go.Heatmap(
                z=corr["matrix"],
                x=corr["columns"],
                y=corr["columns"],
                zmin=-1,
                zmax=1,
                colorscale="RdBu",
            )
        )
        title = f"Pearson correlations ({corr['rows']:,} rows"
        title += ", sampled)" if corr["sampled"] else ")"
        fig.update_layout(title=title, height=max(360, 22 * len(corr["columns"]) + 160))
        heatmap = _figure(fig)
    suggestions = profile.get("cleaning_suggestions")
    return {
        "profile": profile,
        "overview": overview,
        "missing": missing,
        "columns": column_views,
        "charts_capped": len(columns) > CHART_COLUMNS,
        "chart_columns": CHART_COLUMNS,
        "heatmap": heatmap,
        "suggestions": [_suggestion(s) for s in suggestions] if suggestions is not None else None,
    }


def _column_chart(c: dict[str, Any]) -> str | None:
    import plotly.graph_objects as go

    hist = c.get("histogram")
    if hist and hist["unit"] == "bin":
        edges = hist["edges"]
        centers = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:], strict=False)]
        widths = [b - a for a, b in zip(edges[:-1], edges[1:], strict=False)]
        fig = go.Figure(go.Bar(x=centers, y=hist["counts"], width=widths or None))
        fig.update_layout(title=f"{c['name']}: histogram", bargap=0.02)
    elif hist:
        fig = go.Figure(go.Bar(x=hist["starts"], y=hist["counts"]))
        fig.update_layout(title=f"{c['name']}: rows per {hist['unit']}")
    elif c.get("top"):
        top = c["top"]
        fig = go.Figure(
            go.Bar(
                x=[t["count"] for t in top][::-1],
                y=[_label(t["value"]) for t in top][::-1],
                orientation="h",
            )
        )
        fig.update_layout(title=f"{c['name']}: top values")
    else:
        return None
    fig.update_layout(height=300, margin={"l": 40, "r": 20, "t": 50, "b": 40})
    return _figure(fig)


def _label(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _column_rows(c: dict[str, Any]) -> list[tuple[str, str]]:
    rows = [
        ("type", f"{c['semantic']} ({c['type']})"),
        (
            "null rate",
            f"{c['null_rate']:.2%} ({c['nulls']:,} nulls, longest run "
            f"{fmt(c['longest_null_run'])})",
        ),
        ("distinct", f"{c['distinct']:,}" + ("" if c["distinct_exact"] else " (estimate)")),
        ("invalid", f"{c['invalid']:,} ({c['invalid_rate']:.2%})"),
    ]
    if c.get("mixed"):
        m = c["mixed"]
        rows.append(
            (
                "mixed",
                f"{m['valid']:,} values read as {m['type']}, {m['invalid']:,} do not "
                f"({m['invalid_rate']:.2%})",
            )
        )
    for key in ("min", "max", "mean", "median", "std", "skew"):
        if c.get(key) is not None:
            rows.append((key, fmt(c[key])))
    if c.get("quantiles"):
        q = c["quantiles"]
        exact = "" if c.get("quantiles_exact") else " (estimates)"
        rows.append(("quantiles" + exact, ", ".join(f"{k} {fmt(v)}" for k, v in q.items())))
    if c.get("length"):
        ln = c["length"]
        rows.append(("length", f"{fmt(ln['min'])}–{fmt(ln['max'])}, mean {fmt(ln['mean'])}"))
    if c.get("top"):
        rows.append(
            ("top", ", ".join(f"{_label(t['value'])} ({t['count']:,})" for t in c["top"][:5]))
        )
    return rows


def _suggestion(s: Any) -> dict[str, Any]:
    data = s.to_dict() if hasattr(s, "to_dict") else dict(s)
    return {
        "id": data.get("id", ""),
        "title": data.get("title", ""),
        "evidence": json.dumps(data.get("evidence", {}), default=str),
        "action": json.dumps(data.get("action"), default=str) if data.get("action") else "—",
    }
