"""One batched background writer of store rows: callers hand rows to a queue, one thread writes.

:class:`BackgroundWriter` owns the mechanics the prediction log and the exposures share: the
queue (:meth:`~BackgroundWriter.put` is a queue put and never touches the store), one daemon
thread that writes a batch every ``interval`` seconds or ``batch_size`` rows (one transaction
per batch), rows kept in memory while the store fails (up to ``max_pending``; beyond that the
oldest are dropped and counted) and retried with a growing pause (up to 2 s), a batch the store
refuses for its content written again row by row (the rows it still refuses are dropped and
counted), :meth:`~BackgroundWriter.flush`, :meth:`~BackgroundWriter.close` (writes what is
left) and :meth:`~BackgroundWriter.status` for ``/readyz``. A user supplies
:meth:`~BackgroundWriter.write` (the insert of one batch on an open transaction)."""

from __future__ import annotations

import collections
import itertools
import logging
import queue
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    ProgrammingError,
    StatementError,
)

from ..errors import CycleMLError
from ._store import Store, utcnow

log = logging.getLogger("cycleml.serve")

_STOP = object()
MAX_BACKOFF = 2.0
"""The longest pause (seconds) between two attempts while the store cannot be written."""


@dataclass(frozen=True)
class WriterMetrics:
    """Where a writer counts (Prometheus objects; any of them may be None): ``depth`` (a gauge,
    rows waiting), ``written``, ``failures`` (failed batch writes) and ``dropped`` (counters)."""

    depth: Any = None
    written: Any = None
    failures: Any = None
    dropped: Any = None


def rows_at_fault(exc: BaseException) -> bool:
    """True when a failed write was refused for the rows it carried (a constraint, a value the
    column or the driver cannot take): writing them one by one isolates the bad ones. False when
    the store itself failed (unreachable, locked, a missing table, a closed connection): the
    rows are kept and retried."""
    if isinstance(exc, OperationalError | InterfaceError | CycleMLError):
        return False
    if isinstance(exc, IntegrityError | DataError):
        return True
    if isinstance(exc, ProgrammingError):
        # PostgreSQL's server errors (a missing table or column, a privilege) carry an SQLSTATE;
        # a value the driver cannot bind does not. SQLite's closed connection is the store's.
        orig = exc.orig
        return getattr(orig, "sqlstate", None) is None and "closed" not in str(orig)
    if isinstance(exc, DBAPIError):  # internal or unsupported: the store's
        return False
    return isinstance(exc, StatementError | TypeError | ValueError)  # a value that cannot bind


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:200]}" if text else type(exc).__name__


class BackgroundWriter:
    """Batched background writes of rows to the store (see the module docstring).

    Subclasses implement :meth:`write`. ``name`` starts its log lines and names its thread
    (``cycleml-<name>``). Counters: ``written``, ``batches``, ``dropped``, ``failures``;
    ``last_error`` is the store's last failure (None once rows are written again),
    ``failing_since`` its monotonic time."""

    def __init__(
        self,
        store: Store,
        *,
        name: str,
        interval: float = 0.05,
        batch_size: int = 500,
        max_pending: int = 100_000,
        counters: WriterMetrics | None = None,
    ) -> None:
        self.store = store
        self.name = name
        self.interval = interval
        self.batch_size = batch_size
        self.max_pending = max_pending
        self.counters = counters or WriterMetrics()
        self.written = 0
        self.batches = 0
        self.dropped = 0
        self.failures = 0
        self.last_error: str | None = None
        self.last_write_at: datetime | None = None
        self.failing_since: float | None = None
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._pending: collections.deque[dict] = collections.deque()
        self._lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._queued_rows = 0
        self._thread: threading.Thread | None = None
        self._closed = False
        self._idle = threading.Event()
        self._idle.set()
        self._wake = threading.Event()  # set by close: the thread's pauses end at once

    def write(self, conn: Connection, batch: list[dict]) -> None:
        """Insert ``batch`` on ``conn`` (an open transaction); raise to refuse it."""
        raise NotImplementedError

    # -- caller side ---------------------------------------------------------------------------

    def put(self, rows: list[dict]) -> None:
        """Hand rows over for writing; never blocks and never touches the store. The list is
        the writer's from now on."""
        if not rows:
            return
        if self._thread is None:
            self.start()
        with self._count_lock:
            self._queued_rows += len(rows)
        self._queue.put(rows)
        self._idle.clear()  # after the put: the writer sets it again once the rows are written

    def put_row(self, row: dict) -> None:
        """:meth:`put` of one row (no list around it)."""
        if self._thread is None:
            self.start()
        with self._count_lock:
            self._queued_rows += 1
        self._queue.put(row)
        self._idle.clear()

    @property
    def depth(self) -> int:
        """Rows waiting (queued and pending) to be written."""
        return self._queued_rows + len(self._pending)

    def status(self) -> dict:
        """The writer's health: ``status`` is ``ok`` or ``degraded`` (the store's last failure
        is in ``error`` until a batch is written again)."""
        last = self.last_write_at
        return {
            "status": "ok" if self.last_error is None else "degraded",
            "queue_depth": self.depth,
            "pending_rows": len(self._pending),
            "queued_rows": self._queued_rows,
            "written": self.written,
            "batches": self.batches,
            "dropped": self.dropped,
            "failures": self.failures,
            "error": self.last_error,
            "last_write_at": None if last is None else last.isoformat(),
        }

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer thread (:meth:`put` starts it too)."""
        with self._lock:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(
                    target=self._run, name=f"cycleml-{self.name.replace(' ', '-')}", daemon=True
                )
                self._thread.start()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every row handed over so far is written (True), or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queued_rows == 0 and not self._pending and self._idle.is_set():
                return True
            time.sleep(0.005)
        return False

    def close(self, timeout: float = 10.0) -> None:
        """Write everything left (retrying a failing store until ``timeout``), then stop the
        thread. A later :meth:`put` starts a new one."""
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._queue.put(_STOP)
            self._wake.set()
            thread.join(timeout)
            if thread.is_alive():  # still inside a write: it stops after it, on its own
                log.error("%s: the writer did not stop within %.0f s", self.name, timeout)
                return
        self._drain_queue()
        self._write_pending(final=True, deadline=time.monotonic() + timeout)
        self._wake.clear()
        self._thread = None
        self._closed = False

    # -- writer thread -------------------------------------------------------------------------

    def _drain_queue(self) -> bool:
        stop = False
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return stop
            if item is _STOP:
                stop = True
            else:
                self._add(item)

    def _add(self, rows: list[dict] | dict) -> None:
        if type(rows) is dict:  # put_row's
            self._pending.append(rows)
            n = 1
        else:
            self._pending.extend(rows)
            n = len(rows)
        with self._count_lock:  # after the extend: flush always sees the rows somewhere
            self._queued_rows -= n
        over = len(self._pending) - self.max_pending
        if over > 0:
            for _ in range(over):
                self._pending.popleft()
            self.dropped += over
            if self.counters.dropped is not None:
                self.counters.dropped.inc(over)
            log.error("%s: dropped %d rows (store down, buffer full)", self.name, over)

    def _run(self) -> None:
        backoff = self.interval
        while True:
            try:
                item = self._queue.get(timeout=self.interval)
            except queue.Empty:
                item = None
            stop = item is _STOP
            if item is not None and not stop:
                self._add(item)
            # gather what arrived during the wait, then a short pause to batch the burst
            stop = self._drain_queue() or stop
            if self._pending and not stop and len(self._pending) < self.batch_size:
                if self.failing_since is None:
                    self._wake.wait(self.interval)
                stop = self._drain_queue() or stop
            ok = self._write_pending()
            if self.counters.depth is not None:
                self.counters.depth.set(self.depth)
            if stop:
                return
            if not ok:
                self._wake.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
            else:
                backoff = self.interval
            if ok and not self._pending and self._queue.empty():
                self._idle.set()

    def _failed(self, exc: BaseException) -> None:
        self.last_error = _first_line(exc)
        self.failures += 1
        if self.failing_since is None:
            self.failing_since = time.monotonic()
            log.error("%s: cannot write to the store: %s", self.name, self.last_error)
        if self.counters.failures is not None:
            self.counters.failures.inc()

    def _written(self, n: int, *, batch: bool) -> None:
        for _ in range(n):
            self._pending.popleft()
        self.written += n
        if self.counters.written is not None:
            self.counters.written.inc(n)
        if batch:
            self.batches += 1
        self.last_write_at = utcnow()
        if self.failing_since is not None:
            log.warning("%s: the store is writable again", self.name)
        self.failing_since = None
        self.last_error = None

    def _write_one_by_one(self, batch: list[dict]) -> None:
        """A batch the store refused for its content: write its rows one at a time and drop
        (and count) the ones it refuses, so one bad row never blocks the writer. A store
        failure meanwhile is raised (the rows not done yet stay pending)."""
        for row in batch:
            try:
                with self.store.begin() as conn:
                    self.write(conn, [row])
            except Exception as exc:  # noqa: BLE001 - sorted below: this row, or the store
                if not rows_at_fault(exc):
                    raise
                self._pending.popleft()
                self.dropped += 1
                if self.counters.dropped is not None:
                    self.counters.dropped.inc()
                log.error("%s: dropped a row the store refused: %s", self.name, _first_line(exc))
            else:
                self._written(1, batch=False)

    def _write_pending(self, final: bool = False, deadline: float | None = None) -> bool:
        while self._pending:
            batch = list(itertools.islice(self._pending, self.batch_size))
            try:
                with self.store.begin() as conn:
                    self.write(conn, batch)
            except Exception as exc:  # noqa: BLE001 - the rows' fault or the store's: see below
                if rows_at_fault(exc):
                    try:
                        self._write_one_by_one(batch)
                        continue
                    except Exception as down:  # noqa: BLE001 - the store failed meanwhile
                        exc = down
                self._failed(exc)
                if final and deadline is not None and time.monotonic() < deadline:
                    time.sleep(0.1)
                    continue
                return False
            self._written(len(batch), batch=True)
        if final:
            self._idle.set()
        return True


__all__ = ["BackgroundWriter", "WriterMetrics", "rows_at_fault"]
