"""compute() on Arrow, pandas and NumPy inputs, spines computed in chunks, and the Arrow fetch:
each must give exactly the frame the plain path gives (values, order and dtypes)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from cycleml import Project
from cycleml.errors import DataError
from cycleml.features import _featureset
from cycleml.features._featureset import arrow_frame, fetch_arrow, fetch_frame

USERS_CSV = """\
user_id,signup_at,plan,age
u1,2024-01-10 08:00:00,pro,31
u2,2024-02-20 12:00:00,free,
u3,2024-03-03 00:00:00,,45
u4,2024-01-02 00:00:00,free,22
"""

EVENTS_CSV = "user_id,ts,event_type,value\n" + "".join(
    f"u{1 + i % 5},2024-0{1 + i % 3}-{1 + i % 27:02d} {i % 24:02d}:00:00,"
    f"{['view', 'buy'][i % 2]},{i * 1.5}\n"
    for i in range(60)
)

SPEC = """\
spec_version: 1
name: inputs
sources:
  users: {path: data/users.csv, entity: user_id, time: signup_at}
  events: {path: data/events.csv, entity: user_id, time: ts}
problems:
  both:
    entity: user_id
    task: binary
    label: {kind: inactivity, source: events, days: 7}
    cutoffs: {every: 7d, start: 2024-02-01, end: 2024-03-20}
    features: [profile, activity, kinds]
  events_only:
    entity: user_id
    task: binary
    label: {kind: inactivity, source: events, days: 7}
    cutoffs: {every: 7d, start: 2024-02-01, end: 2024-03-20}
    features: [activity, kinds]
features:
  profile: {source: users, columns: [plan, age]}
  activity:
    source: events
    windows: [7d, 30d]
    aggregate: {count: "*", sum: value, mean: value, max: value}
    recency: true
  kinds:
    source: events
    windows: [30d]
    aggregate: {count: "*"}
    by: {event_type: [view, buy]}
"""

T = datetime(2024, 3, 1, 6, 30)
IDS = ["u2", "u1", "u3", "nobody", "u1", "u5"]
TIMES = [T, T, T - timedelta(days=3), T, T - timedelta(days=9), T]


@pytest.fixture
def root(write_project) -> Path:
    return write_project(SPEC, {"data/users.csv": USERS_CSV, "data/events.csv": EVENTS_CSV})


def _compute(root: Path, problem: str, entities, as_of) -> pd.DataFrame:
    with Project(root).features(problem) as fs:
        return fs.compute(entities, as_of)


@pytest.mark.parametrize("problem", ["both", "events_only"])
def test_arrow_pandas_numpy_inputs_give_the_list_frame(root, problem):
    expected = _compute(root, problem, IDS, TIMES)
    assert len(expected) == 6 and expected["user_id"].tolist().count("u1") == 2
    inputs = [
        (pa.array(IDS), pa.array(TIMES, pa.timestamp("us"))),
        (pa.chunked_array([IDS[:2], IDS[2:]]), pa.chunked_array([TIMES[:4], TIMES[4:]])),
        (pd.Series(IDS), pd.Series(TIMES)),  # datetime64: nanoseconds in pandas
        (np.array(IDS), np.array(TIMES, dtype="datetime64[us]")),
        (pa.array(IDS, pa.large_string()), pd.Series(TIMES).dt.tz_localize("UTC")),
    ]
    for entities, times in inputs:
        pd.testing.assert_frame_equal(_compute(root, problem, entities, times), expected)
    one = _compute(root, problem, IDS, T)
    pd.testing.assert_frame_equal(_compute(root, problem, pa.array(IDS), T), one)


def test_zoned_times_are_their_utc_time(root):
    paris = pd.Series(TIMES).dt.tz_localize("UTC").dt.tz_convert("Europe/Paris")
    pd.testing.assert_frame_equal(
        _compute(root, "both", pd.Series(IDS), paris), _compute(root, "both", IDS, TIMES)
    )


def test_integer_and_odd_ids_are_read_as_text_like_python_str(root):
    ints = [1, 22, 333]
    expected = _compute(root, "both", ints, T)
    assert expected["user_id"].tolist() == ["1", "22", "333"]
    pd.testing.assert_frame_equal(_compute(root, "both", pa.array(ints), T), expected)
    pd.testing.assert_frame_equal(_compute(root, "both", np.array(ints), T), expected)
    floats = [1.5, 2.0]  # not text or integers: through Python's str, as a list is
    pd.testing.assert_frame_equal(
        _compute(root, "both", pd.Series(floats), T), _compute(root, "both", floats, T)
    )


def test_arrow_inputs_of_different_lengths_are_refused(root):
    with pytest.raises(DataError, match="got 6 entities but 2 as_of times"):
        _compute(root, "both", pa.array(IDS), pa.array(TIMES[:2], pa.timestamp("us")))


@pytest.mark.parametrize("problem", ["both", "events_only"])
def test_a_spine_in_chunks_gives_the_one_pass_frame(root, problem, monkeypatch):
    ids = [f"u{i}" for i in range(1, 7)] * 4
    times = [T - timedelta(days=d) for d in (0, 5, 11, 20) for _ in range(6)]
    whole = _compute(root, problem, ids, times)
    with Project(root).features(problem) as fs:
        training = fs.training_frame().frame
    monkeypatch.setattr(_featureset, "SPINE_CHUNK_ROWS", 5)  # 24 rows: 5 chunks of entities
    chunked = _compute(root, problem, ids, times)
    pd.testing.assert_frame_equal(chunked, whole)
    assert chunked["activity_count_30d"].sum() > 0  # real values, not an empty join
    with Project(root).features(problem) as fs:
        pd.testing.assert_frame_equal(fs.training_frame().frame, training)


QUERY = """
SELECT * FROM (VALUES
  ('b', TIMESTAMP '2024-01-02', 1::BIGINT, 1::INTEGER, true, 1.5::DOUBLE, NULL::VARCHAR,
   2::UTINYINT),
  ('a', TIMESTAMP '2024-01-02', NULL, 2, NULL, NULL, NULL, 3),
  ('a', TIMESTAMP '2024-01-01', 3, NULL, false, 2.5, NULL, 4),
  (NULL, TIMESTAMP '2024-01-01', 4, 4, true, 3.5, NULL, NULL)
) t(k, ts, big, small, flag, x, nothing, tiny)
"""


@pytest.mark.parametrize("tail", ["", " LIMIT 1", " OFFSET 1", " LIMIT 0", " WHERE big = 3"])
def test_the_arrow_fetch_gives_duckdbs_dataframe(tail):
    con = duckdb.connect()
    sql = f"SELECT * FROM ({QUERY}){tail}"
    pd.testing.assert_frame_equal(fetch_frame(con, sql), con.sql(sql).df())
    ordered = con.sql(f"SELECT * FROM ({sql}) ORDER BY ts, k").df()
    pd.testing.assert_frame_equal(arrow_frame(fetch_arrow(con, sql), ["ts", "k"]), ordered)


def test_types_without_an_arrow_twin_go_through_duckdb():
    con = duckdb.connect()
    sql = "SELECT DATE '2024-01-01' AS d, 1.25::DECIMAL(10, 2) AS m, [1, 2] AS l"
    pd.testing.assert_frame_equal(fetch_frame(con, sql), con.sql(sql).df())
