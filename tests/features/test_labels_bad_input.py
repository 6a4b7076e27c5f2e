"""Bad input to a label: a horizon past the data, a time column with mixed time zones or values
that are not times, duplicate keys in an entity table, event types that never occur."""

from __future__ import annotations

import pytest

from cycleml import Project
from cycleml.errors import DataError

EVENTS_CSV = """\
user_id,ts,event_type,value
u1,2024-01-15 10:00:00,view,1.0
u1,2024-02-05 09:00:00,buy,10.0
u2,2024-02-22 00:00:00,view,4.0
u2,2024-03-10 00:00:00,view,50.0
"""


def spec(label: str, task: str = "binary", cutoffs: str | None = None, extra: str = "") -> str:
    cutoffs = cutoffs or "{every: 7d, start: 2024-02-09}"
    return f"""\
spec_version: 1
name: bad
sources:
  events: {{path: data/events.csv, entity: user_id, time: ts}}
{extra}problems:
  p:
    entity: user_id
    task: {task}
    label: {label}
    cutoffs: {cutoffs}
    features: [activity]
features:
  activity: {{source: events, windows: [7d], aggregate: {{count: "*"}}}}
"""


def training(write_project, text: str, files: dict | None = None):
    root = write_project(text, {"data/events.csv": EVENTS_CSV, **(files or {})})
    with Project(root).features("p") as fs:
        return fs.training_frame()


def test_label_horizon_past_the_data_names_horizon_data_end_and_fix(write_project):
    label = "{kind: event_within, source: events, days: 60, event_types: [buy]}"
    with pytest.raises(DataError) as info:
        training(write_project, spec(label))
    message = info.value.message
    assert "60-day" in message and "2024-03-10" in message and "'p'" in message
    # the last usable cutoff: Mar 10 - 60 days = Jan 10
    assert "2024-01-10" in info.value.hint and "cutoffs.start" in info.value.hint


def test_cutoff_table_entirely_past_the_data(write_project):
    extra = "  asks: {path: data/asks.csv, entity: user_id}\n"
    asks = "user_id,asked_at\nu1,2024-03-05 00:00:00\n"
    with pytest.raises(DataError) as info:
        training(
            write_project,
            spec(
                "{kind: count_within, source: events, days: 7}",
                "regression",
                "{source: asks, time: asked_at}",
                extra,
            ),
            {"data/asks.csv": asks},
        )
    assert "7-day" in info.value.message and "2024-03-10" in info.value.message


def test_mixed_time_zones_in_the_label_source(write_project):
    events = EVENTS_CSV.replace("2024-02-05 09:00:00", "2024-02-05 09:00:00+02:00")
    with pytest.raises(DataError) as info:
        training(
            write_project,
            spec("{kind: inactivity, source: events, days: 7}"),
            {"data/events.csv": events},
        )
    message = info.value.message
    assert "events.ts" in message and "1 value(s) carry a zone" in message
    assert "3 do not" in message and info.value.hint


def test_unparseable_times_in_the_label_source(write_project):
    events = EVENTS_CSV + "u3,yesterday,view,1.0\nu3,31/02/2024,view,1.0\n"
    with pytest.raises(DataError) as info:
        training(
            write_project,
            spec("{kind: inactivity, source: events, days: 7}"),
            {"data/events.csv": events},
        )
    assert "events.ts" in info.value.message and "2 value(s)" in info.value.message
    assert "ISO 8601" in info.value.hint


def test_duplicate_keys_in_the_entity_table_of_a_column_label(write_project):
    extra = "  customers: {path: data/customers.csv, entity: user_id}\n"
    customers = "user_id,upgraded\nu1,1\nu2,0\nu2,1\n"
    with pytest.raises(DataError) as info:
        training(
            write_project,
            spec("{kind: column, source: customers, column: upgraded}", extra=extra),
            {"data/customers.csv": customers},
        )
    assert "'customers'" in info.value.message and "'u2'" in info.value.message
    assert "time" in info.value.hint


def test_duplicate_rows_at_one_time_in_a_history_table(write_project):
    extra = "  tiers: {path: data/tiers.csv, entity: user_id, time: valid_from}\n"
    tiers = "user_id,valid_from,tier\nu1,2024-01-01,0\nu1,2024-02-01,1\nu1,2024-02-01,0\n"
    with pytest.raises(DataError) as info:
        training(
            write_project,
            spec("{kind: column, source: tiers, column: tier}", extra=extra),
            {"data/tiers.csv": tiers},
        )
    assert "'tiers'" in info.value.message and "'u1'" in info.value.message


def test_event_types_that_never_occur(write_project):
    label = "{kind: event_within, source: events, days: 7, event_types: [purchase]}"
    with pytest.raises(DataError) as info:
        training(write_project, spec(label))
    assert "'purchase'" in info.value.message
    assert "buy" in info.value.hint and "view" in info.value.hint
    # one of two missing: a note, the label still builds
    label = "{kind: event_within, source: events, days: 7, event_types: [buy, purchase]}"
    built = training(write_project, spec(label))
    assert any("'purchase'" in n and "buy, view" in n for n in built.notes)


def test_type_column_that_does_not_exist(write_project):
    label = "{kind: count_within, source: events, days: 7, event_types: [buy], type_column: kind}"
    with pytest.raises(DataError) as info:
        training(write_project, spec(label, "regression"))
    assert "events.kind" in info.value.message and "event_type" in info.value.hint
