"""The prediction log writer: requests hand rows to a queue; one thread writes them in batches.

Rows are written every ``interval`` seconds or ``batch_size`` rows, one transaction per batch. When
the store fails, the rows stay in memory (up to ``max_pending``; beyond that the oldest are
dropped and counted) and the write is retried with a growing pause. :meth:`close` writes
everything left (the app calls it on shutdown)."""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time

import orjson
from sqlalchemy.exc import (
    DataError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    StatementError,
)

from ..store import Store
from ..store.tables import prediction_log

log = logging.getLogger("cycleml.serve")

_STOP = object()


class _FastInsert:
    """The batch insert as one driver-level ``executemany`` of plain tuples: the inputs
    serialized with orjson, the other values through the column types' own bind processors.
    SQLAlchemy's compiled insert spends milliseconds of Python per batch (stdlib JSON, per-row
    parameter processing) holding the GIL, which a request arriving meanwhile waits for."""

    def __init__(self, dialect) -> None:
        columns = [c for c in prediction_log.c if c.name != "id"]
        self.names = [c.name for c in columns]
        self.keys = frozenset(self.names)
        self.procs = [
            None if c.name == "inputs" else c.type.dialect_impl(dialect).bind_processor(dialect)
            for c in columns
        ]
        self.sql: str | None = None
        marks = {"qmark": "?", "format": "%s", "pyformat": "%s"}
        mark = marks.get(dialect.paramstyle)
        if mark is None or dialect.name not in ("sqlite", "postgresql"):
            return  # another driver: the compiled insert
        values = [
            f"CAST({mark} AS JSON)" if n == "inputs" and dialect.name == "postgresql" else mark
            for n in self.names
        ]
        self.sql = (
            f"INSERT INTO {prediction_log.name} ({', '.join(self.names)}) "
            f"VALUES ({', '.join(values)})"
        )

    def params(self, batch: list[dict]) -> list[tuple] | None:
        """The rows as tuples; None when a row cannot take this path (an unknown key, inputs
        orjson cannot write): the caller then uses the compiled insert."""
        if self.sql is None:
            return None
        keys, out = self.keys, []
        pairs = list(zip(self.names, self.procs, strict=True))
        try:
            for row in batch:
                if not keys.issuperset(row):
                    return None
                values = []
                for name, proc in pairs:
                    value = row.get(name)
                    if name == "inputs":
                        value = orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()
                    elif proc is not None and value is not None:
                        value = proc(value)
                    values.append(value)
                out.append(tuple(values))
        except (orjson.JSONEncodeError, TypeError, ValueError):
            return None
        return out


class PredictionLogger:
    def __init__(
        self,
        store: Store,
        metrics=None,
        *,
        interval: float = 0.05,
        batch_size: int = 500,
        max_pending: int = 100_000,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.interval = interval
        self.batch_size = batch_size
        self.max_pending = max_pending
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._pending: collections.deque[dict] = collections.deque()
        self._lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._queued_rows = 0
        self._thread: threading.Thread | None = None
        self._closed = False
        self._idle = threading.Event()
        self._idle.set()
        self.written = 0
        self.dropped = 0
        self.last_error: str | None = None
        self.failing_since: float | None = None
        self._fast: _FastInsert | None = None

    # -- request side ------------------------------------------------------------------------

    def put(self, rows: list[dict]) -> None:
        """Hand rows over for writing; never blocks and never touches the store."""
        if not rows:
            return
        if self._thread is None:
            self.start()
        with self._count_lock:
            self._queued_rows += len(rows)
        self._queue.put(rows)
        self._idle.clear()  # after the put: the writer sets it again once the rows are written

    @property
    def depth(self) -> int:
        """Rows waiting (queued and pending) to be written."""
        return self._queued_rows + len(self._pending)

    def status(self) -> dict:
        return {
            "pending_rows": len(self._pending),
            "queued_rows": self._queued_rows,
            "written": self.written,
            "dropped": self.dropped,
            "error": self.last_error,
        }

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(
                    target=self._run, name="cycleml-prediction-log", daemon=True
                )
                self._thread.start()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every row handed over so far is written (True), or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.empty() and not self._pending and self._idle.is_set():
                return True
            time.sleep(0.005)
        return False

    def close(self, timeout: float = 10.0) -> None:
        """Write everything left, then stop the thread; rows handed over later are written at
        once on the caller's thread."""
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._queue.put(_STOP)
            thread.join(timeout)
        self._drain_queue()
        self._write_pending(final=True, deadline=time.monotonic() + timeout)
        self._thread = None
        self._closed = False

    # -- writer thread -----------------------------------------------------------------------

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

    def _add(self, rows: list[dict]) -> None:
        with self._count_lock:
            self._queued_rows -= len(rows)
        self._pending.extend(rows)
        over = len(self._pending) - self.max_pending
        if over > 0:
            for _ in range(over):
                self._pending.popleft()
            self.dropped += over
            if self.metrics is not None:
                self.metrics.log_dropped.inc(over)
            log.error("prediction log: dropped %d rows (store down, buffer full)", over)

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
                time.sleep(self.interval if self.failing_since is None else 0)
                stop = self._drain_queue() or stop
            ok = self._write_pending()
            if self.metrics is not None:
                self.metrics.log_queue.set(self.depth)
            if stop:
                return
            if not ok:
                time.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            else:
                backoff = self.interval
            if ok and not self._pending and self._queue.empty():
                self._idle.set()

    def _failed(self, exc: BaseException) -> None:
        self.last_error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        if self.failing_since is None:
            self.failing_since = time.monotonic()
            log.error("prediction log: cannot write to the store: %s", self.last_error)
        if self.metrics is not None:
            self.metrics.log_failures.inc()

    def _write_one_by_one(self, batch: list[dict]) -> None:
        """A batch the store refused for its content: write its rows one at a time and drop
        (and count) the ones it refuses, so one bad row never blocks the log."""
        for row in batch:
            try:
                with self.store.begin() as conn:
                    conn.execute(prediction_log.insert(), [row])
            except (OperationalError, InterfaceError):
                raise
            except Exception as exc:  # noqa: BLE001 - this row cannot be stored
                self.dropped += 1
                if self.metrics is not None:
                    self.metrics.log_dropped.inc()
                log.error("prediction log: dropped a row the store refused: %s", exc)
            else:
                self.written += 1
                if self.metrics is not None:
                    self.metrics.log_written.inc()
            self._pending.popleft()

    def _insert(self, conn, batch: list[dict]) -> None:
        if self._fast is None:
            self._fast = _FastInsert(conn.dialect)
        params = self._fast.params(batch)
        if params is None:
            conn.execute(prediction_log.insert(), batch)
        else:
            conn.exec_driver_sql(self._fast.sql, params)

    def _write_pending(self, final: bool = False, deadline: float | None = None) -> bool:
        while self._pending:
            batch = [self._pending[i] for i in range(min(self.batch_size, len(self._pending)))]
            try:
                with self.store.begin() as conn:
                    self._insert(conn, batch)
            except (StatementError, IntegrityError, DataError) as exc:
                if isinstance(exc, OperationalError | InterfaceError):  # the store, not the rows
                    self._failed(exc)
                    if final and deadline is not None and time.monotonic() < deadline:
                        time.sleep(0.1)
                        continue
                    return False
                try:
                    self._write_one_by_one(batch)
                except (OperationalError, InterfaceError) as down:
                    self._failed(down)
                    return False
                continue
            except Exception as exc:  # noqa: BLE001 - any store failure: keep the rows, retry
                self._failed(exc)
                if final and deadline is not None and time.monotonic() < deadline:
                    time.sleep(0.1)
                    continue
                return False
            for _ in batch:
                self._pending.popleft()
            self.written += len(batch)
            if self.metrics is not None:
                self.metrics.log_written.inc(len(batch))
            if self.failing_since is not None:
                log.warning("prediction log: the store is writable again")
            self.failing_since = None
            self.last_error = None
        if final:
            self._idle.set()
        return True
