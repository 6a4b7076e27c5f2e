"""``/models``: one problem at a time (``?problem=``): the leaderboard, the evaluation charts of
a version (``?version=``, default production) read from its stored row, and every version with
its lineage and a promote button."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import NotFoundError
from . import _charts
from ._problem import stored_charts

if TYPE_CHECKING:
    from ..project import Project

HEADLINE = (
    "roc_auc",
    "pr_auc",
    "precision",
    "recall",
    "f1",
    "accuracy",
    "f1_macro",
    "log_loss",
    "brier",
    "mae",
    "rmse",
    "r2",
    "mape",
)


def _key(metrics: dict, wanted: str | None) -> str | None:
    """The metric to rank candidates by: the problem's, else the first headline one stored."""
    if wanted and isinstance(metrics.get(wanted), int | float):
        return wanted
    extra = [k for k in metrics if k.startswith(("ndcg@", "map@"))]
    return next((k for k in (*extra, *HEADLINE) if isinstance(metrics.get(k), int | float)), None)


def context(project: Project, problem: str | None, version: int | None) -> dict:
    """Raises NotFoundError for an unknown problem or version (the 404 page)."""
    spec = project.spec
    all_versions = project.registry.list()
    if problem is None:
        with_models = [p for p in spec.problems if any(m.problem == p for m in all_versions)]
        problem = (with_models or list(spec.problems) or [None])[0]
    if problem is None:
        return {"title": "Models", "problem": None, "problems": [], "versions": []}
    project._problem(problem)  # NotFoundError for an unknown one
    versions = [m for m in all_versions if m.problem == problem]
    production = next((m for m in versions if m.stage == "production"), None)
    if version is not None:
        shown = next((m for m in versions if m.version == version), None)
        if shown is None:
            raise NotFoundError(
                f"problem {problem!r} has no model version {version}",
                hint=f"versions: {', '.join(str(m.version) for m in versions) or '(none)'}",
            )
    else:
        shown = production or (versions[-1] if versions else None)
    charts: list[dict] = []
    missing: list[str] = []
    metrics_rows: list[tuple[str, str]] = []
    key = None
    if shown is not None:
        wanted = spec.problems[problem].metric.name
        key = _key(shown.metrics, wanted)
        evidence = stored_charts(shown)
        curves = evidence.get("curves") or {}
        task = spec.problems[problem].task
        planned = [("leaderboard", _charts.leaderboard(shown.leaderboard, key) if key else None)]
        if task in ("binary", "multiclass"):
            planned += [
                ("roc", _charts.roc(curves)),
                ("pr", _charts.pr(curves)),
                ("calibration", _charts.calibration(shown.metrics.get("calibration") or [])),
            ]
        if task in ("regression", "forecast"):
            planned.append(("residuals", _charts.residuals(evidence.get("residuals") or {})))
        planned.append(("importance", _charts.importance(evidence.get("importance") or [])))
        for name, chart in planned:
            if chart is None:
                missing.append(name)
            else:
                charts.append(chart)
        metrics_rows = [
            (k, v) for k, v in shown.metrics.items() if isinstance(v, int | float) and k != "rows"
        ]
    return {
        "title": f"Models: {problem}",
        "problem": problem,
        "problems": list(spec.problems),
        "versions": versions[::-1],
        "production": production,
        "shown": shown,
        "key": key,
        "charts": charts,
        "missing": missing,
        "metrics": metrics_rows,
    }
