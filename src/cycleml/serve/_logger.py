"""The prediction log writer: requests hand rows to a queue; one thread writes them in batches.

The queue, the thread, the batching, the retries and the row-by-row fallback are
:class:`cycleml.store._background.BackgroundWriter`'s: rows are written every ``interval`` seconds
or ``batch_size`` rows, one transaction per batch; while the store fails they stay in memory (up
to ``max_pending``; beyond that the oldest are dropped and counted). :meth:`close` writes
everything left (the app calls it on shutdown). This module adds the insert itself."""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson
from sqlalchemy.engine import Connection

from ..store import Store
from ..store._background import BackgroundWriter
from ..store.tables import prediction_log

if TYPE_CHECKING:
    from ._metrics import Metrics


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


class PredictionLogger(BackgroundWriter):
    """The server's prediction-log writer (``put(rows)`` never blocks nor touches the store).

    ``metrics`` (the app's :class:`~cycleml.serve._metrics.Metrics`) gets the ``cycleml_log_*``
    counters and queue depth."""

    def __init__(
        self,
        store: Store,
        metrics: Metrics | None = None,
        *,
        interval: float = 0.05,
        batch_size: int = 500,
        max_pending: int = 100_000,
    ) -> None:
        super().__init__(
            store,
            name="prediction log",
            interval=interval,
            batch_size=batch_size,
            max_pending=max_pending,
            counters=None if metrics is None else metrics.log_writer,
        )
        self.metrics = metrics
        self._fast: _FastInsert | None = None

    def write(self, conn: Connection, batch: list[dict]) -> None:
        """One driver-level ``executemany`` (:class:`_FastInsert`), else the compiled insert."""
        if self._fast is None:
            self._fast = _FastInsert(conn.dialect)
        params = self._fast.params(batch)
        if params is None:
            conn.execute(prediction_log.insert(), batch)
        else:
            conn.exec_driver_sql(self._fast.sql, params)
