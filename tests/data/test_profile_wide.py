"""Wide files. Up to MAX_COLUMNS columns a file is profiled whole, its columns in batched
queries (``BATCH`` per query), not one query per statistic; a wider file (here 50,000 columns,
as Parquet and as CSV) gets a bounded profile of its first columns, said so in the profile, and
no cleaning suggestions (a clear error)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

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


WIDE = 50_000
PROFILED = 40  # MAX_COLUMNS lowered so that the test profiles few columns quickly


def _wide_csv(path: Path) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(",".join(f"c{i}" for i in range(WIDE)) + "\n")
        for row in range(3):
            handle.write(",".join(str(row * 10 + i % 7) for i in range(WIDE)) + "\n")


def _wide_parquet(path: Path) -> None:
    values = pa.array([1.5, 2.5, None])
    pq.write_table(pa.table([values] * WIDE, names=[f"c{i}" for i in range(WIDE)]), path)


def test_a_50000_column_file_gets_a_bounded_profile_with_a_clear_note(
    write_project, tmp_path: Path, monkeypatch
) -> None:
    """A file wider than MAX_COLUMNS is not opened through DuckDB (minutes per query at
    50,000 columns): its first columns are profiled, and the profile says so. Cleaning
    suggestions are refused with a clear message; nothing is half-written."""
    from cycleml.data import _profile_wide
    from cycleml.errors import DataError

    _wide_csv(tmp_path / "wide.csv")
    _wide_parquet(tmp_path / "wide.parquet")
    root = write_project(
        "spec_version: 1\nname: w\nsources:\n"
        f"  wcsv: {{path: {tmp_path / 'wide.csv'}}}\n"
        f"  wpq: {{path: {tmp_path / 'wide.parquet'}}}\n"
    )
    monkeypatch.setattr(_profile_wide, "MAX_COLUMNS", PROFILED)
    project = Project(root)
    started = time.perf_counter()
    try:
        results = {r["source"]: r for r in project.profile()}
        for name in ("wcsv", "wpq"):
            result = results[name]
            assert result["rows"] == 3
            assert result["truncated"] is True and result["columns_total"] == WIDE
            assert [c["name"] for c in result["columns"]] == [f"c{i}" for i in range(PROFILED)]
            assert any("50,000 columns" in note for note in result["notes"])
            assert result["cleaning_suggestions"] == []
        assert results["wcsv"]["columns"][3]["max"] == 23
        assert results["wpq"]["columns"][0]["nulls"] == 1
        html = (project.reports_dir / "profile-wpq.html").read_text(encoding="utf-8")
        assert "the source has 50,000 columns" in html  # the report shows the note
        with pytest.raises(DataError, match="50,000 columns") as info:
            project.clean_suggestions("wcsv")
        assert "narrower" in info.value.hint
        assert project.clean_suggestions() == []  # all sources: the wide ones are skipped
        before = (root / "cycleml.yaml").read_bytes()
        with pytest.raises(DataError, match="50,000 columns"):
            project.apply_cleaning("wpq.drop_empty.c0")
        assert (root / "cycleml.yaml").read_bytes() == before
    finally:
        project.close()
    assert time.perf_counter() - started < 120


def test_a_file_just_within_the_limit_is_profiled_whole(
    write_project, tmp_path: Path, monkeypatch
) -> None:
    from cycleml.data import _profile_wide

    monkeypatch.setattr(_profile_wide, "MAX_COLUMNS", 5)
    rng = np.random.default_rng(1)
    pq.write_table(
        pa.table({f"c{i}": rng.normal(size=4) for i in range(5)}), tmp_path / "five.parquet"
    )
    root = write_project(
        f"spec_version: 1\nname: w\nsources:\n  five: {{path: {tmp_path / 'five.parquet'}}}\n"
    )
    project = Project(root)
    try:
        (result,) = project.profile()
    finally:
        project.close()
    assert result["truncated"] is False and result["columns_total"] == len(result["columns"]) == 5
