"""The HTML report of an experiment analysis: tables, the lift chart (plotly, offline)."""

from __future__ import annotations

import html
from pathlib import Path


def _fmt(value, pct: bool = False) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:+.2%}" if pct else f"{value:.4g}"
    return html.escape(str(value))


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _lift_figure(result: dict):
    import plotly.graph_objects as go

    fig = go.Figure()
    labels, lifts, fixed, always = [], [], [], []
    for v in result["variants"]:
        if v["control"]:
            continue
        for metric, m in v["metrics"].items():
            if m.get("relative_lift") is None:
                continue
            labels.append(f"{v['variant']} · {metric}")
            lifts.append(m["relative_lift"])
            fixed.append((m["relative_ci_low"], m["relative_ci_high"]))
            seq = m.get("sequential") or {}
            always.append((seq.get("relative_ci_low"), seq.get("relative_ci_high")))
    for name, bounds, offset, color in (
        ("fixed-horizon CI", fixed, -0.12, "#1f77b4"),
        ("always-valid CI", always, 0.12, "#ff7f0e"),
    ):
        ok = [i for i, (lo, hi) in enumerate(bounds) if lo is not None and hi is not None]
        fig.add_trace(
            go.Scatter(
                x=[lifts[i] for i in ok],
                y=[i + offset for i in ok],
                mode="markers",
                name=name,
                marker={"color": color, "size": 9},
                error_x={
                    "type": "data",
                    "symmetric": False,
                    "array": [bounds[i][1] - lifts[i] for i in ok],
                    "arrayminus": [lifts[i] - bounds[i][0] for i in ok],
                },
            )
        )
    fig.add_vline(x=0, line_dash="dash", line_color="grey")
    fig.update_layout(
        title="Relative lift vs control",
        xaxis={"tickformat": "+.1%", "title": "relative lift"},
        yaxis={"tickvals": list(range(len(labels))), "ticktext": labels},
        height=160 + 60 * max(len(labels), 1),
        margin={"l": 160},
    )
    return fig


def _served_parts(result: dict) -> list[str]:
    """Exposures per variant (served experiments) and the guardrails."""
    parts = []
    if any("exposures" in v for v in result["variants"]):
        parts += [
            "<h2>Exposures</h2>",
            _table(
                ["variant", "units", "exposures", "units with an outcome event"],
                [
                    [
                        html.escape(v["variant"]),
                        str(v["units"]),
                        str(v.get("exposures", "")),
                        str(v.get("units_with_outcome", "")),
                    ]
                    for v in result["variants"]
                ],
            ),
        ]
    if result.get("guardrails"):
        rows = []
        for v in result["variants"]:
            if v["control"]:
                continue
            worse = {w.split(" ", 1)[0] for w in v.get("guardrails_worse", [])}
            for name in result["guardrails"]:
                m = v["metrics"].get(name, {})
                rows.append(
                    [
                        html.escape(v["variant"]),
                        html.escape(name),
                        _fmt(m.get("relative_lift"), pct=True),
                        _fmt(m.get("p_value")),
                        "<b>significantly worse</b>" if name in worse else "ok",
                    ]
                )
        parts += [
            "<h2>Guardrails</h2>",
            _table(["variant", "guardrail", "relative lift", "p-value", "status"], rows),
        ]
    return parts


def _cuped_parts(result: dict) -> list[str]:
    """The CUPED-adjusted and unadjusted figures of every adjusted comparison, side by side."""
    rows = []
    for v in result["variants"]:
        for metric, m in v["metrics"].items():
            info = m.get("cuped")
            if v["control"] or not info:
                continue
            plain = info.get("unadjusted") or {}
            rows.append(
                [
                    html.escape(v["variant"]),
                    html.escape(metric),
                    _fmt(m.get("absolute_lift")),
                    f"{_fmt(m.get('ci_low'))} to {_fmt(m.get('ci_high'))}",
                    _fmt(m.get("p_value")),
                    _fmt(info.get("unadjusted_lift")),
                    f"{_fmt(plain.get('ci_low'))} to {_fmt(plain.get('ci_high'))}",
                    _fmt(plain.get("p_value")),
                    _fmt(info.get("theta")),
                    _fmt(info.get("variance_reduction"), pct=True),
                ]
            )
    if not rows:
        return []
    served = result.get("cuped")
    covariate = (
        f"each metric's own value over the {served['days']:g} days before each unit's first "
        "exposure"
        if served
        else "the metric's `covariate` column (a pre-period value)"
    )
    confidence = f"{(1 - result['alpha']) * 100:g}%"
    return [
        "<h2>CUPED</h2>",
        f"<p>Covariate: {html.escape(covariate)}. Adjusted and unadjusted absolute lifts with "
        f"their fixed-horizon {confidence} intervals.</p>",
        _table(
            [
                "variant",
                "metric",
                "adjusted lift",
                f"adjusted {confidence} CI",
                "adjusted p-value",
                "unadjusted lift",
                f"unadjusted {confidence} CI",
                "unadjusted p-value",
                "theta",
                "variance reduction",
            ],
            rows,
        ),
    ]


def write_experiment_report(path: str | Path, result: dict) -> Path:
    """Write ``result`` (``Project.analyze_experiment``'s dict) as a self-contained HTML page."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    name = html.escape(result["experiment"])
    rows = []
    for v in result["variants"]:
        for metric, m in v["metrics"].items():
            seq = m.get("sequential") or {}
            rows.append(
                [
                    html.escape(v["variant"]) + (" (control)" if v["control"] else ""),
                    str(v["units"]),
                    html.escape(metric),
                    _fmt(m.get("value")),
                    _fmt(m.get("absolute_lift")),
                    _fmt(m.get("relative_lift"), pct=True),
                    f"{_fmt(m.get('relative_ci_low'), True)} to "
                    f"{_fmt(m.get('relative_ci_high'), True)}",
                    f"{_fmt(seq.get('relative_ci_low'), True)} to "
                    f"{_fmt(seq.get('relative_ci_high'), True)}",
                    _fmt(m.get("p_value")),
                    html.escape(m.get("test") or ""),
                    _fmt((m.get("cuped") or {}).get("variance_reduction"), pct=True),
                ]
            )
    confidence = f"{(1 - result['alpha']) * 100:g}%"
    srm = result["srm"]
    parts = [
        f"<h1>Experiment {name}</h1>",
        f"<p class='decision'><b>Decision:</b> {html.escape(result['decision'])}</p>",
        f"<p>primary metric {html.escape(result['primary_metric'])}; alpha {result['alpha']}; "
        f"decision reads the {'always-valid' if result['sequential'] else 'fixed-horizon'} "
        "interval</p>",
        "<h2>Variants and lift</h2>",
        _table(
            [
                "variant",
                "units",
                "metric",
                "value",
                "absolute lift",
                "relative lift",
                f"{confidence} CI (relative)",
                f"{confidence} always-valid CI (relative)",
                "p-value",
                "test",
                "CUPED variance reduction",
            ],
            rows,
        ),
        "<h2>Sample ratio check</h2>",
        _table(
            ["variant", "units", "expected share"],
            [
                [html.escape(k), str(n), _fmt(srm["expected_share"].get(k))]
                for k, n in srm["observed"].items()
            ],
        ),
        f"<p>chi-square p = {_fmt(srm['p_value'])}; "
        f"{'MISMATCH (p < 0.001)' if srm['mismatch'] else 'no mismatch'}"
        f"{'; ' + html.escape(srm['note']) if srm.get('note') else ''}</p>",
        *_served_parts(result),
        *_cuped_parts(result),
        "<h2>Lift chart</h2>",
        _lift_figure(result).to_html(full_html=False, include_plotlyjs=True),
    ]
    if result.get("notes"):
        parts += ["<h2>Notes</h2><ul>"] + [f"<li>{html.escape(n)}</li>" for n in result["notes"]]
        parts.append("</ul>")
    style = (
        "body{font-family:system-ui,sans-serif;margin:2rem;max-width:1100px}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;"
        "padding:3px 6px;text-align:left}.decision{font-size:1.2em}"
    )
    doc = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Experiment {name}</title>"
        f"<style>{style}</style></head><body>" + "\n".join(parts) + "</body></html>"
    )
    tmp = path.with_suffix(".tmp")
    tmp.write_text(doc, encoding="utf-8")
    tmp.replace(path)
    return path
