"""What every predictions target shares: the row schema, the ``Target`` interface, its error,
the test hook that pauses a write midway, and small text helpers."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path

import pyarrow as pa
from sqlalchemy.engine import make_url

from ..errors import RequestError

ROW_SCHEMA = pa.schema(
    [
        pa.field("problem", pa.string(), nullable=False),
        pa.field("entity", pa.string(), nullable=False),
        pa.field("as_of", pa.timestamp("us"), nullable=False),
        pa.field("horizon", pa.int32()),
        pa.field("target_date", pa.timestamp("us")),
        pa.field("score", pa.float64(), nullable=False),
        pa.field("label", pa.int32()),
        pa.field("class_label", pa.string()),
        pa.field("model_version", pa.int32(), nullable=False),
        pa.field("run_id", pa.int64(), nullable=False),
    ]
)
"""The columns of a predictions target, in order (docs/batch.md describes them)."""

PAUSE_ENV = "CYCLEML_TEST_BATCH_PAUSE"
"""Test hook: a file path. After the first chunk is written (inside the open transaction, or into
the temporary Parquet file) the writer creates that file and sleeps up to 120 s, so that a test
can kill the process mid-write."""

ChunkCallback = Callable[[int], None]


class TargetError(RequestError):
    """A predictions target that cannot be used: unknown scheme, missing table name, a path
    that cannot be written, a database that cannot be reached, or a table of another shape."""


def pause_for_tests() -> None:
    """Honour :data:`PAUSE_ENV` when it is set (tests only); otherwise return at once."""
    marker = os.environ.get(PAUSE_ENV)
    if not marker:
        return
    written = Path(f"{marker}.{os.getpid()}.tmp")
    written.write_text(str(os.getpid()))
    os.replace(written, marker)  # whole: a test polling for the file never reads it half-written
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(0.05)


class Target:
    """A place batch predictions are written to, one (problem, as_of) partition at a time."""

    kind: str = ""
    display: str = ""
    """What prediction_runs.target records (no password)."""

    def check(self) -> None:
        """Fail early (before scoring) when the target cannot take the rows."""

    def write(
        self,
        problem: str,
        as_of: datetime,
        chunks: Iterable[pa.Table],
        *,
        on_chunk: ChunkCallback | None = None,
    ) -> None:
        """Replace partition (problem, as_of) with ``chunks`` (tables of ROW_SCHEMA), atomically."""
        with self._partition(problem, as_of) as put:
            for i, chunk in enumerate(chunks):
                put(chunk)
                if on_chunk:
                    on_chunk(chunk.num_rows)
                if i == 0:
                    pause_for_tests()

    def _partition(
        self, problem: str, as_of: datetime
    ) -> AbstractContextManager[Callable[[pa.Table], None]]:
        """A context that gives the function writing one chunk of the new partition: the
        partition is replaced when the block ends, and left as it was when it fails."""
        raise NotImplementedError


def hide_password(url: str) -> str:
    """``url`` with its password masked (or its user part dropped when it does not parse)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@", 1)[-1] if "@" in url else url


def short_error(exc: BaseException) -> str:
    """The first line of an exception's message (drivers add long detail below it)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
