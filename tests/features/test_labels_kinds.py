"""Conversion, count and sum labels, eligibility, column labels (with cutoffs and history) and
cutoff tables, on a tiny hand-written event log: every expected value is worked out by hand in
the comments."""

from __future__ import annotations

from datetime import datetime

import pytest

from cycleml import Project
from cycleml.errors import SpecError

EVENTS_CSV = """\
user_id,ts,event_type,value
u1,2024-01-15 10:00:00,view,1.0
u1,2024-02-05 09:00:00,buy,10.0
u1,2024-02-24 00:00:00,view,2.0
u1,2024-02-29 18:00:00,buy,20.0
u1,2024-03-01 00:00:00,view,100.0
u1,2024-03-02 00:00:00,buy,1000.0
u2,2024-02-22 00:00:00,view,4.0
u2,2024-02-23 00:00:00,buy,6.0
u2,2024-03-10 00:00:00,view,50.0
u3,2024-02-25 00:00:00,view,7.0
u4,2024-02-16 00:00:00,view,3.0
"""

USERS_CSV = """\
user_id,signup_at,plan
u1,2024-01-10 00:00:00,pro
u2,2024-02-20 00:00:00,free
u3,2024-02-26 00:00:00,free
u4,2024-03-05 00:00:00,free
u5,2024-02-01 00:00:00,free
"""

WEEKLY = "{every: 7d, start: 2024-02-09, end: 2024-03-08}"
FEB9, FEB16, FEB23, MAR1 = (datetime(2024, m, d) for m, d in [(2, 9), (2, 16), (2, 23), (3, 1)])


def spec(label: str, task: str, cutoffs: str | None = WEEKLY, extra_sources: str = "") -> str:
    cut = f"\n    cutoffs: {cutoffs}" if cutoffs else ""
    return f"""\
spec_version: 1
name: kinds
sources:
  events: {{path: data/events.csv, entity: user_id, time: ts}}
  users: {{path: data/users.csv, entity: user_id, time: signup_at}}
{extra_sources}problems:
  p:
    entity: user_id
    task: {task}
    label: {label}{cut}
    features: [activity]
features:
  activity:
    source: events
    windows: [7d]
    aggregate: {{count: "*", sum: value}}
"""


def build(write_project, text: str, files: dict | None = None):
    root = write_project(
        text, {"data/events.csv": EVENTS_CSV, "data/users.csv": USERS_CSV, **(files or {})}
    )
    with Project(root).features("p") as fs:
        return fs.training_frame()


def rows(built) -> dict[tuple[str, datetime], float]:
    f = built.frame
    return {
        (u, t.to_pydatetime()): y
        for u, t, y in zip(f["user_id"], f["as_of"], f["label"], strict=True)
    }


# Default eligibility: the label's source has a row of the entity before the cutoff.
# Feb 9: u1 (Jan 15). Feb 16: u1 (u4's only event is at exactly Feb 16 00:00, not before).
# Feb 23: u1, u2 (Feb 22), u4. Mar 1: u1, u2, u3 (Feb 25), u4.
# The data ends Mar 10: Mar 8 + 7 days is past it, so Mar 8 is left out.


def test_event_within_is_conversion_in_the_window(write_project):
    built = build(
        write_project,
        spec("{kind: event_within, source: events, days: 7, event_types: [buy]}", "binary"),
    )
    assert built.cutoffs == [FEB9, FEB16, FEB23, MAR1]
    assert rows(built) == {
        ("u1", FEB9): 0,  # no buy in [Feb 9, Feb 16)
        ("u1", FEB16): 0,  # none in [Feb 16, Feb 23)
        ("u1", FEB23): 1,  # buy Feb 29 18:00
        ("u2", FEB23): 1,  # buy at exactly Feb 23 00:00: the window's closed lower edge
        ("u4", FEB23): 0,
        ("u1", MAR1): 1,  # buy Mar 2 (the Mar 1 event is a view)
        ("u2", MAR1): 0,  # next event Mar 10, a view
        ("u3", MAR1): 0,
        ("u4", MAR1): 0,
    }
    assert any("left out 1 cutoff" in n and "label window" in n for n in built.notes)
    assert built.frame["label"].dtype.kind in "iu"


def test_count_within_counts_and_is_zero_when_nothing_happens(write_project):
    built = build(
        write_project, spec("{kind: count_within, source: events, days: 7}", "regression")
    )
    assert rows(built) == {
        ("u1", FEB9): 0,
        ("u1", FEB16): 0,
        ("u1", FEB23): 2,  # Feb 24, Feb 29
        ("u2", FEB23): 1,  # Feb 23 00:00
        ("u4", FEB23): 0,
        ("u1", MAR1): 2,  # Mar 1 00:00, Mar 2
        ("u2", MAR1): 0,  # Mar 10 is past Mar 8
        ("u3", MAR1): 0,
        ("u4", MAR1): 0,
    }


def test_sum_within_of_some_event_types(write_project):
    label = "{kind: sum_within, source: events, days: 7, column: value, event_types: [buy]}"
    built = build(write_project, spec(label, "regression"))
    assert rows(built) == {
        ("u1", FEB9): 0,
        ("u1", FEB16): 0,
        ("u1", FEB23): 20.0,  # the Feb 29 buy; the Feb 24 view does not count
        ("u2", FEB23): 6.0,
        ("u4", FEB23): 0,
        ("u1", MAR1): 1000.0,  # the Mar 2 buy; the Mar 1 view (100) does not count
        ("u2", MAR1): 0,
        ("u3", MAR1): 0,
        ("u4", MAR1): 0,
    }


def test_eligibility_from_an_entity_table(write_project):
    """`eligible.source`: the users who signed up before the cutoff, events or not."""
    label = (
        "{kind: event_within, source: events, days: 7, event_types: [buy], "
        "eligible: {source: users}}"
    )
    built = build(write_project, spec(label, "binary"))
    assert rows(built) == {
        ("u1", FEB9): 0,
        ("u5", FEB9): 0,  # signed up Feb 1, never active
        ("u1", FEB16): 0,
        ("u5", FEB16): 0,
        ("u1", FEB23): 1,
        ("u2", FEB23): 1,  # signed up Feb 20
        ("u5", FEB23): 0,
        ("u1", MAR1): 1,
        ("u2", MAR1): 0,
        ("u3", MAR1): 0,  # signed up Feb 26
        ("u5", MAR1): 0,
        # u4 signs up Mar 5: never eligible, although it has an event on Feb 16
    }


def test_eligibility_from_an_entity_table_and_recent_activity(write_project):
    """`eligible: {source: users, active_days: 7}`: signed up, and active in [cutoff - 7d,
    cutoff)."""
    label = (
        "{kind: count_within, source: events, days: 7, eligible: {source: users, active_days: 7}}"
    )
    built = build(write_project, spec(label, "regression"))
    assert set(rows(built)) == {
        ("u1", FEB9),  # Feb 5 in [Feb 2, Feb 9)
        # Feb 16: nobody active in [Feb 9, Feb 16)
        ("u2", FEB23),  # Feb 22; u4 (Feb 16) is active but has not signed up yet
        ("u1", MAR1),  # Feb 24, Feb 29
        ("u2", MAR1),  # Feb 23
        ("u3", MAR1),  # Feb 25, signed up Feb 26 < Mar 1
    }


def test_churn_eligibility_with_an_entity_table(write_project):
    """inactivity + eligible.source: active in the `active_days` before AND in the table."""
    label = (
        "{kind: inactivity, source: events, days: 7, active_days: 14, eligible: {source: users}}"
    )
    built = build(write_project, spec(label, "binary"))
    # Without the table (test_labels_churn) u4 is eligible on Feb 23 and Mar 1; it signs up
    # on Mar 5, so here it is not.
    assert rows(built) == {
        ("u1", FEB9): 1,
        ("u1", FEB16): 1,
        ("u2", FEB23): 0,
        ("u1", MAR1): 0,
        ("u2", MAR1): 1,
        ("u3", MAR1): 1,
    }


def test_batch_eligibility_follows_the_label(write_project):
    label = (
        "{kind: event_within, source: events, days: 7, event_types: [buy], "
        "eligible: {source: users}}"
    )
    root = write_project(
        spec(label, "binary"), {"data/events.csv": EVENTS_CSV, "data/users.csv": USERS_CSV}
    )
    with Project(root).features("p") as fs:
        frame = fs.compute(None, datetime(2024, 2, 23))
    assert sorted(frame["user_id"]) == ["u1", "u2", "u5"]
    # the default: a row of the label's source before as_of
    root = write_project(
        spec("{kind: sum_within, source: events, days: 7, column: value}", "regression"),
        {"data/events.csv": EVENTS_CSV, "data/users.csv": USERS_CSV},
    )
    with Project(root).features("p") as fs:
        assert sorted(fs.compute(None, datetime(2024, 2, 23))["user_id"]) == ["u1", "u2", "u4"]


# -- column labels --------------------------------------------------------------------------

CUSTOMERS_CSV = """\
user_id,plan,upgraded
u1,pro,1
u2,free,0
u3,free,
"""

TIERS_CSV = """\
user_id,valid_from,tier
u1,2024-01-01 00:00:00,0
u1,2024-02-20 00:00:00,1
u2,2024-02-10 00:00:00,0
u2,2024-03-01 00:00:00,1
"""


def test_column_label_without_cutoffs(write_project):
    extra = "  customers: {path: data/customers.csv, entity: user_id}\n"
    built = build(
        write_project,
        spec("{kind: column, source: customers, column: upgraded}", "binary", None, extra),
        {"data/customers.csv": CUSTOMERS_CSV},
    )
    labels = dict(zip(built.frame["user_id"], built.frame["label"], strict=True))
    assert labels == {"u1": 1, "u2": 0}  # u3 has no label value
    assert any("no label" in n for n in built.notes)


def test_column_label_with_cutoffs_takes_the_row_valid_at_the_cutoff(write_project):
    extra = "  tiers: {path: data/tiers.csv, entity: user_id, time: valid_from}\n"
    cutoffs = "{every: 7d, start: 2024-02-09, end: 2024-03-01}"
    built = build(
        write_project,
        spec("{kind: column, source: tiers, column: tier}", "binary", cutoffs, extra),
        {"data/tiers.csv": TIERS_CSV},
    )
    # The data (valid_from) ends Mar 1 and a column label has no window: all four cutoffs stay.
    assert built.cutoffs == [FEB9, FEB16, FEB23, MAR1]
    # Eligible: a row with valid_from < cutoff; label: the row with the latest valid_from <=
    # cutoff.
    assert rows(built) == {
        ("u1", FEB9): 0,
        ("u1", FEB16): 0,
        ("u2", FEB16): 0,  # valid from Feb 10
        ("u1", FEB23): 1,  # the Feb 20 row
        ("u2", FEB23): 0,
        ("u1", MAR1): 1,
        ("u2", MAR1): 1,  # the row valid from exactly Mar 1 is the one valid at Mar 1
    }


def test_column_label_batch_eligibility_is_a_row_before_as_of(write_project):
    extra = "  tiers: {path: data/tiers.csv, entity: user_id, time: valid_from}\n"
    root = write_project(
        spec("{kind: column, source: tiers, column: tier}", "binary", WEEKLY, extra),
        {"data/events.csv": EVENTS_CSV, "data/users.csv": USERS_CSV, "data/tiers.csv": TIERS_CSV},
    )
    with Project(root).features("p") as fs:
        assert list(fs.compute(None, FEB9)["user_id"]) == ["u1"]
        assert list(fs.compute(None, datetime(2024, 2, 10, 0, 0, 1))["user_id"]) == ["u1", "u2"]


def test_column_label_with_a_cutoff_table(write_project):
    extra = (
        "  tiers: {path: data/tiers.csv, entity: user_id, time: valid_from}\n"
        "  asks: {path: data/asks.csv, entity: user_id}\n"
    )
    asks = (
        "user_id,asked_at\nu1,2024-02-19 00:00:00\nu1,2024-02-21 00:00:00\nu2,2024-02-25 00:00:00\n"
    )
    built = build(
        write_project,
        spec(
            "{kind: column, source: tiers, column: tier}",
            "binary",
            "{source: asks, time: asked_at}",
            extra,
        ),
        {"data/tiers.csv": TIERS_CSV, "data/asks.csv": asks},
    )
    assert rows(built) == {
        ("u1", datetime(2024, 2, 19)): 0,
        ("u1", datetime(2024, 2, 21)): 1,
        ("u2", datetime(2024, 2, 25)): 0,
    }


def test_cutoff_table_gives_one_row_per_table_row_and_drops_incomplete_windows(write_project):
    extra = "  asks: {path: data/asks.csv, entity: user_id}\n"
    asks = (
        "user_id,asked_at\n"
        "u1,2024-02-20 12:00:00\n"  # [Feb 20 12:00, Feb 27 12:00): Feb 24 view -> 1
        "u2,2024-02-20 00:00:00\n"  # Feb 22, Feb 23 -> 2
        "u3,2024-01-01 00:00:00\n"  # no event in [Jan 1, Jan 8) -> 0 (and u3 has no history)
        "u3,2024-03-04 00:00:00\n"  # Mar 4 + 7d > Mar 10, the end of the data: left out
        "u9,2024-03-05 00:00:00\n"  # left out too
    )
    built = build(
        write_project,
        spec(
            "{kind: count_within, source: events, days: 7}",
            "regression",
            "{source: asks, time: asked_at}",
            extra,
        ),
        {"data/asks.csv": asks},
    )
    assert rows(built) == {
        ("u1", datetime(2024, 2, 20, 12)): 1,
        ("u2", datetime(2024, 2, 20)): 2,
        ("u3", datetime(2024, 1, 1)): 0,
    }
    note = next(n for n in built.notes if "left out" in n)
    assert "2 of 5" in note and "label window" in note and "2024-03-10" in note
    frame = built.frame.set_index("user_id")
    # features still as of each row's own cutoff: u2 had 1 event in [Feb 13, Feb 20)? none
    assert frame.loc["u2", "activity_count_7d"] == 0
    assert frame.loc["u1", "activity_count_7d"] == 0  # [Feb 13 12:00, Feb 20 12:00): nothing


def test_label_kind_and_task_must_agree(write_project):
    root = write_project(
        spec("{kind: event_within, source: events, days: 7, event_types: [buy]}", "regression")
    )
    with pytest.raises(SpecError) as info:
        Project(root).features("p")
    assert any("task" in i.path and "binary" in i.message for i in info.value.issues)
    root = write_project(spec("{kind: count_within, source: events, days: 7}", "binary", None))
    with pytest.raises(SpecError) as info:
        Project(root).features("p")
    paths = {i.path for i in info.value.issues}
    assert "problems.p.task" in paths and "problems.p.cutoffs" in paths


def test_unknown_sources_in_eligibility_and_cutoffs_are_spec_errors(write_project):
    label = "{kind: count_within, source: events, days: 7, eligible: {source: userz}}"
    root = write_project(spec(label, "regression", "{source: askz, time: t}"))
    with pytest.raises(SpecError) as info:
        Project(root).features("p")
    messages = {i.path: i for i in info.value.issues}
    assert "userz" in messages["problems.p.label.eligible.source"].message
    assert "users" in (messages["problems.p.label.eligible.source"].hint or "")
    assert "askz" in messages["problems.p.cutoffs.source"].message
