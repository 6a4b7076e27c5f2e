"""A wide file: columns are profiled in batched queries (``BATCH`` per query), not one query per
statistic. The cost per column is DuckDB's per-expression overhead (a few ms), so widths in the
tens of thousands take minutes: see docs/profile.md for the measured limit."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from cycleml import Project
from cycleml.data import _profile_columns

WIDTH = 150
BATCH = 50  # lowered so that the test crosses several batches quickly


def test_a_wide_parquet_is_profiled_in_batches(write_project, tmp_path: Path, monkeypatch) -> None:
    rng = np.random.default_rng(0)
    arrays = {
        f"c{i}": rng.normal(size=5) if i % 2 else pa.array([f"v{j % 3}" for j in range(5)])
        for i in range(WIDTH)
    }
    path = tmp_path / "wide.parquet"
    pq.write_table(pa.table(arrays), path)
    root = write_project(f"spec_version: 1\nname: w\nsources:\n  wide: {{path: {path}}}\n")
    queries: list[str] = []
    real = _profile_columns._one_row

    def counting(con, sql):
        queries.append(sql)
        return real(con, sql)

    monkeypatch.setattr(_profile_columns, "_one_row", counting)
    monkeypatch.setattr(_profile_columns, "BATCH", BATCH)
    project = Project(root)
    started = time.perf_counter()
    try:
        (result,) = project.profile()
    finally:
        project.close()
    seconds = time.perf_counter() - started
    assert len(result["columns"]) == WIDTH
    assert {c["semantic"] for c in result["columns"]} == {"number", "category"}
    # Each pass is a handful of queries of up to BATCH columns.
    assert len(queries) <= 4 * (WIDTH // BATCH + 1)
    assert seconds < 60
