"""The ``job_runs`` table: the scheduler's lock and its history.

Whoever inserts ``(job, due_at)`` first runs that job for that due time; the table's unique
constraint turns every other scheduler's insert into an IntegrityError, and it skips."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError as DuplicateRun
from sqlalchemy.exc import SQLAlchemyError

from ..errors import StoreError
from ..store import Store, utcnow
from ..store.tables import job_runs

_MESSAGE_LIMIT = 4000


def claim(store: Store, job: str, due_at: datetime) -> int | None:
    """Insert the ``running`` row for ``job`` at ``due_at`` in its own transaction; its id, or
    None when another scheduler already holds it."""
    try:
        with store.begin() as conn:
            return conn.execute(
                job_runs.insert()
                .values(job=job, due_at=due_at, status="running", started_at=utcnow())
                .returning(job_runs.c.id)
            ).scalar_one()
    except DuplicateRun:
        return None
    except SQLAlchemyError as exc:
        raise _unreachable(store, exc) from None


def finish(store: Store, run_id: int, status: str, message: str | None) -> None:
    """Mark a claimed run ``done`` or ``failed``."""
    if message is not None and len(message) > _MESSAGE_LIMIT:
        message = message[: _MESSAGE_LIMIT - 1] + "…"
    try:
        with store.begin() as conn:
            conn.execute(
                job_runs.update()
                .where(job_runs.c.id == run_id)
                .values(status=status, finished_at=utcnow(), message=message)
            )
    except SQLAlchemyError as exc:
        raise _unreachable(store, exc) from None


def has_run(store: Store, job: str, due_at: datetime) -> bool:
    with store.connect() as conn:
        found = conn.execute(
            sa.select(job_runs.c.id).where(job_runs.c.job == job, job_runs.c.due_at == due_at)
        ).first()
    return found is not None


def last_runs(store: Store, jobs: list[str]) -> dict[str, dict]:
    """Each job's latest run (by due time) as a dict of the row."""
    if not jobs:
        return {}
    latest = (
        sa.select(job_runs.c.job, sa.func.max(job_runs.c.due_at).label("due_at"))
        .where(job_runs.c.job.in_(jobs))
        .group_by(job_runs.c.job)
        .subquery()
    )
    query = sa.select(job_runs).join(
        latest, sa.and_(job_runs.c.job == latest.c.job, job_runs.c.due_at == latest.c.due_at)
    )
    with store.connect() as conn:
        return {row["job"]: dict(row) for row in conn.execute(query).mappings()}


def _unreachable(store: Store, exc: SQLAlchemyError) -> StoreError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return StoreError(
        f"the scheduler cannot write job_runs in the store at {store.display_url}: {first}",
        hint="check that the store's database is reachable; the job runs again at its next "
        "fire time",
    )
