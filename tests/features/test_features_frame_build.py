"""The feature frame's assembly: the one-integer-key sort order equals Arrow's sort, the frame
comes out consolidated (pandas does not copy it again), and large spines turn on DuckDB's
background purge of freed memory."""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from cycleml import Project
from cycleml.features import _featureset
from cycleml.features._featureset import _sort_order, arrow_frame

SPEC = """\
spec_version: 1
name: build
sources:
  events: {path: data/events.csv, entity: user_id, time: ts}
problems:
  churn:
    entity: user_id
    task: binary
    label: {kind: inactivity, source: events, days: 7}
    cutoffs: {every: 7d, start: 2024-01-08}
    features: [activity]
features:
  activity: {source: events, windows: [7d, 30d], aggregate: {count: "*", sum: value}, recency: true}
"""

EVENTS_CSV = "user_id,ts,value\n" + "".join(
    f"u{i % 4},2024-01-{1 + i % 28:02d} {i % 24:02d}:00:00,{i * 0.5}\n" for i in range(40)
)


def _random_table(rng: np.random.Generator, n: int) -> pa.Table:
    ents = [None if rng.random() < 0.1 else f"u{rng.integers(0, 8)}" for _ in range(n)]
    times = [
        None if rng.random() < 0.1 else datetime(2026, 1, 1) + timedelta(seconds=int(s))
        for s in rng.integers(0, 5, size=n)
    ]
    ints = [None if rng.random() < 0.1 else int(v) for v in rng.integers(-3, 3, size=n)]
    table = pa.table(
        {
            "e": pa.array(ents, pa.string()),
            "t": pa.array(times, pa.timestamp("us")),
            "i": pa.array(ints, pa.int64()),
        }
    )
    return pa.concat_tables([table.slice(0, n // 2), table.slice(n // 2)])  # two chunks


@pytest.mark.parametrize("keys", [["t", "e"], ["e"], ["i", "e", "t"]])
def test_the_sort_order_is_arrows_stable_sort(keys):
    rng = np.random.default_rng(3)
    for _ in range(60):
        table = _random_table(rng, int(rng.integers(0, 40)))
        expected = pc.sort_indices(table, sort_keys=[(k, "ascending", "at_end") for k in keys])
        assert _sort_order(table, keys).to_pylist() == expected.to_pylist()


def test_the_frame_is_built_consolidated():
    con = duckdb.connect()
    table = con.sql(
        "SELECT 'u' || i AS k, TIMESTAMP '2024-01-01' + to_days(i % 3) AS ts, "
        "i::BIGINT AS a, (i * 2)::BIGINT AS b, i / 3 AS x, i / 5 AS y FROM range(50) t(i)"
    ).to_arrow_table()
    frame = arrow_frame(table, ["ts", "k"])
    dtypes = [str(block.dtype) for block in frame._mgr.blocks]
    assert len(dtypes) == len(set(dtypes)), dtypes  # one block per dtype: nothing to merge
    ordered = con.sql(
        "SELECT 'u' || i AS k, TIMESTAMP '2024-01-01' + to_days(i % 3) AS ts, "
        "i::BIGINT AS a, (i * 2)::BIGINT AS b, i / 3 AS x, i / 5 AS y FROM range(50) t(i) "
        "ORDER BY ts, k"
    ).df()
    pd.testing.assert_frame_equal(frame, ordered)


def test_a_large_spine_turns_on_the_background_purge(write_project, monkeypatch):
    root = write_project(SPEC, {"data/events.csv": EVENTS_CSV})
    ids = [f"u{i}" for i in range(4)]
    with Project(root).features("churn") as fs:
        fs.compute(ids, datetime(2024, 1, 20))
        setting = "SELECT current_setting('allocator_background_threads')"
        assert fs.sources.con.sql(setting).fetchall()[0][0] is False  # small: left alone
        monkeypatch.setattr(_featureset, "BACKGROUND_PURGE_ROWS", 4)
        frame = fs.compute(ids, datetime(2024, 1, 20))
        assert fs.sources.con.sql(setting).fetchall()[0][0] is True
    assert frame["activity_count_30d"].sum() > 0
