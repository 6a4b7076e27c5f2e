"""Leakage tests for every label kind: poison every row at or after a cutoff (change its values,
and copy every row of the source to exactly the cutoff) and check that no feature at that cutoff
moves, while the label does (so the poison does reach the label window)."""

from __future__ import annotations

import io
from datetime import datetime

import pandas as pd
import pytest

from cycleml import Project

EVENTS_CSV = """\
user_id,ts,event_type,value
u1,2024-01-15 10:00:00,view,1.0
u1,2024-02-05 09:00:00,buy,10.0
u1,2024-02-24 00:00:00,view,2.0
u1,2024-02-29 18:00:00,buy,20.0
u1,2024-03-01 00:00:00,view,100.0
u1,2024-03-01 10:00:00,view,3.0
u1,2024-03-02 00:00:00,buy,1000.0
u2,2024-02-22 00:00:00,view,4.0
u2,2024-02-23 00:00:00,buy,6.0
u2,2024-03-10 00:00:00,view,50.0
u3,2024-02-25 00:00:00,view,7.0
u4,2024-02-16 00:00:00,view,3.0
"""

USERS_CSV = """\
user_id,signup_at,plan,age
u1,2024-01-10 00:00:00,pro,30
u2,2024-02-20 00:00:00,free,40
u3,2024-02-26 00:00:00,free,50
u4,2024-02-01 00:00:00,free,60
"""

TIERS_CSV = """\
user_id,valid_from,tier,score
u1,2024-01-01 00:00:00,0,1.0
u1,2024-02-20 00:00:00,1,2.0
u2,2024-02-10 00:00:00,0,3.0
u2,2024-03-01 00:00:00,1,4.0
u3,2024-02-16 00:00:00,1,5.0
"""

IMPRESSIONS_CSV = """\
user_id,product_id,ts,clicked
u1,p1,2024-03-01 10:00:00,1
u1,p2,2024-03-01 10:00:00,0
u2,p1,2024-03-02 12:00:00,0
u1,p3,2024-03-05 08:00:00,1
"""

CLICKS_CSV = """\
user_id,product_id,ts
u1,p1,2024-03-01 10:30:00
u1,p2,2024-03-01 12:00:00
u2,p1,2024-03-02 11:00:00
u1,p3,2024-03-05 08:10:00
u9,p9,2024-03-06 00:00:00
"""

SALES_CSV = """\
product_id,ts,qty
p1,2024-03-01 10:00:00,2
p1,2024-03-02 09:00:00,3
p1,2024-03-02 15:00:00,1
p1,2024-03-04 00:00:00,5
p2,2024-03-02 12:00:00,4
p2,2024-03-03 23:59:00,1
p2,2024-03-06 00:00:00,7
"""

FILES = {
    "data/events.csv": (EVENTS_CSV, "ts"),
    "data/users.csv": (USERS_CSV, "signup_at"),
    "data/tiers.csv": (TIERS_CSV, "valid_from"),
    "data/imps.csv": (IMPRESSIONS_CSV, "ts"),
    "data/clicks.csv": (CLICKS_CSV, "ts"),
    "data/sales.csv": (SALES_CSV, "ts"),
}

WEEKLY = "{every: 7d, start: 2024-02-09, end: 2024-03-08}"
LABELS = {
    "event_within": (
        "user_id",
        "binary",
        "{kind: event_within, source: events, days: 7, event_types: [buy]}",
        WEEKLY,
    ),
    "count_within": (
        "user_id",
        "regression",
        "{kind: count_within, source: events, days: 7}",
        WEEKLY,
    ),
    "sum_within": (
        "user_id",
        "regression",
        "{kind: sum_within, source: events, days: 7, column: value}",
        WEEKLY,
    ),
    "column": (
        "user_id",
        "binary",
        "{kind: column, source: tiers, column: tier}",
        "{every: 7d, start: 2024-02-09, end: 2024-03-01}",
    ),
    "click": (
        "user_id",
        "ranking",
        "{kind: click, source: imps, item: product_id, clicks: clicks, within: 3h}",
        None,
    ),
    "forecast": (
        "product_id",
        "forecast",
        "{kind: forecast, source: sales, horizon: 2, column: qty}",
        "{every: 1d, start: 2024-03-02, end: 2024-03-05}",
    ),
}


def spec(kind: str) -> str:
    entity, task, label, cutoffs = LABELS[kind]
    groups = "[sold]" if kind == "forecast" else "[profile, history, activity]"
    cut = f"\n    cutoffs: {cutoffs}" if cutoffs else ""
    return f"""\
spec_version: 1
name: leak
sources:
  events: {{path: data/events.csv, entity: user_id, time: ts}}
  users: {{path: data/users.csv, entity: user_id, time: signup_at}}
  tiers: {{path: data/tiers.csv, entity: user_id, time: valid_from}}
  tier_history: {{path: data/tiers.csv, entity: user_id, time: valid_from}}
  imps: {{path: data/imps.csv, entity: user_id, time: ts}}
  clicks: {{path: data/clicks.csv, entity: user_id, time: ts}}
  sales: {{path: data/sales.csv, entity: product_id, time: ts}}
problems:
  p:
    entity: {entity}
    task: {task}
    label: {label}{cut}
    features: {groups}
features:
  profile:
    source: users
    columns: [plan, age]
    dates: {{signup_at: [month, days_since]}}
  history:
    source: tier_history
    columns: [tier, score]
  activity:
    source: events
    windows: [1d, 30d]
    aggregate: {{count: "*", sum: value, max: value}}
    by: {{event_type: [buy]}}
    recency: true
  sold:
    source: sales
    windows: [1d, 7d]
    aggregate: {{count: "*", sum: qty, max: qty}}
    recency: true
"""


def poison(text: str, time: str, cutoff: datetime) -> str:
    """Every row at or after ``cutoff`` changed, and a copy of every row at exactly it."""
    frame = pd.read_csv(io.StringIO(text), parse_dates=[time])
    late = frame[time] >= cutoff
    for column in frame.columns:
        if column == time or column in ("user_id", "product_id"):
            continue
        if pd.api.types.is_bool_dtype(frame[column]) or column in ("clicked", "tier"):
            frame.loc[late, column] = 1
        elif pd.api.types.is_numeric_dtype(frame[column]):
            frame.loc[late, column] = frame.loc[late, column] * 1000 + 7
        else:
            frame.loc[late, column] = "buy"
    keys = [c for c in ("user_id", "product_id") if c in frame.columns]
    copies = frame.drop_duplicates(keys).copy()
    copies[time] = cutoff
    for column in copies.columns:
        if column in ("value", "qty", "score", "age"):
            copies[column] = 999
        elif column in ("clicked", "tier"):
            copies[column] = 1
        elif column == "event_type":
            copies[column] = "buy"
    # a copy where the entity already has a row at the cutoff would only duplicate it
    out = pd.concat([frame, copies]).drop_duplicates(keys + [time], keep="first")
    return out.to_csv(index=False)


@pytest.mark.parametrize("kind", list(LABELS))
def test_no_label_window_row_reaches_a_feature(kind, write_project):
    text = spec(kind)
    clean = {name: content for name, (content, _) in FILES.items()}
    with Project(write_project(text, clean)).features("p") as fs:
        built = fs.training_frame()
        names = [c.name for c in fs.columns]
    frame = built.frame
    entity = LABELS[kind][0]
    assert len(frame) > 0
    label_moved = False
    for cutoff in sorted(set(frame["as_of"].dt.to_pydatetime())):
        dirty = {
            name: poison(content, time, cutoff)
            if not (kind == "click" and "imps" in name)
            else content
            for name, (content, time) in FILES.items()
        }
        rows = frame[frame["as_of"] == cutoff]
        keys = [entity] + (["horizon"] if kind == "forecast" else [])
        with Project(write_project(text, dirty)).features("p") as fs:
            entities = sorted(rows[entity].unique())
            got = fs.compute(entities, cutoff)
            poisoned = fs.training_frame().frame
        expected = rows.drop_duplicates(keys).sort_values(keys)[keys + names]
        actual = got.sort_values(keys)[keys + names]
        pd.testing.assert_frame_equal(
            expected.reset_index(drop=True),
            actual.reset_index(drop=True),
            check_dtype=False,
            obj=f"features at {cutoff} after poisoning rows at/after it",
        )
        # the same rows at this cutoff, but the poison reached their label window
        after = poisoned[poisoned["as_of"] == cutoff]
        row_keys = keys + (["product_id"] if kind == "click" else [])
        merged = rows.merge(after, on=row_keys, suffixes=("", "_poisoned"))
        assert len(merged) == len(rows), f"rows at {cutoff} changed"
        label_moved |= bool((merged["label"] != merged["label_poisoned"]).any())
    assert label_moved, "the poison never reached a label: the test would not see leakage"
