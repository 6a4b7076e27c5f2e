"""Exposures of served experiments: one row per (experiment, unit), the first time only.

:func:`record_exposures` inserts rows with "insert or ignore" (``ON CONFLICT DO NOTHING`` on
SQLite and PostgreSQL), so a unit exposed by two requests, two workers or two servers at once
keeps exactly one row: the first one written. :class:`ExposureWriter` is the server's writer:
requests hand rows to a queue (an in-memory seen-set skips units already handed over) and one
thread writes them in batches; :meth:`ExposureWriter.close` writes what is left."""

from __future__ import annotations

import logging
import queue
import threading
import time
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import sqlalchemy as sa

from ..store import Store
from ..store.tables import exposures

log = logging.getLogger("cycleml.serve")

_STOP = object()


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
    through SQLAlchemy."""
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
            cur.execute(
                "SELECT unit, variant, first_exposed_at FROM exposures "
                f"WHERE experiment = {sql_literal(experiment)}"
            )
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
    with store.connect() as conn:
        rows = conn.execute(query).all()
    return pa.table(
        [pa.array([r[i] for r in rows], schema.field(i).type) for i in range(3)], schema=schema
    )


class ExposureWriter:
    """Batched background writes of exposures; :meth:`put` never blocks nor touches the store.

    ``seen`` remembers up to ``max_seen`` (experiment, unit) pairs already handed over so a
    returning unit costs one set lookup; past that the set is cleared (the store still keeps
    only the first row). Rows the store cannot take are kept (up to ``max_pending``) and
    retried."""

    def __init__(
        self,
        store: Store,
        *,
        interval: float = 0.05,
        batch_size: int = 1000,
        max_seen: int = 1_000_000,
        max_pending: int = 100_000,
    ) -> None:
        self.store = store
        self.interval = interval
        self.batch_size = batch_size
        self.max_seen = max_seen
        self.max_pending = max_pending
        self.seen: set[tuple[str, str]] = set()
        self.written = 0
        self.dropped = 0
        self.last_error: str | None = None
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._pending: list[dict] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._idle = threading.Event()
        self._idle.set()

    def put(
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
        if self._thread is None:
            self.start()
        self._queue.put(
            {
                "experiment": experiment,
                "unit": unit,
                "variant": variant,
                "model_version_id": model_version_id,
                "request_id": request_id,
                "first_exposed_at": when,
            }
        )
        self._idle.clear()  # after the put: the writer sets it again once the row is written
        return True

    def start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="cycleml-exposures", daemon=True
                )
                self._thread.start()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every exposure handed over so far is written (True) or ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.empty() and not self._pending and self._idle.is_set():
                return True
            time.sleep(0.005)
        return False

    def close(self, timeout: float = 10.0) -> None:
        """Write everything handed over, then stop the thread (the app's shutdown)."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(_STOP)
            thread.join(timeout)
        self._drain()
        deadline = time.monotonic() + timeout
        while self._pending and not self._write() and time.monotonic() < deadline:
            time.sleep(0.1)
        self._idle.set()

    def status(self) -> dict:
        return {
            "pending": len(self._pending) + self._queue.qsize(),
            "written": self.written,
            "dropped": self.dropped,
            "error": self.last_error,
        }

    # -- writer thread -------------------------------------------------------------------------

    def _drain(self) -> bool:
        stop = False
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                stop = True
            else:
                self._pending.append(item)
        over = len(self._pending) - self.max_pending
        if over > 0:
            del self._pending[:over]
            self.dropped += over
            log.error("exposures: dropped %d rows (store down, buffer full)", over)
        return stop

    def _write(self) -> bool:
        while self._pending:
            batch = self._pending[: self.batch_size]
            try:
                record_exposures(self.store, batch)
            except Exception as exc:  # noqa: BLE001 - keep the rows and retry later
                first = str(getattr(exc, "orig", None) or exc).splitlines()[0][:200]
                if self.last_error is None:
                    log.error("exposures: cannot write to the store: %s", first)
                self.last_error = f"{type(exc).__name__}: {first}"
                return False
            del self._pending[: len(batch)]
            self.written += len(batch)
            self.last_error = None
        return True

    def _run(self) -> None:
        backoff = self.interval
        while True:
            try:
                item = self._queue.get(timeout=self.interval)
            except queue.Empty:
                item = None
            stop = item is _STOP
            if item is not None and not stop:
                self._pending.append(item)
            stop = self._drain() or stop
            if self._pending and not stop and len(self._pending) < self.batch_size:
                time.sleep(self.interval)  # gather a burst into one transaction
                stop = self._drain() or stop
            ok = self._write()
            if stop:
                return
            if not ok:
                time.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            backoff = self.interval
            if not self._pending and self._queue.empty():
                self._idle.set()
