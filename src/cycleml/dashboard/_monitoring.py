"""``/monitoring``: per problem, from the stored monitor runs: drift over time as a heatmap
(chunks of the latest run when it was chunked, else one column per run), reference-vs-current
distributions of the features (drifted first), performance over time, and the alerts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import _charts, _reads
from ._common import when

if TYPE_CHECKING:
    from ..project import Project

RUNS = 30  # monitor runs drawn in the heatmap
DISTRIBUTIONS = 12  # feature distributions drawn per problem


def context(project: Project) -> dict:
    problems = []
    for name, problem in project.spec.problems.items():
        history = _reads.monitor_history(project, name, RUNS)
        item: dict[str, Any] = {
            "name": name,
            "runs": len(history),
            "latest": None,
            "alerts": _reads.alert_rows(project, name),
        }
        if history:
            latest = history[-1]
            result = latest["result"] or {}
            item["latest"] = {
                "id": latest["id"],
                "created_at": latest["created_at"],
                "drift_share": latest["drift_share"],
                "drifted": result.get("drifted") or [],
                "tested": result.get("tested"),
                "dataset_drift": result.get("dataset_drift"),
                "model": result.get("model"),
                "current": result.get("current") or {},
                "quality": result.get("quality") or [],
                "domain": result.get("domain_classifier") or {},
            }
            item["heatmap"] = _heatmap(name, history)
            item["distributions"] = _distributions(name, result)
            item["performance"] = _performance(name, result, problem.metric.name)
        problems.append(item)
    return {"title": "Monitoring", "problems": problems}


def _heatmap(problem: str, history: list[dict]) -> dict | None:
    result = history[-1]["result"] or {}
    over_time = result.get("drift_over_time") or {}
    flags = over_time.get("drifted")
    if len(over_time.get("chunks") or []) >= 2 and flags and over_time.get("features"):
        # the latest run was chunked (`monitor --chunk`): its chunks are the time axis
        z = [[_flag(v) for v in row] for row in flags]
        columns = [str(c) for c in over_time["chunks"]]
        return _charts.drift_heatmap(problem, columns, list(over_time["features"]), z)
    chunks = [c for c in result.get("chunks") or [] if isinstance(c.get("features"), dict)]
    if len(chunks) >= 2:  # the latest run was chunked: its chunks are the time axis
        features = list(chunks[0]["features"])
        columns = [str(c.get("chunk")) for c in chunks]
        z = [[_flag((c["features"].get(f) or {}).get("drifted")) for c in chunks] for f in features]
        return _charts.drift_heatmap(problem, columns, features, z)
    features: list[str] = []
    for run in history[::-1]:
        for row in (run["result"] or {}).get("features") or []:
            if row.get("feature") not in features:
                features.append(row["feature"])
    columns, z_columns = [], []
    for run in history:
        by_name = {r.get("feature"): r for r in (run["result"] or {}).get("features") or []}
        columns.append(f"run {run['id']} · {when(run['created_at'])[:16]}")
        z_columns.append([_flag((by_name.get(f) or {}).get("drifted")) for f in features])
    z = [[col[i] for col in z_columns] for i in range(len(features))]
    return _charts.drift_heatmap(problem, columns, features, z)


def _flag(value: Any) -> float | None:
    return None if value is None else (1.0 if value else 0.0)


def _distributions(problem: str, result: dict) -> list[dict]:
    rows = [r for r in result.get("features") or [] if r.get("distribution")]
    rows.sort(key=lambda r: (not r.get("drifted"), -_score(r)))
    charts = []
    for row in rows[:DISTRIBUTIONS]:
        chart = _charts.distribution(problem, row)
        if chart is not None:
            charts.append(chart)
    return charts


def _score(row: dict) -> float:
    stat = row.get("statistic")
    return float(stat) if isinstance(stat, int | float) else 0.0


def _performance(problem: str, result: dict, wanted: str | None) -> dict | None:
    perf = result.get("performance")
    if not isinstance(perf, dict) or not perf.get("chunks"):
        return None
    chunks = perf["chunks"]
    keys: list[str] = []
    for c in chunks:
        for part in ("realised", "estimated"):
            for k, v in (c.get(part) or {}).items():
                if k == "rows" or k.endswith(("_low", "_high")) or k in keys:
                    continue
                if isinstance(v, int | float):
                    keys.append(k)
    if not keys:
        return None
    metric = wanted if wanted in keys else ("roc_auc" if "roc_auc" in keys else keys[0])
    return _charts.performance(problem, chunks, perf.get("reference") or {}, metric)
