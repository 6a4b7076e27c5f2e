"""The Parquet target: a folder holding one Parquet file per (problem, as_of) partition."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ._target_base import ROW_SCHEMA, Target, TargetError

STALE_TEMP_SECONDS = 3600
"""A Parquet partition's temporary file older than this was left by a killed run: deleted."""


def parquet_file_name(problem: str, as_of: datetime) -> str:
    """The file of one partition inside a Parquet target folder."""
    stamp = f"{as_of:%Y%m%dT%H%M%S}" + (f".{as_of.microsecond:06d}" if as_of.microsecond else "")
    return f"{problem}-as_of={stamp}.parquet"


class ParquetTarget(Target):
    """A folder holding one Parquet file per (problem, as_of) partition. A partition is written
    to a hidden temporary file in the folder and renamed over the old file (atomic on one file
    system), so readers see the old partition or the new one, never a mix."""

    kind = "parquet"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.display = str(self.path)

    def check(self) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise TargetError(
                f"{self.path} exists and is not a folder",
                hint="a Parquet target is a folder holding one file per as_of: pick a new path",
            )
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.path, prefix=".check-"):
                pass
        except OSError as exc:
            raise TargetError(
                f"cannot write into {self.path}: {exc.strerror or exc}",
                hint="pick a folder you can write to",
            ) from None

    @contextmanager
    def _partition(self, problem: str, as_of: datetime) -> Iterator[Callable[[pa.Table], None]]:
        self.check()
        final = self.path / parquet_file_name(problem, as_of)
        for stale in self.path.glob(f".{final.name}.*.tmp"):  # left by a killed run
            if time.time() - stale.stat().st_mtime > STALE_TEMP_SECONDS:
                stale.unlink(missing_ok=True)
        fd, temp = tempfile.mkstemp(dir=self.path, prefix=f".{final.name}.", suffix=".tmp")
        os.close(fd)
        try:
            with pq.ParquetWriter(temp, ROW_SCHEMA) as writer:
                yield writer.write_table
            with open(temp, "rb+") as handle:
                os.fsync(handle.fileno())
            os.replace(temp, final)
        except OSError as exc:
            raise TargetError(
                f"writing {final} failed: {exc.strerror or exc}",
                hint="the previous file (if any) is unchanged; check the disk, then rerun",
            ) from None
        finally:
            if os.path.exists(temp):
                os.unlink(temp)
