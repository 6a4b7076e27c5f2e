"""A write that fails after its first chunk, through the ``Target`` API on real SQLite, DuckDB,
PostgreSQL and Parquet targets: the previous partition stays whole, the error names the cause,
and the next write goes through."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from cycleml.batch import ROW_SCHEMA, TargetError, parse_target

AS_OF = datetime(2026, 6, 1)
CHUNK = 25


def rows(run_id: int, n: int = 100) -> pa.Table:
    """``n`` prediction rows of one run, as the batch path builds them."""
    return pa.table(
        {
            "problem": ["churn"] * n,
            "entity": [f"u{i:04d}" for i in range(n)],
            "as_of": pa.array([AS_OF] * n, pa.timestamp("us")),
            "horizon": pa.nulls(n, pa.int32()),
            "target_date": pa.nulls(n, pa.timestamp("us")),
            "score": [i / n for i in range(n)],
            "label": pa.array([i % 2 for i in range(n)], pa.int32()),
            "class_label": pa.nulls(n, pa.string()),
            "model_version": pa.array([1] * n, pa.int32()),
            "run_id": pa.array([run_id] * n, pa.int64()),
        },
        schema=ROW_SCHEMA,
    )


def chunks_of(table: pa.Table) -> Iterator[pa.Table]:
    for start in range(0, table.num_rows, CHUNK):
        yield table.slice(start, CHUNK)


def runs_in(kind: str, to: str) -> dict[int, int]:
    """run_id -> rows of the partition now in the target."""
    if kind == "parquet":
        table = pq.read_table(to)
        ids = table.column("run_id").to_pylist()
        return {run: ids.count(run) for run in set(ids)}
    url, _, name = to.partition("#")
    query = f'SELECT run_id, count(*) FROM "{name}" GROUP BY run_id'
    if kind == "sqlite":
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return dict(conn.execute(query).fetchall())
    if kind == "duckdb":
        con = duckdb.connect(url.removeprefix("duckdb:///"), read_only=True)
        try:
            return dict(con.execute(query).fetchall())
        finally:
            con.close()
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return {int(run): int(n) for run, n in conn.execute(sa.text(query)).all()}
    finally:
        engine.dispose()


@pytest.fixture
def target_url(request, tmp_path: Path):
    """``target_url(kind)``: a fresh target of that kind (PostgreSQL: a throwaway database)."""

    def make(kind: str) -> str:
        if kind == "sqlite":
            return f"sqlite:///{tmp_path}/p.db#preds"
        if kind == "duckdb":
            return f"duckdb:///{tmp_path}/p.duckdb#preds"
        if kind == "parquet":
            return str(tmp_path / "p.parquet")
        return f"{request.getfixturevalue('pg_database')}#preds"

    return make


@pytest.mark.parametrize("kind", ["sqlite", "duckdb", "postgres", "parquet"])
def test_rows_that_fail_midway_leave_the_previous_partition(kind, target_url, tmp_path):
    to = target_url(kind)
    target = parse_target(to, tmp_path)
    target.check()
    seen: list[int] = []
    target.write("churn", AS_OF, chunks_of(rows(1)), on_chunk=seen.append)
    assert seen == [CHUNK] * 4
    assert runs_in(kind, to) == {1: 100}

    def broken() -> Iterator[pa.Table]:
        yield rows(2, CHUNK)
        raise RuntimeError("scoring broke on chunk 2")

    with pytest.raises((RuntimeError, TargetError), match="scoring broke on chunk 2"):
        target.write("churn", AS_OF, broken())
    assert runs_in(kind, to) == {1: 100}
    if kind == "parquet":
        assert [p.name for p in Path(to).iterdir()] == ["churn-as_of=20260601T000000.parquet"]

    target.write("churn", AS_OF, chunks_of(rows(3)))
    assert runs_in(kind, to) == {3: 100}


@pytest.mark.parametrize("kind", ["sqlite", "duckdb", "postgres"])
def test_a_chunk_the_database_refuses_rolls_back_with_a_target_error(kind, target_url, tmp_path):
    to = target_url(kind)
    target = parse_target(to, tmp_path)
    target.write("churn", AS_OF, chunks_of(rows(1)))
    wrong = rows(2, CHUNK).drop_columns(["entity"])  # a NOT NULL column left out

    with pytest.raises(TargetError) as info:
        target.write("churn", AS_OF, iter([rows(2, CHUNK), wrong]))
    assert info.value.message.startswith(f"writing predictions into {target.display} failed: ")
    assert info.value.hint.startswith("nothing was written")
    assert runs_in(kind, to) == {1: 100}
