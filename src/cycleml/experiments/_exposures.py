"""Exposures of served experiments: one row per (experiment, unit), the first time only.

:func:`record_exposures` inserts rows with "insert or ignore" (``ON CONFLICT DO NOTHING`` on
SQLite and PostgreSQL), so a unit exposed by two requests, two workers or two servers at once
keeps exactly one row: the first one written. :class:`ExposureWriter` is the server's writer:
requests hand rows to a queue (an in-memory seen-set skips units already handed over) and one
thread writes them in batches; :meth:`ExposureWriter.close` writes what is left."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..store import Store
from ..store._background import BackgroundWriter, WriterMetrics
from ..store.tables import exposures

log = logging.getLogger("cycleml.serve")


def _insert_ignore(store: Store):
    """INSERT ... ON CONFLICT (experiment, unit) DO NOTHING in the store's dialect."""
    if store.dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # PostgreSQL (the stores cycleml supports are SQLite and PostgreSQL)
        from sqlalchemy.dialects.postgresql import insert
    return insert(exposures).on_conflict_do_nothing(
        index_elements=[exposures.c.experiment, exposures.c.unit]
    )


def record_exposures(store: Store, rows: list[dict]) -> int:
    """Insert exposure rows (experiment, unit, variant, model_version_id, request_id,
    first_exposed_at) in one transaction; a (experiment, unit) already stored is left as it is.
    Returns how many rows were handed to the store."""
    if not rows:
        return 0
    with store.begin() as conn:
        conn.execute(_insert_ignore(store), rows)
    return len(rows)


def read_exposures(store: Store, experiment: str) -> pa.Table:
    """The exposures of ``experiment`` as Arrow: unit, variant, first_exposed_at (a timestamp,
    or its text on SQLite). Read through ADBC (columnar, fast at millions of rows), else
    through SQLAlchemy. On SQLite the rows come in rowid order (the order the exposures cache
    keeps, so both give the analysis the same input)."""
    try:
        return _read_adbc(store, experiment)
    except Exception:  # noqa: BLE001 - no ADBC driver, or a URL it does not take: the slow path
        log.debug("exposures: ADBC read failed, reading through SQLAlchemy", exc_info=True)
    return _read_sqlalchemy(store, experiment)


def _read_adbc(store: Store, experiment: str) -> pa.Table:
    from ..data._sources import _adbc_connect, sql_literal

    conn = _adbc_connect(store.url, Path("."))
    try:
        cur = conn.cursor()
        try:
            where = f"experiment = {sql_literal(experiment)}"
            if store.dialect == "sqlite":  # a scan in rowid order (faster than the index)
                where = f"+{where} ORDER BY rowid"
            cur.execute(f"SELECT unit, variant, first_exposed_at FROM exposures WHERE {where}")
            return cur.fetch_arrow_table()
        finally:
            cur.close()
    finally:
        conn.close()


def _read_sqlalchemy(store: Store, experiment: str) -> pa.Table:
    schema = pa.schema(
        [("unit", pa.string()), ("variant", pa.string()), ("first_exposed_at", pa.timestamp("us"))]
    )
    query = sa.select(exposures.c.unit, exposures.c.variant, exposures.c.first_exposed_at).where(
        exposures.c.experiment == experiment
    )
    if store.dialect == "sqlite":
        query = query.order_by(sa.literal_column("rowid"))
    with store.connect() as conn:
        rows = conn.execute(query).all()
    return pa.table(
        [pa.array([r[i] for r in rows], schema.field(i).type) for i in range(3)], schema=schema
    )


class ExposureWriter(BackgroundWriter):
    """Batched background writes of exposures; :meth:`put` never blocks nor touches the store.

    The queue, thread, batching, retries and row-by-row fallback are
    :class:`~cycleml.store._background.BackgroundWriter`'s; this class adds the insert-or-ignore
    and ``seen``: up to ``max_seen`` (experiment, unit) pairs already handed over, so a
    returning unit costs one set lookup (past that the set is cleared; the store still keeps
    only the first row). ``counters`` (the app's ``Metrics.exposure_writer``) gets the
    ``cycleml_exposure*`` metrics."""

    def __init__(
        self,
        store: Store,
        *,
        interval: float = 0.05,
        batch_size: int = 1000,
        max_seen: int = 1_000_000,
        max_pending: int = 100_000,
        counters: WriterMetrics | None = None,
    ) -> None:
        super().__init__(
            store,
            name="exposures",
            interval=interval,
            batch_size=batch_size,
            max_pending=max_pending,
            counters=counters,
        )
        self.max_seen = max_seen
        self.seen: set[tuple[str, str]] = set()
        self._insert = _insert_ignore(store)

    def put(  # type: ignore[override]  # one exposure, not a list of rows
        self,
        experiment: str,
        unit: str,
        variant: str,
        model_version_id: int | None,
        request_id: str | None,
        when: datetime,
    ) -> bool:
        """Hand one exposure over (False when this unit was handed over before)."""
        key = (experiment, unit)
        if key in self.seen:
            return False
        if len(self.seen) >= self.max_seen:
            self.seen.clear()
        self.seen.add(key)
        self.put_row(
            {
                "experiment": experiment,
                "unit": unit,
                "variant": variant,
                "model_version_id": model_version_id,
                "request_id": request_id,
                "first_exposed_at": when,
            }
        )
        return True

    def write(self, conn: Connection, batch: list[dict]) -> None:
        """Insert or ignore: a (experiment, unit) already stored keeps its first row."""
        conn.execute(self._insert, batch)
