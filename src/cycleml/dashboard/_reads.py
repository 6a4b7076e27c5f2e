"""The stored results the pages read (one query each; nothing is recomputed for a page)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ..store.tables import (
    alerts,
    experiment_analyses,
    monitor_runs,
    prediction_log,
    prediction_runs,
    predictions,
    profiles,
)

if TYPE_CHECKING:
    from ..project import Project

BATCH_RUNS = 5  # /predictions lists batch rows of this many latest runs


def _latest_per(conn, table, key, where=None) -> list:
    """The newest row of ``table`` per value of ``key`` (by id)."""
    newest = sa.select(sa.func.max(table.c.id)).group_by(key)
    if where is not None:
        newest = newest.where(where)
    return conn.execute(sa.select(table).where(table.c.id.in_(newest))).all()


def latest_profiles(project: Project) -> dict[str, dict]:
    """``{source: profile result}``, the latest stored profile of each source."""
    with project.store.connect() as conn:
        rows = _latest_per(conn, profiles, profiles.c.source)
    out = {}
    for row in rows:
        result = dict(row.result)
        result["profiled_at"] = row.created_at
        out[row.source] = result
    return out


def profiled_at(project: Project) -> dict[str, datetime]:
    """``{source: time of its latest profile}`` (without reading the profiles)."""
    with project.store.connect() as conn:
        rows = conn.execute(
            sa.select(profiles.c.source, sa.func.max(profiles.c.created_at)).group_by(
                profiles.c.source
            )
        ).all()
    return {source: at for source, at in rows}


def latest_analyses(project: Project) -> dict[str, dict]:
    """``{experiment: {"result", "created_at", "spec_hash"}}``: each one's latest analysis."""
    with project.store.connect() as conn:
        rows = _latest_per(conn, experiment_analyses, experiment_analyses.c.experiment)
    return {
        r.experiment: {"result": r.result, "created_at": r.created_at, "spec_hash": r.spec_hash}
        for r in rows
    }


def monitor_history(project: Project, problem: str, limit: int = 30) -> list[dict]:
    """The problem's latest ``limit`` monitor runs, oldest first."""
    with project.store.connect() as conn:
        rows = conn.execute(
            sa.select(monitor_runs)
            .where(monitor_runs.c.problem == problem)
            .order_by(monitor_runs.c.id.desc())
            .limit(limit)
        ).all()
    return [dict(r._mapping) for r in reversed(rows)]


def latest_monitor_summary(project: Project) -> dict[str, dict]:
    """``{problem: {"drift_share", "drifted", "created_at"}}`` of each problem's latest run."""
    with project.store.connect() as conn:
        newest = sa.select(sa.func.max(monitor_runs.c.id)).group_by(monitor_runs.c.problem)
        rows = conn.execute(
            sa.select(
                monitor_runs.c.problem,
                monitor_runs.c.drift_share,
                monitor_runs.c.drifted,
                monitor_runs.c.created_at,
            ).where(monitor_runs.c.id.in_(newest))
        ).all()
    return {r.problem: dict(r._mapping) for r in rows}


def alert_rows(project: Project, problem: str | None = None, limit: int = 50) -> list[dict]:
    c = alerts.c  # named columns: the table may gain more (migrations add them)
    query = (
        sa.select(c.id, c.problem, c.rule, c.metric, c.value, c.threshold, c.severity)
        .add_columns(c.message, c.created_at, c.webhook_status)
        .order_by(c.id.desc())
        .limit(limit)
    )
    if problem:
        query = query.where(alerts.c.problem == problem)
    with project.store.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def latest_prediction_run(project: Project, problem: str) -> dict | None:
    with project.store.connect() as conn:
        row = conn.execute(
            sa.select(prediction_runs)
            .where(prediction_runs.c.problem == problem)
            .order_by(prediction_runs.c.id.desc())
            .limit(1)
        ).first()
    return None if row is None else dict(row._mapping)


def log_summary(project: Project) -> dict[str, dict]:
    """``{problem: {"requests", "last"}}`` from the online prediction log."""
    with project.store.connect() as conn:
        rows = conn.execute(
            sa.select(
                prediction_log.c.problem,
                sa.func.count(sa.distinct(prediction_log.c.request_id)).label("requests"),
                sa.func.max(prediction_log.c.created_at).label("last"),
            ).group_by(prediction_log.c.problem)
        ).all()
    return {r.problem: {"requests": r.requests, "last": r.last} for r in rows}


def _filtered(q, table: sa.Table, problem: str | None, entity: str | None, version_id):
    """``q`` narrowed to the chosen problem, entity and model version (each when given)."""
    if problem:
        q = q.where(table.c.problem == problem)
    if entity:
        q = q.where(table.c.entity == entity)
    if version_id is not None:
        q = q.where(table.c.model_version_id == version_id)
    return q


def recent_predictions(
    project: Project,
    *,
    problem: str | None,
    entity: str | None,
    version_id: int | None,
    source: str,
    limit: int,
) -> list[dict[str, Any]]:
    """Recent predictions, newest first: online (the prediction log) and/or batch rows."""
    out: list[dict[str, Any]] = []
    with project.store.connect() as conn:
        if source in ("all", "online"):
            q = sa.select(
                prediction_log.c.created_at,
                prediction_log.c.problem,
                prediction_log.c.entity,
                prediction_log.c.item_id,
                prediction_log.c.score,
                prediction_log.c.label,
                prediction_log.c.class_label,
                prediction_log.c.latency_ms,
                prediction_log.c.model_version_id,
                prediction_log.c.request_id,
            )
            q = _filtered(q, prediction_log, problem, entity, version_id)
            q = q.order_by(prediction_log.c.id.desc()).limit(limit)
            out += [{**r._mapping, "kind": "online"} for r in conn.execute(q)]
        if source in ("all", "batch"):
            # the rows of the latest BATCH_RUNS runs only: a read by the (problem, as_of) index
            runs = sa.select(prediction_runs.c.as_of).order_by(prediction_runs.c.id.desc())
            if problem:
                runs = runs.where(prediction_runs.c.problem == problem)
            since = [r.as_of for r in conn.execute(runs.limit(BATCH_RUNS))]
            q = sa.select(
                predictions.c.as_of.label("created_at"),
                predictions.c.problem,
                predictions.c.entity,
                predictions.c.score,
                predictions.c.label,
                predictions.c.class_label,
                predictions.c.model_version_id,
                predictions.c.run_id,
            )
            q = _filtered(q, predictions, problem, entity, version_id)
            q = q.where(predictions.c.as_of >= min(since)) if since else q.where(sa.false())
            q = q.order_by(predictions.c.as_of.desc(), predictions.c.score.desc()).limit(limit)
            out += [{**r._mapping, "kind": "batch"} for r in conn.execute(q)]
    out.sort(key=lambda r: r["created_at"], reverse=True)
    return out[:limit]


def latency_points(project: Project, problem: str | None, limit: int = 5000) -> list[dict]:
    """Latency of the latest logged requests (one point per request, from the newest ``limit``
    log rows), oldest first."""
    q = sa.select(
        prediction_log.c.request_id, prediction_log.c.created_at, prediction_log.c.latency_ms
    )
    if problem:
        q = q.where(prediction_log.c.problem == problem)
    q = q.order_by(prediction_log.c.id.desc()).limit(limit)
    seen: dict[str, dict] = {}
    with project.store.connect() as conn:
        for r in conn.execute(q):
            seen.setdefault(r.request_id, {"created_at": r.created_at, "latency_ms": r.latency_ms})
    return list(seen.values())[::-1]
