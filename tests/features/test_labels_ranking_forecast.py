"""Ranking (click) and forecast labels on tiny hand-written logs: the frame layout, each label by
hand, the features as of each row's time, and what batch scoring means for them."""

from __future__ import annotations

from datetime import datetime

import pytest

from cycleml import Project
from cycleml.errors import RequestError

EVENTS_CSV = """\
user_id,ts,event_type,value
u1,2024-02-24 00:00:00,view,2.0
u1,2024-02-29 18:00:00,buy,20.0
u1,2024-03-01 00:00:00,view,100.0
u1,2024-03-01 10:00:00,view,5.0
u2,2024-02-23 00:00:00,buy,6.0
u2,2024-03-02 11:59:59,view,1.0
"""

IMPRESSIONS_CSV = """\
imp_id,list_id,user_id,product_id,ts,clicked
i1,L1,u1,p1,2024-03-01 10:00:00,1
i2,L1,u1,p2,2024-03-01 10:00:00,0
i3,L2,u2,p1,2024-03-02 12:00:00,0
i4,L3,u1,p3,2024-03-05 08:00:00,1
"""

CLICKS_CSV = """\
user_id,product_id,ts
u1,p1,2024-03-01 10:30:00
u1,p2,2024-03-01 12:00:00
u2,p1,2024-03-02 11:00:00
u1,p3,2024-03-05 08:10:00
u9,p9,2024-03-05 08:30:00
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

SPEC = """\
spec_version: 1
name: rank
sources:
  events: {{path: data/events.csv, entity: user_id, time: ts}}
  imps: {{path: data/imps.csv, entity: user_id, time: ts}}
  clicks: {{path: data/clicks.csv, entity: user_id, time: ts}}
  sales: {{path: data/sales.csv, entity: product_id, time: ts}}
problems:
  rank:
    entity: user_id
    task: ranking
    label: {label}{cutoffs}
    features: [activity]
  demand:
    entity: product_id
    task: forecast
    label: {{kind: forecast, source: sales, horizon: 2{column}}}
    cutoffs: {{every: 1d, start: 2024-03-02, end: 2024-03-05}}
    features: [sold]
features:
  activity: {{source: events, windows: [7d], aggregate: {{count: "*", sum: value}}}}
  sold: {{source: sales, windows: [7d], aggregate: {{count: "*", sum: qty}}}}
"""

FILES = {
    "data/events.csv": EVENTS_CSV,
    "data/imps.csv": IMPRESSIONS_CSV,
    "data/clicks.csv": CLICKS_CSV,
    "data/sales.csv": SALES_CSV,
}


def project(
    write_project,
    label="{kind: click, source: imps, item: product_id, column: clicked}",
    cutoffs="",
    column=", column: qty",
):
    return Project(write_project(SPEC.format(label=label, cutoffs=cutoffs, column=column), FILES))


def frame_of(proj, problem):
    with proj.features(problem) as fs:
        return fs.training_frame()


def test_click_label_from_a_flag_column_one_row_per_impression(write_project):
    built = frame_of(project(write_project), "rank")
    f = built.frame
    assert list(f.columns[:4]) == ["user_id", "as_of", "product_id", "group"]
    assert f.columns[-1] == "label"
    got = {(r.user_id, r.product_id): r.label for r in f.itertuples()}
    assert got == {("u1", "p1"): 1, ("u1", "p2"): 0, ("u2", "p1"): 0, ("u1", "p3"): 1}
    # one group per (entity, impression time): i1 and i2 were shown together
    groups = dict(zip(f["product_id"] + f["user_id"], f["group"], strict=True))
    assert groups["p1u1"] == groups["p2u1"]
    assert len({groups["p1u1"], groups["p1u2"], groups["p3u1"]}) == 3
    # features of the entity as of the impression time: u1 at Mar 1 10:00 sees
    # [Feb 23 10:00, Mar 1 10:00): Feb 24, Feb 29 18:00, Mar 1 00:00 (the 10:00 view is not
    # before the impression) -> 3 events, value 122
    row = f[(f.user_id == "u1") & (f.product_id == "p1")].iloc[0]
    assert row["activity_count_7d"] == 3 and row["activity_sum_value_7d"] == 122.0
    assert row["as_of"] == datetime(2024, 3, 1, 10)
    # u2 at Mar 2 12:00: [Feb 24 12:00, Mar 2 12:00): the Mar 2 11:59:59 view only
    row = f[f.user_id == "u2"].iloc[0]
    assert row["activity_count_7d"] == 1


def test_click_label_from_a_clicks_source_within_a_window(write_project):
    label = (
        "{kind: click, source: imps, item: product_id, clicks: clicks, within: 1h, group: list_id}"
    )
    built = frame_of(project(write_project, label), "rank")
    f = built.frame
    got = {(r.user_id, r.product_id): r.label for r in f.itertuples()}
    assert got == {
        ("u1", "p1"): 1,  # clicked 30 min after
        ("u1", "p2"): 0,  # clicked 2 h after: outside the 1 h window
        ("u2", "p1"): 0,  # the click came before the impression
        # i4 (Mar 5 08:00) is left out: its window ends 09:00, the clicks end 08:30
    }
    assert list(f["group"]) == ["L1", "L1", "L2"]
    assert any("left out 1 impression" in n and "click window" in n for n in built.notes)
    label = "{kind: click, source: imps, item: product_id, clicks: clicks, within: 3h}"
    got = {
        (r.user_id, r.product_id): r.label
        for r in frame_of(project(write_project, label), "rank").frame.itertuples()
    }
    assert got[("u1", "p2")] == 1


def test_click_schedule_bounds_the_impressions(write_project):
    proj = project(
        write_project, cutoffs="\n    cutoffs: {every: 1d, start: 2024-03-02, end: 2024-03-05}"
    )
    f = frame_of(proj, "rank").frame
    assert list(f["product_id"]) == ["p1"]  # only i3 (Mar 2 12:00) is in [Mar 2, Mar 5)


def test_ranking_has_no_batch_of_eligible_entities(write_project):
    proj = project(write_project)
    with proj.features("rank") as fs:
        with pytest.raises(RequestError) as info:
            fs.compute(None, datetime(2024, 3, 3))
        assert "rank" in info.value.hint
        # explicit entities still work (the online path)
        assert list(fs.compute(["u1"], datetime(2024, 3, 1, 10))["activity_count_7d"]) == [3]


def test_forecast_is_direct_multi_horizon(write_project):
    built = frame_of(project(write_project), "demand")
    f = built.frame
    assert list(f.columns[:3]) == ["product_id", "as_of", "horizon"]
    # data end Mar 6 00:00: cutoff + 2 days must not pass it, so Mar 5 is left out
    assert built.cutoffs == [datetime(2024, 3, d) for d in (2, 3, 4)]
    assert any("left out 1 cutoff" in n for n in built.notes)
    got = {(r.product_id, r.as_of.day, r.horizon): r.label for r in f.itertuples()}
    # day h of cutoff c is [c + (h-1) days, c + h days); items eligible once they have sold
    assert got == {
        ("p1", 2, 1): 4.0,  # Mar 2: 3 + 1
        ("p1", 2, 2): 0.0,  # Mar 3
        ("p1", 3, 1): 0.0,
        ("p1", 3, 2): 5.0,  # Mar 4 00:00
        ("p2", 3, 1): 1.0,  # Mar 3 23:59
        ("p2", 3, 2): 0.0,
        ("p1", 4, 1): 5.0,
        ("p1", 4, 2): 0.0,
        ("p2", 4, 1): 0.0,
        ("p2", 4, 2): 0.0,  # Mar 6 00:00 is day 3
    }
    # features as of the cutoff, the same for every horizon: p1 at Mar 3 sold 2 + 3 + 1
    rows = f[(f.product_id == "p1") & (f.as_of == datetime(2024, 3, 3))]
    assert list(rows["sold_sum_qty_7d"]) == [6.0, 6.0]
    assert list(rows["horizon"]) == [1, 2]


def test_forecast_counts_rows_without_a_column(write_project):
    f = frame_of(project(write_project, column=""), "demand").frame
    got = {(r.product_id, r.as_of.day, r.horizon): r.label for r in f.itertuples()}
    assert got[("p1", 2, 1)] == 2  # two sales on Mar 2
    assert got[("p2", 3, 1)] == 1


def test_forecast_batch_scores_every_item_for_each_day_of_the_horizon(write_project):
    proj = project(write_project)
    with proj.features("demand") as fs:
        assert [c.name for c in fs.model_columns][-1] == "horizon"
        frame = fs.compute(None, datetime(2024, 3, 3))
        assert list(zip(frame["product_id"], frame["horizon"], strict=True)) == [
            ("p1", 1),
            ("p1", 2),
            ("p2", 1),
            ("p2", 2),
        ]
        online = fs.compute(["p2"], datetime(2024, 3, 4))
        assert list(online["horizon"]) == [1, 2] and list(online["sold_sum_qty_7d"]) == [5.0] * 2
