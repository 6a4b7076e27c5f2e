"""Inactivity (churn) labels on a tiny hand-written event log: eligibility, values by hand, and
cutoffs whose label window runs past the end of the data."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from cycleml import Project
from cycleml.errors import DataError

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


def spec(label: str, cutoffs: str) -> str:
    return f"""\
spec_version: 1
name: labels
sources:
  events: {{path: data/events.csv, entity: user_id, time: ts}}
problems:
  churn:
    entity: user_id
    task: binary
    label: {label}
    cutoffs: {cutoffs}
    features: [activity]
features:
  activity:
    source: events
    windows: [7d]
    aggregate: {{count: "*"}}
"""


LABEL_14 = "{kind: inactivity, source: events, days: 7, active_days: 14}"
WEEKLY = "{every: 7d, start: 2024-02-09, end: 2024-03-08}"


def _training(root: Path):
    fs = Project(root).features("churn")
    try:
        return fs.training_frame()
    finally:
        fs.sources.close()


def _rows(built) -> set[tuple[str, datetime, int]]:
    frame = built.frame
    return {
        (u, t.to_pydatetime(), int(y))
        for u, t, y in zip(frame["user_id"], frame["as_of"], frame["label"], strict=True)
    }


FEB9, FEB16, FEB23, MAR1 = (datetime(2024, m, d) for m, d in [(2, 9), (2, 16), (2, 23), (3, 1)])


def test_labels_and_eligibility_by_hand(write_project):
    root = write_project(spec(LABEL_14, WEEKLY), {"data/events.csv": EVENTS_CSV})
    built = _training(root)
    # The data ends 2024-03-10 (u2's last event), so a cutoff needs cutoff + 7d <= Mar 10:
    # Feb 9, 16, 23 and Mar 1 qualify; Mar 8 does not.
    assert built.cutoffs == [FEB9, FEB16, FEB23, MAR1]
    # Eligible: an event in [cutoff - 14d, cutoff). Label: 1 when no event in [cutoff, cutoff + 7d).
    assert _rows(built) == {
        # Feb 9: only u1 (Feb 5) was active in [Jan 26, Feb 9); nothing in [Feb 9, Feb 16) -> 1
        ("u1", FEB9, 1),
        # Feb 16: u1 (Feb 5) in [Feb 2, Feb 16); nothing in [Feb 16, Feb 23) -> 1
        ("u1", FEB16, 1),
        # Feb 23: only u2 (Feb 22) in [Feb 9, Feb 23) (u1's Feb 5 is too old); u2 buys at
        # exactly Feb 23 00:00, inside [Feb 23, Mar 2) -> 0
        ("u2", FEB23, 0),
        # Mar 1: all three were active in [Feb 16, Mar 1)
        ("u1", MAR1, 0),  # events at Mar 1 00:00 and Mar 2
        ("u2", MAR1, 1),  # next event Mar 10, after Mar 8
        ("u3", MAR1, 1),  # no later event
        # u4's only event is at exactly Feb 16 00:00: not before the Feb 16 cutoff (no row),
        # but inside [Feb 9, Feb 23) and [Feb 16, Mar 1); nothing follows -> 1
        ("u4", FEB23, 1),
        ("u4", MAR1, 1),
    }
    assert len(built.notes) == 1
    assert "left out 1 cutoff" in built.notes[0]
    assert "label window" in built.notes[0]


def test_active_days_defaults_to_label_days(write_project):
    label = "{kind: inactivity, source: events, days: 7}"
    root = write_project(spec(label, WEEKLY), {"data/events.csv": EVENTS_CSV})
    # with a 7-day activity window u1 is no longer eligible on Feb 16 ([Feb 9, Feb 16) is empty)
    assert {(u, t) for u, t, _ in _rows(_training(root))} == {
        ("u1", FEB9),
        ("u2", FEB23),
        ("u1", MAR1),
        ("u2", MAR1),
        ("u3", MAR1),
        ("u4", FEB23),  # its Feb 16 00:00 event is on the lower edge of [Feb 16, Feb 23)
    }


def test_schedule_without_end_also_reports_cutoffs_left_out(write_project):
    """Without `end` the schedule runs to the end of the data (Mar 10): Mar 8 is left out."""
    root = write_project(
        spec(LABEL_14, "{every: 7d, start: 2024-02-09}"), {"data/events.csv": EVENTS_CSV}
    )
    built = _training(root)
    assert built.cutoffs == [FEB9, FEB16, FEB23, MAR1]
    assert len(built.notes) == 1 and "left out 1 cutoff" in built.notes[0]


def test_schedule_end_past_the_data_counts_every_left_out_cutoff(write_project):
    root = write_project(
        spec(LABEL_14, "{every: 7d, start: 2024-02-09, end: 2024-03-29}"),
        {"data/events.csv": EVENTS_CSV},
    )
    built = _training(root)
    assert built.cutoffs == [FEB9, FEB16, FEB23, MAR1]
    # Mar 8, 15, 22 and 29 are all left out
    assert "left out 4 cutoff" in built.notes[0]


def test_no_complete_cutoff_is_a_data_error_with_a_hint(write_project):
    root = write_project(
        spec(LABEL_14, "{every: 7d, start: 2024-03-05, end: 2024-03-20}"),
        {"data/events.csv": EVENTS_CSV},
    )
    with pytest.raises(DataError) as info:
        _training(root)
    assert "label window" in info.value.message
    assert info.value.hint and "cutoffs.start" in info.value.hint


def test_label_horizon_longer_than_the_data_is_a_data_error(write_project):
    label = "{kind: inactivity, source: events, days: 90}"
    root = write_project(spec(label, WEEKLY), {"data/events.csv": EVENTS_CSV})
    with pytest.raises(DataError) as info:
        Project(root).build_dataset("churn")
    assert "90-day" in info.value.message
    assert info.value.hint


def test_date_only_time_column(write_project):
    """A time column DuckDB reads as DATE (no time of day) works like a timestamp at midnight."""
    dated = "\n".join(
        ",".join([u, ts[:10], kind, value]) if i else line
        for i, line in enumerate(EVENTS_CSV.strip().splitlines())
        for u, ts, kind, value in [line.split(",")]
    )
    root = write_project(spec(LABEL_14, WEEKLY), {"data/events.csv": dated + "\n"})
    built = _training(root)
    # same as the timestamped log: u1's Feb 29 18:00 becomes Feb 29 00:00, nothing moves across
    # a cutoff
    assert built.cutoffs == [FEB9, FEB16, FEB23, MAR1]
    assert {(u, t, y) for u, t, y in _rows(built)} == {
        ("u1", FEB9, 1),
        ("u1", FEB16, 1),
        ("u2", FEB23, 0),
        ("u1", MAR1, 0),
        ("u2", MAR1, 1),
        ("u3", MAR1, 1),
        ("u4", FEB23, 1),
        ("u4", MAR1, 1),
    }
