"""``/problems/{name}``: the label balance per cutoff (from the latest dataset version's stored
rows), the feature list with the production model's importance, and the dataset versions."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import sqlalchemy as sa

from ..store.tables import dataset_versions
from . import _charts

if TYPE_CHECKING:
    from ..features import DatasetVersion
    from ..project import Project
    from ..registry import ModelVersion


def stored_charts(mv: ModelVersion | None) -> dict:
    """The evaluation charts stored with a model version (its chosen leaderboard row)."""
    if mv is None:
        return {}
    chosen = next((b for b in mv.leaderboard or [] if b.get("chosen")), None)
    return (chosen or {}).get("charts") or {}


class BalanceCache:
    """Label balance per cutoff of a dataset version; a version's rows never change, so each
    is read once (only the two columns) and kept."""

    def __init__(self, size: int = 16) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, tuple[list[dict], bool]] = {}
        self.size = size

    def get(self, project: Project, dataset: DatasetVersion) -> tuple[list[dict], bool]:
        with self._lock:
            if dataset.id in self._items:
                return self._items[dataset.id]
        value = _balance(project, dataset)
        with self._lock:
            if len(self._items) >= self.size:
                self._items.pop(next(iter(self._items)))
            self._items[dataset.id] = value
        return value


def _balance(project: Project, dataset: DatasetVersion) -> tuple[list[dict], bool]:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from ..features import AS_OF_COLUMN, LABEL_COLUMN

    path = project.artifacts.verified_path(dataset.artifact_sha256)
    names = pq.read_schema(path).names
    if AS_OF_COLUMN not in names or LABEL_COLUMN not in names:
        return [], False
    table = pq.read_table(path, columns=[AS_OF_COLUMN, LABEL_COLUMN])
    label = table.column(LABEL_COLUMN)
    if not (pa.types.is_integer(label.type) or pa.types.is_floating(label.type)):
        return [], False  # class names: the balance table on the page lists them
    table = table.set_column(1, LABEL_COLUMN, pc.cast(label, "float64"))
    grouped = table.group_by(AS_OF_COLUMN).aggregate(
        [(LABEL_COLUMN, "mean"), (LABEL_COLUMN, "count")]
    )
    rows = sorted(
        (
            {"cutoff": c, "value": m, "rows": n}
            for c, m, n in zip(
                grouped.column(AS_OF_COLUMN).to_pylist(),
                grouped.column(f"{LABEL_COLUMN}_mean").to_pylist(),
                grouped.column(f"{LABEL_COLUMN}_count").to_pylist(),
                strict=True,
            )
        ),
        key=lambda r: r["cutoff"],
    )
    binary = set(pc.unique(label).to_pylist()) <= {0, 1, None}
    return rows, not binary


def datasets(project: Project, problem: str) -> list[dict]:
    with project.store.connect() as conn:
        rows = conn.execute(
            sa.select(
                dataset_versions.c.id,
                dataset_versions.c.rows,
                dataset_versions.c.cutoffs,
                dataset_versions.c.label_balance,
                dataset_versions.c.build_seconds,
                dataset_versions.c.created_at,
                dataset_versions.c.notes,
            )
            .where(dataset_versions.c.problem == problem)
            .order_by(dataset_versions.c.created_at.desc())
        ).all()
    return [dict(r._mapping) for r in rows]


def context(project: Project, name: str, balances: BalanceCache) -> dict:
    problem = project.spec.problems[name]
    versions = project.registry.list(name)
    production = next((m for m in versions if m.stage == "production"), None)
    dataset = project.latest_dataset(name)
    balance_chart = None
    numeric = False
    if dataset is not None:
        rows, numeric = balances.get(project, dataset)
        balance_chart = _charts.label_balance(rows, numeric)
    evidence = stored_charts(production)
    importance = {r["feature"]: r for r in evidence.get("importance") or []}
    features = []
    source = (production.features if production else None) or (dataset.features if dataset else [])
    for f in source:
        imp = importance.get(f["name"], {})
        features.append(
            {
                "name": f["name"],
                "group": f.get("group"),
                "kind": f.get("kind"),
                "importance": imp.get("importance"),
            }
        )
    if importance:
        features.sort(key=lambda f: -(f["importance"] if f["importance"] is not None else -1e9))
    return {
        "title": f"Problem {name}",
        "name": name,
        "problem": problem,
        "label": problem.label.model_dump(mode="json", exclude_none=True),
        "production": production,
        "dataset": dataset,
        "datasets": datasets(project, name),
        "balance_chart": balance_chart,
        "importance_chart": _charts.importance(evidence.get("importance") or []),
        "features": features,
        "versions": versions,
    }
