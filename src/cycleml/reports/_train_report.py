"""The training report: leaderboard, curves, calibration, confusion matrix, residuals,
importance, segments and suggestions, as one offline HTML file (Plotly's JS inlined once)."""

from __future__ import annotations

import html
from pathlib import Path

from ._html import fmt


def _table(records: list[dict], columns: list[str] | None = None) -> str:
    if not records:
        return "<p>none</p>"
    columns = columns or list(records[0])
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(fmt(r.get(c)))}</td>" for c in columns) + "</tr>"
        for r in records
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figures(data: dict) -> list[tuple[str, object]]:
    import plotly.graph_objects as go

    charts = data.get("charts") or {}
    metrics = data.get("metrics") or {}
    figs: list[tuple[str, object]] = []
    layout = {"height": 360, "margin": {"l": 50, "r": 20, "t": 40, "b": 40}}
    curves = charts.get("curves") or {}
    if curves.get("roc"):
        roc = curves["roc"]
        fig = go.Figure(go.Scatter(x=roc["fpr"], y=roc["tpr"], mode="lines", name="model"))
        fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance"))
        fig.update_layout(
            title="ROC curve (test)",
            xaxis_title="false positive rate",
            yaxis_title="true positive rate",
            **layout,
        )
        figs.append(("ROC curve", fig))
        pr = curves["pr"]
        fig = go.Figure(go.Scatter(x=pr["recall"], y=pr["precision"], mode="lines"))
        fig.update_layout(
            title="Precision-recall curve (test)",
            xaxis_title="recall",
            yaxis_title="precision",
            **layout,
        )
        figs.append(("Precision-recall curve", fig))
    if metrics.get("calibration"):
        bins = metrics["calibration"]
        fig = go.Figure(
            go.Scatter(
                x=[b["mean_predicted"] for b in bins],
                y=[b["fraction_positive"] for b in bins],
                mode="lines+markers",
                text=[f"{b['rows']} rows" for b in bins],
                name="model",
            )
        )
        fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect"))
        fig.update_layout(
            title="Calibration (test)",
            xaxis_title="mean predicted probability",
            yaxis_title="observed positive rate",
            **layout,
        )
        figs.append(("Calibration", fig))
    if metrics.get("confusion") and "matrix" in metrics["confusion"]:
        c = metrics["confusion"]  # multiclass: labels and a matrix (rows: actual)
        fig = go.Figure(
            go.Heatmap(
                z=c["matrix"],
                x=[f"predicted {v}" for v in c["labels"]],
                y=[f"actual {v}" for v in c["labels"]],
                text=c["matrix"],
                texttemplate="%{text}",
                colorscale="Blues",
            )
        )
        fig.update_layout(title="Confusion matrix (test)", **layout)
        figs.append(("Confusion matrix", fig))
    elif metrics.get("confusion"):
        c = metrics["confusion"]
        fig = go.Figure(
            go.Heatmap(
                z=[[c["tn"], c["fp"]], [c["fn"], c["tp"]]],
                x=["predicted 0", "predicted 1"],
                y=["actual 0", "actual 1"],
                text=[[c["tn"], c["fp"]], [c["fn"], c["tp"]]],
                texttemplate="%{text}",
                colorscale="Blues",
            )
        )
        fig.update_layout(
            title=f"Confusion matrix at threshold {fmt(data.get('threshold'))}", **layout
        )
        figs.append(("Confusion matrix", fig))
    if charts.get("residuals"):
        r = charts["residuals"]
        fig = go.Figure(
            go.Scatter(
                x=r["predicted"],
                y=r["residual"],
                mode="markers",
                marker={"size": 4, "opacity": 0.5},
            )
        )
        fig.update_layout(
            title="Residuals (test)",
            xaxis_title="predicted",
            yaxis_title="actual - predicted",
            **layout,
        )
        figs.append(("Residuals", fig))
    if charts.get("importance"):
        rows = charts["importance"][:25][::-1]
        fig = go.Figure(
            go.Bar(
                x=[r["importance"] for r in rows],
                y=[r["feature"] for r in rows],
                error_x={"array": [r["std"] for r in rows]},
                orientation="h",
            )
        )
        fig.update_layout(
            title="Permutation importance (validation)",
            **{**layout, "height": max(360, 22 * len(rows))},
        )
        figs.append(("Importance", fig))
    if charts.get("learning_curve"):
        lc = charts["learning_curve"]
        key = [k for k in lc[0] if k not in ("share", "rows")][0]
        fig = go.Figure(
            go.Scatter(x=[p["rows"] for p in lc], y=[p[key] for p in lc], mode="lines+markers")
        )
        fig.update_layout(
            title=f"Learning curve (validation {key})", xaxis_title="training rows", **layout
        )
        figs.append(("Learning curve", fig))
    return figs


def write_train_report(path: Path, data: dict) -> Path:
    """``data`` is ``TrainOutcome.to_dict()``: the same content ``--json`` prints."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    parts = [
        f"<h1>Model {html.escape(data['model'])}</h1>",
        f"<p>dataset version {html.escape(str(data['dataset_version']))}; "
        f"{html.escape(data['split']['selected_by'])}; split {html.escape(str(data['split']))}</p>",
        "<h2>Leaderboard (test split)</h2>",
        _table(
            [
                {
                    "algorithm": b["algorithm"]
                    + (" (tuned)" if b.get("tuned") else "")
                    + (" ← chosen" if b["chosen"] else ""),
                    **b["test"],
                }
                for b in data["leaderboard"]
            ]
        ),
    ]
    if data.get("tuning"):
        parts += [
            "<h2>Tuning</h2>",
            _table([{k: v for k, v in t.items() if k != "params"} for t in data["tuning"]]),
        ]
    flat = [
        {"metric": k, "value": v}
        for k, v in data["metrics"].items()
        if not isinstance(v, dict | list)
    ]
    parts += [
        "<h2>Test metrics of the chosen model</h2>",
        f"<p>{html.escape(data.get('threshold_note') or '')}</p>",
        _table(flat),
    ]
    if data["metrics"].get("per_class"):
        parts += [
            "<h2>Per class (test)</h2>",
            _table([{"class": k, **v} for k, v in data["metrics"]["per_class"].items()]),
        ]
    if data["metrics"].get("by_horizon"):
        parts += ["<h2>Per horizon (test)</h2>", _table(data["metrics"]["by_horizon"])]
    if data.get("segments"):
        parts += [
            "<h2>Per segment (test)</h2>",
            _table(
                [
                    {k: v for k, v in s.items() if not isinstance(v, dict | list)}
                    for s in data["segments"]
                ]
            ),
        ]
    parts.append("<h2>Suggestions</h2>")
    parts.append(
        _table(
            [
                {
                    "id": s["id"],
                    "title": s["title"],
                    "action": s["action"],
                    "evidence": str(s["evidence"]),
                }
                for s in data.get("suggestions", [])
            ]
        )
    )
    first = True
    for title, fig in _figures(data):
        parts.append(f"<h2>{html.escape(title)}</h2>")
        parts.append(fig.to_html(full_html=False, include_plotlyjs=first))
        first = False
    if data.get("notes"):
        parts += ["<h2>Notes</h2>", "<ul>"]
        parts += [f"<li>{html.escape(n)}</li>" for n in data["notes"]] + ["</ul>"]
    style = (
        "body{font-family:system-ui,sans-serif;margin:2rem;max-width:1100px}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;"
        "padding:3px 6px;text-align:left}"
    )
    doc = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Model "
        f"{html.escape(data['model'])}</title><style>{style}</style></head><body>"
        + "\n".join(parts)
        + "</body></html>"
    )
    tmp = path.with_suffix(".tmp")
    tmp.write_text(doc, encoding="utf-8")
    tmp.replace(path)
    return path
