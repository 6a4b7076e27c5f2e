"""A second DuckDB cursor in a worker thread, for the independent passes of a large profile.

DuckDB releases the GIL while a query runs, so two passes that read the same view (say, the
numeric aggregates and the grouping of the text columns) can run at once, one on the profile's
connection and one on a cursor of the same database, and use both cores where one query alone
leaves one idle. Each pass writes to its own columns' statistics and its own lists, so the
profile is the same as when the passes run one after the other.

``CYCLEML_PROFILE_PARALLEL=0`` in the environment runs every pass inline, in one thread.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import duckdb

# From this many rows a profile runs its independent passes on two cursors (below it each
# query takes milliseconds: a thread costs more than it saves) ...
PARALLEL_ROWS = 200_000
# ... up to this many: above, each of DuckDB's queries is long enough to keep its own threads
# busy, and a second query at once measured no faster on the benchmark's 10M-row file (two
# cores shared with other work: timed 41.7 s with one cursor, 44.3 s with two; see
# benchmarks/RESULTS.md), while at 1M rows it was 11-19% faster.
PARALLEL_MAX_ROWS = 2_000_000
ENV = "CYCLEML_PROFILE_PARALLEL"

T = TypeVar("T")


def parallel_enabled(rows: int) -> bool:
    """Whether a profile of ``rows`` rows uses a second cursor (see ``ENV``)."""
    setting = os.environ.get(ENV, "").strip().lower()
    if setting in ("0", "false", "no", "off"):
        return False
    return PARALLEL_ROWS <= rows <= PARALLEL_MAX_ROWS


class Lane:
    """Runs passes, one after another, on a cursor of ``con`` in one worker thread, while the
    caller goes on with ``con``. Disabled (or when the cursor cannot read ``view``: a
    connection-local table or registered frame), :meth:`submit` runs the pass inline on
    ``con``. Use as a context manager: leaving it waits for the passes still running."""

    def __init__(self, con: duckdb.DuckDBPyConnection, view: str, enabled: bool) -> None:
        self.con = con
        self.cursor: duckdb.DuckDBPyConnection | None = None
        self.executor: ThreadPoolExecutor | None = None
        if not enabled:
            return
        try:
            cursor = con.cursor()
        except duckdb.Error:
            return
        try:
            cursor.sql(f"SELECT * FROM {view} LIMIT 0").fetchall()
        except duckdb.Error:  # not visible from another connection: stay serial
            cursor.close()
            return
        self.cursor = cursor
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cycleml-profile")

    @property
    def parallel(self) -> bool:
        return self.executor is not None

    def submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        """``fn(connection, *args, **kwargs)`` on the lane (or now, inline, when serial)."""
        if self.executor is not None:
            return self.executor.submit(fn, self.cursor, *args, **kwargs)
        done: Future[T] = Future()
        try:
            done.set_result(fn(self.con, *args, **kwargs))
        except Exception as exc:  # raised by .result(), as from the worker thread
            done.set_exception(exc)
        return done

    def close(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=True)
            self.executor = None
        if self.cursor is not None:
            self.cursor.close()
            self.cursor = None

    def __enter__(self) -> Lane:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is not None and self.cursor is not None:
            self.cursor.interrupt()  # the caller failed: stop the lane's query, then wait
        self.close()
