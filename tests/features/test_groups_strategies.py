"""The two event-group strategies (one join with FILTER aggregates, running totals read with ASOF
joins) give the same features on the demo, at one and at many cutoffs per entity, and `auto`
picks running totals when there are many cutoffs per entity."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from cycleml import Project

GROUPS = """
  act:
    source: events
    windows: [1d, 30d]
    aggregate: {count: ["*", value], sum: [value, value_x2], mean: value, min: value,
                max: value, count_distinct: event_type}
    by: {event_type: [purchase], source: auto}
    auto_top: 2
    sql: {value_x2: "CASE WHEN event_type = 'purchase' THEN value * 2 ELSE 0 END"}
    recency: true
    trend: true
    strategy: STRATEGY
  chan:
    source: events
    windows: [30d]
    aggregate: {count: "*", mean: value}
    by: {source: [google, email]}
    strategy: STRATEGY
"""


def _spec(root, strategy: str) -> None:
    path, original = root / "cycleml.yaml", root / "cycleml.yaml.orig"
    if not original.exists():
        original.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    text = original.read_text(encoding="utf-8")
    text = text.replace("features: [profile, activity, channels]", "features: [act, chan]")
    text = text.replace("\nfeatures:\n", "\nfeatures:\n" + GROUPS.replace("STRATEGY", strategy), 1)
    path.write_text(text, encoding="utf-8")


def _frame(root, strategy: str, entities, times) -> pd.DataFrame:
    _spec(root, strategy)
    fs = Project(root).features("churn")
    try:
        return fs.compute(entities, times)
    finally:
        fs.close()


def _assert_same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a.columns) == list(b.columns)
    assert len(a) == len(b)
    for column in a.columns:
        x, y = a[column], b[column]
        if column in ("user_id", "as_of"):
            assert (x.to_numpy() == y.to_numpy()).all()
            continue
        assert x.dtype == y.dtype, column
        xs, ys = x.to_numpy("float64", na_value=np.nan), y.to_numpy("float64", na_value=np.nan)
        if "count" in column or "distinct" in column:
            assert np.array_equal(xs, ys), column  # counts: exactly equal
        else:
            # sums of doubles taken in another order (DuckDB's parallel sums are not
            # order-stable either): equal up to rounding
            assert np.allclose(xs, ys, rtol=1e-12, atol=1e-9, equal_nan=True), column


@pytest.fixture
def spine(demo_project):
    users = pd.read_parquet(demo_project / "data/users.parquet")["user_id"].tolist()[:300]
    end = datetime(2026, 5, 1, 6, 30)
    weeks = [end - timedelta(days=7 * k) for k in range(8)]
    entities = [u for _ in weeks for u in users]
    times = [w for w in weeks for _ in users]
    return entities, times


def test_join_and_running_totals_agree_at_many_cutoffs(demo_project, spine):
    entities, times = spine
    join = _frame(demo_project, "join", entities, times)
    running = _frame(demo_project, "running", entities, times)
    _assert_same(join, running)
    # not vacuous: windows, categories, trends and SQL columns have values
    assert (join["act_count_30d"] > 0).mean() > 0.1
    assert join["act_sum_value_x2_30d_event_type_purchase"].gt(0).any()
    assert join["act_trend_1d_30d"].notna().any()
    assert join["act_min_value_30d"].notna().any()


def test_join_and_running_totals_agree_at_one_cutoff_per_entity(demo_project, spine):
    entities, times = spine
    rng = np.random.default_rng(0)
    pick = rng.choice(len(entities), size=400, replace=False)
    entities = [entities[i] for i in pick]
    times = [times[i] + timedelta(seconds=int(rng.integers(0, 86400))) for i in pick]
    _assert_same(
        _frame(demo_project, "join", entities, times),
        _frame(demo_project, "running", entities, times),
    )


def test_auto_picks_running_totals_for_dense_cutoffs_and_the_join_for_weekly(demo_project):
    _spec(demo_project, "auto")
    fs = Project(demo_project).features("churn")
    try:
        many, few = fs.features_sql(365.0), fs.features_sql(26.0)
    finally:
        fs.close()
    # running totals read a cumulative table with ASOF joins; the join strategy has none
    assert "__cum" in many and "__cum" not in few
    # min/max/distinct still need the join at many cutoffs
    assert "min(e." in many


def test_training_build_is_the_same_with_either_strategy(demo_project):
    frames = {}
    for strategy in ("join", "running"):
        _spec(demo_project, strategy)
        fs = Project(demo_project).features("churn")
        try:
            frames[strategy] = fs.training_frame().frame
        finally:
            fs.close()
    _assert_same(frames["join"], frames["running"])
    assert frames["join"]["as_of"].nunique() > 4  # a weekly schedule: many cutoffs per user
