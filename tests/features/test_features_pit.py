"""Features on a tiny hand-written event log: values computed by hand, point-in-time behaviour,
a property test (appending events at or after t never changes a feature at t) and leakage."""

from __future__ import annotations

import math
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cycleml import Project
from cycleml.errors import SpecError

T = datetime(2024, 3, 1)  # the as_of of the hand-computed checks

USERS_CSV = """\
user_id,signup_at,plan,country
u1,2024-01-10 08:00:00,pro,DE
u2,2024-02-20 12:00:00,free,US
u3,2024-03-03 00:00:00,free,FR
"""

EVENTS_CSV = """\
user_id,ts,event_type,source,value
u1,2024-01-15 10:00:00,view,google,1.0
u1,2024-02-05 09:00:00,buy,google,10.0
u1,2024-02-24 00:00:00,view,facebook,2.0
u1,2024-02-29 18:00:00,buy,direct,20.0
u1,2024-03-01 00:00:00,view,google,100.0
u1,2024-03-02 00:00:00,buy,google,1000.0
u2,2024-02-22 00:00:00,view,google,4.0
u2,2024-02-23 00:00:00,buy,facebook,6.0
u2,2024-03-10 00:00:00,view,google,50.0
u3,2024-02-25 00:00:00,view,google,7.0
u5,2024-03-01 00:00:00,view,google,5.0
"""

SPEC = """\
spec_version: 1
name: tiny
sources:
  users: {path: data/users.csv, entity: user_id, time: signup_at}
  events: {path: data/events.csv, entity: user_id, time: ts}
problems:
  p:
    entity: user_id
    task: binary
    label: {kind: inactivity, source: events, days: 7, active_days: 14}
    cutoffs: {every: 7d, start: 2024-02-09, end: 2024-03-08}
    features: [profile, activity]
features:
  profile:
    source: users
    columns: [plan, country]
    dates: {signup_at: [year, month, weekday, days_since]}
  activity:
    source: events
    windows: [7d, 30d]
    aggregate: {count: "*", sum: value, mean: value}
    by: {source: [google, facebook]}
    recency: true
"""


@pytest.fixture
def tiny(write_project) -> Path:
    return write_project(SPEC, {"data/users.csv": USERS_CSV, "data/events.csv": EVENTS_CSV})


def _compute(root: Path, entities, as_of) -> pd.DataFrame:
    fs = Project(root).features("p")
    try:
        return fs.compute(entities, as_of)
    finally:
        fs.sources.close()


def _row(frame: pd.DataFrame, entity: str) -> dict:
    rows = frame[frame["user_id"] == entity]
    assert len(rows) == 1, f"expected one row for {entity}, got {len(rows)}"
    return rows.iloc[0].to_dict()


def _same(actual, expected) -> bool:
    if expected is None:
        return actual is None or (isinstance(actual, float) and math.isnan(actual))
    if isinstance(expected, str):
        return actual == expected
    return actual is not None and not pd.isna(actual) and actual == pytest.approx(expected)


def _check(row: dict, expected: dict) -> None:
    wrong = {
        k: (row.get(k, "<absent>"), v) for k, v in expected.items() if not _same(row.get(k), v)
    }
    assert not wrong, f"(actual, expected) differ: {wrong}"


# Hand-computed at T = 2024-03-01 00:00. The 7d window is [2024-02-23 00:00, T), the 30d window
# [2024-01-31 00:00, T) (February 2024 has 29 days). Events at or after T are never seen.
U1 = {
    # users row: signed up 2024-01-10 08:00 (a Wednesday, ISO weekday 3)
    "plan": "pro",
    "country": "DE",
    "signup_at_year": 2024,
    "signup_at_month": 1,
    "signup_at_weekday": 3,
    # 16 h to Jan 11, then 21 days of January and 29 of February: 50 days + 16 h
    "signup_at_days_since": 50 + 16 / 24,
    # 7d: Feb 24 facebook 2.0 and Feb 29 18:00 direct 20.0 (Mar 1 and Mar 2 are not before T)
    "activity_count_7d": 2,
    "activity_sum_value_7d": 22.0,
    "activity_mean_value_7d": 11.0,
    "activity_count_7d_source_google": 0,
    "activity_sum_value_7d_source_google": 0.0,
    "activity_mean_value_7d_source_google": None,
    "activity_count_7d_source_facebook": 1,
    "activity_sum_value_7d_source_facebook": 2.0,
    "activity_mean_value_7d_source_facebook": 2.0,
    # 30d adds Feb 5 google 10.0; Jan 15 is 46 days back, outside
    "activity_count_30d": 3,
    "activity_sum_value_30d": 32.0,
    "activity_mean_value_30d": 32.0 / 3,
    "activity_count_30d_source_google": 1,
    "activity_sum_value_30d_source_google": 10.0,
    "activity_mean_value_30d_source_google": 10.0,
    "activity_count_30d_source_facebook": 1,
    "activity_sum_value_30d_source_facebook": 2.0,
    "activity_mean_value_30d_source_facebook": 2.0,
    # last event before T: Feb 29 18:00, 6 hours back
    "activity_days_since_last": 0.25,
    # first event: Jan 15 10:00: 14 h to Jan 16, 16 days of January, 29 of February
    "activity_days_since_first": 45 + 14 / 24,
}
U2 = {
    # signed up 2024-02-20 12:00 (a Tuesday): 12 h to Feb 21, then Feb 21..29 = 9 days
    "plan": "free",
    "country": "US",
    "signup_at_year": 2024,
    "signup_at_month": 2,
    "signup_at_weekday": 2,
    "signup_at_days_since": 9.5,
    # 7d: only Feb 23 00:00 facebook 6.0, exactly on the window's (inclusive) lower edge
    "activity_count_7d": 1,
    "activity_sum_value_7d": 6.0,
    "activity_mean_value_7d": 6.0,
    "activity_count_7d_source_google": 0,
    "activity_sum_value_7d_source_google": 0.0,
    "activity_mean_value_7d_source_google": None,
    "activity_count_7d_source_facebook": 1,
    "activity_sum_value_7d_source_facebook": 6.0,
    "activity_mean_value_7d_source_facebook": 6.0,
    # 30d: Feb 22 google 4.0 and Feb 23 facebook 6.0 (Mar 10 is in the future)
    "activity_count_30d": 2,
    "activity_sum_value_30d": 10.0,
    "activity_mean_value_30d": 5.0,
    "activity_count_30d_source_google": 1,
    "activity_sum_value_30d_source_google": 4.0,
    "activity_mean_value_30d_source_google": 4.0,
    "activity_count_30d_source_facebook": 1,
    "activity_sum_value_30d_source_facebook": 6.0,
    "activity_mean_value_30d_source_facebook": 6.0,
    "activity_days_since_last": 7.0,  # Feb 23 00:00
    "activity_days_since_first": 8.0,  # Feb 22 00:00
}
PROFILE = [
    "plan",
    "country",
    "signup_at_year",
    "signup_at_month",
    "signup_at_weekday",
    "signup_at_days_since",
]


def test_features_match_hand_computed_values(tiny):
    frame = _compute(tiny, ["u2", "u1"], T)
    assert sorted(frame["user_id"]) == ["u1", "u2"]
    assert set(frame["as_of"]) == {pd.Timestamp(T)}
    expected_columns = {"user_id", "as_of", *U1}
    assert set(frame.columns) == expected_columns
    _check(_row(frame, "u1"), U1)
    _check(_row(frame, "u2"), U2)


def test_feature_list_names_every_computed_column(tiny):
    fs = Project(tiny).features("p")
    try:
        names = fs.feature_names
        kinds = {c.name: c.kind for c in fs.columns}
    finally:
        fs.sources.close()
    assert set(names) == set(U1)
    assert kinds["plan"] == kinds["country"] == "category"
    assert kinds["activity_count_7d"] == kinds["signup_at_days_since"] == "number"


def test_event_at_as_of_and_later_events_never_count(tiny):
    """Dropping every event at or after T (u1's at exactly T, and the later ones) changes
    nothing; moving the event at T one second earlier does change the features."""
    before = _compute(tiny, ["u1", "u2", "u3"], T)
    events = pd.read_csv(tiny / "data/events.csv", parse_dates=["ts"])
    (tiny / "data/events.csv").write_text(
        events[events["ts"] < T].to_csv(index=False), encoding="utf-8"
    )
    pd.testing.assert_frame_equal(_compute(tiny, ["u1", "u2", "u3"], T), before)

    events.loc[events["ts"] == T, "ts"] = T - timedelta(seconds=1)
    (tiny / "data/events.csv").write_text(events.to_csv(index=False), encoding="utf-8")
    moved = _row(_compute(tiny, ["u1"], T), "u1")
    assert moved["activity_count_7d"] == 3  # the 100.0 google view is now inside
    assert moved["activity_sum_value_7d_source_google"] == pytest.approx(100.0)
    assert moved["activity_days_since_last"] == pytest.approx(1 / 86400)


def test_user_row_after_as_of_is_invisible(tiny):
    frame = _compute(tiny, ["u3"], T)  # u3 signs up 2024-03-03, after T
    row = _row(frame, "u3")
    _check(row, dict.fromkeys(PROFILE))
    # its events before T are still seen: Feb 25 google 7.0
    _check(row, {"activity_count_7d": 1, "activity_sum_value_7d_source_google": 7.0})
    # and after signing up (on a Sunday, ISO weekday 7), the row appears
    later = _row(_compute(tiny, ["u3"], datetime(2024, 3, 6)), "u3")
    _check(later, {"plan": "free", "country": "FR", "signup_at_days_since": 3.0})
    _check(later, {"signup_at_weekday": 7, "signup_at_month": 3})


def test_entity_whose_first_event_is_at_as_of_has_no_history(tiny):
    row = _row(_compute(tiny, ["u5"], T), "u5")  # u5's only event is at exactly T
    _check(row, {"activity_count_30d": 0, "activity_sum_value_30d": 0.0})
    _check(row, {"activity_days_since_last": None, "activity_days_since_first": None})
    # one second later it is history
    row = _row(_compute(tiny, ["u5"], T + timedelta(seconds=1)), "u5")
    _check(row, {"activity_count_7d": 1, "activity_days_since_first": 1 / 86400})


def test_every_bad_feature_group_is_reported_at_once(tiny):
    spec = (tiny / "cycleml.yaml").read_text(encoding="utf-8")
    spec = spec.replace("columns: [plan, country]", "columns: [plan, shoe_size]")
    spec = spec.replace("sum: value", "sum: amount")
    (tiny / "cycleml.yaml").write_text(spec, encoding="utf-8")
    fs = Project(tiny).features("p")
    try:
        with pytest.raises(SpecError) as info:
            _ = fs.columns
    finally:
        fs.sources.close()
    assert {i.message for i in info.value.issues} >= {
        "unknown column 'shoe_size'",
        "unknown column 'amount'",
    }


def test_a_date_means_its_midnight(tiny):
    pd.testing.assert_frame_equal(
        _compute(tiny, ["u1", "u2"], T.date()), _compute(tiny, ["u1", "u2"], T)
    )


def test_unknown_entity_gets_empty_features(tiny):
    row = _row(_compute(tiny, ["nobody"], T), "nobody")
    _check(row, {"plan": None, "activity_count_30d": 0, "activity_sum_value_30d": 0.0})
    _check(row, {"activity_mean_value_30d": None, "activity_days_since_last": None})


def test_one_as_of_per_entity(tiny):
    earlier = datetime(2024, 2, 24)  # u1's 7d window is [Feb 17, Feb 24): nothing yet
    frame = _compute(tiny, ["u1", "u2"], [earlier, T])
    _check(_row(frame, "u1"), {"activity_count_7d": 0, "activity_count_30d": 1})
    _check(_row(frame, "u2"), U2)
    assert _row(frame, "u1")["as_of"] == pd.Timestamp(earlier)


def test_appending_future_events_and_users_changes_nothing(tiny):
    before = _compute(tiny, ["u1", "u2", "u3"], T)
    with open(tiny / "data/events.csv", "a", encoding="utf-8") as handle:
        handle.write("u1,2024-03-01 00:00:00,buy,facebook,5000.0\n")
        handle.write("u2,2024-03-01 00:00:01,view,google,9.0\n")
        handle.write("u4,2024-03-03 00:00:00,view,facebook,1.0\n")
    with open(tiny / "data/users.csv", "a", encoding="utf-8") as handle:
        handle.write("u1,2024-03-01 00:00:00,enterprise,FR\n")  # a later row for u1
    pd.testing.assert_frame_equal(_compute(tiny, ["u1", "u2", "u3"], T), before)


# -- property: appending events at or after t never changes a feature at t ------------------

PROP_SPEC = """\
spec_version: 1
name: prop
sources:
  events: {path: data/events.parquet, entity: user_id, time: ts}
problems:
  p:
    entity: user_id
    task: binary
    label: {kind: inactivity, source: events, days: 3}
    cutoffs: {every: 1d, start: 2024-01-05}
    features: [activity]
features:
  activity:
    source: events
    windows: [1d, 7d]
    aggregate: {count: "*", sum: value, mean: value, min: value, max: value,
                count_distinct: kind}
    by: {kind: [a, b]}
    recency: true
"""
BASE = datetime(2024, 1, 1)
ENTITIES = ["a", "b", "c"]

_event = st.tuples(
    st.sampled_from(ENTITIES),
    st.integers(0, 20 * 24 * 60),  # minutes after BASE
    st.sampled_from(["a", "b", "z"]),
    st.integers(-5, 50),
)


def _write_events(root: Path, rows) -> None:
    frame = pd.DataFrame(
        {
            "user_id": [r[0] for r in rows],
            "ts": pd.to_datetime([BASE + timedelta(minutes=r[1]) for r in rows]).astype(
                "datetime64[us]"
            ),
            "kind": [r[2] for r in rows],
            "value": [float(r[3]) for r in rows],
        }
    )
    (root / "data").mkdir(exist_ok=True)
    frame.to_parquet(root / "data" / "events.parquet", index=False)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    history=st.lists(_event, min_size=1, max_size=30),
    t_minutes=st.integers(0, 20 * 24 * 60),
    future=st.lists(
        st.tuples(
            st.sampled_from(ENTITIES),
            st.integers(0, 5 * 24 * 60),  # minutes at or after t
            st.sampled_from(["a", "b", "z"]),
            st.integers(-5, 50),
        ),
        min_size=1,
        max_size=10,
    ),
)
def test_property_future_events_never_change_features(history, t_minutes, future):
    t = BASE + timedelta(minutes=t_minutes)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "cycleml.yaml").write_text(PROP_SPEC, encoding="utf-8")
        _write_events(root, history)
        before = _compute(root, ENTITIES, t)
        appended = [(e, t_minutes + dt, kind, v) for e, dt, kind, v in future]
        _write_events(root, history + appended)
        after = _compute(root, ENTITIES, t)
    pd.testing.assert_frame_equal(after, before)


# -- leakage: no label-window event reaches a feature ----------------------------------------


def test_training_features_only_see_events_before_each_cutoff(tiny, write_project):
    """Every training row's features equal the features computed on a log cut at that row's
    cutoff: events in the label window [cutoff, cutoff + 7d) (and later) are invisible."""
    fs = Project(tiny).features("p")
    try:
        built = fs.training_frame()
        names = fs.feature_names
    finally:
        fs.sources.close()
    frame = built.frame
    events = pd.read_csv(tiny / "data/events.csv", parse_dates=["ts"])
    saw_label_window_events = False
    for cutoff, rows in frame.groupby("as_of"):
        in_window = events[(events["ts"] >= cutoff) & (events["ts"] < cutoff + timedelta(days=7))]
        saw_label_window_events |= bool(set(in_window["user_id"]) & set(rows["user_id"]))
        cut = write_project(
            SPEC,
            {
                "data/users.csv": USERS_CSV,
                "data/events.csv": events[events["ts"] < cutoff].to_csv(index=False),
            },
        )
        alone = _compute(cut, list(rows["user_id"]), cutoff.to_pydatetime())
        pd.testing.assert_frame_equal(
            rows[["user_id", *names]].reset_index(drop=True),
            alone[["user_id", *names]].reset_index(drop=True),
            check_dtype=False,
        )
    # the check is not vacuous: some entity has events inside its label window
    assert saw_label_window_events


def test_label_window_values_never_reach_sums(tiny):
    """Poison the label windows: give every event at or after a cutoff a huge value. No
    training feature may move."""
    fs = Project(tiny).features("p")
    try:
        clean = fs.training_frame().frame
    finally:
        fs.sources.close()
    events = pd.read_csv(tiny / "data/events.csv", parse_dates=["ts"])
    # values at or after each row's own cutoff must not be seen: poison per cutoff, one at a time
    for cutoff in sorted(clean["as_of"].unique()):
        assert (events["ts"] >= cutoff).any()
        poisoned = events.copy()
        poisoned.loc[poisoned["ts"] >= cutoff, "value"] = 1e9
        (tiny / "data/events.csv").write_text(poisoned.to_csv(index=False), encoding="utf-8")
        fs = Project(tiny).features("p")
        try:
            frame = fs.training_frame().frame
        finally:
            fs.sources.close()
        mine = frame[frame["as_of"] == cutoff].reset_index(drop=True)
        pd.testing.assert_frame_equal(mine, clean[clean["as_of"] == cutoff].reset_index(drop=True))
