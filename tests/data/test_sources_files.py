"""File sources read through DuckDB: CSV, Parquet, JSON lines and globs; errors; fingerprints."""

from __future__ import annotations

import io
import os
import time
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from cycleml import Project
from cycleml.data import SourceSet
from cycleml.errors import SourceError
from cycleml.spec import load_spec

EVENTS = pd.DataFrame(
    {
        "user_id": ["u1", "u2", "u1", "u3", "u2"],
        "ts": pd.to_datetime(
            [
                "2026-01-01 08:00:00",
                "2026-01-02 09:30:00",
                "2026-01-03 10:00:00",
                "2026-01-04 23:59:59",
                "2026-01-05 00:00:01",
            ]
        ),
        "event_type": ["view", "buy", "view", "view", "buy"],
        "value": [0.0, 19.5, 0.0, None, 5.25],
        "qty": [1, 2, 1, 1, 3],
    }
)
TYPES = {
    "user_id": "VARCHAR",
    "ts": "TIMESTAMP",
    "event_type": "VARCHAR",
    "value": "DOUBLE",
    "qty": "BIGINT",
}


def _parquet(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


def _csv(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False, date_format="%Y-%m-%d %H:%M:%S")


def _jsonl(frame: pd.DataFrame) -> str:
    return frame.to_json(orient="records", lines=True, date_format="iso")


SPEC = """spec_version: 1
name: files
sources:
{sources}
"""


def _spec(**sources: str) -> str:
    return SPEC.format(sources="\n".join(f"  {k}: {v}" for k, v in sources.items()))


@pytest.mark.parametrize(
    ("filename", "content"),
    [
        ("data/events.csv", _csv(EVENTS)),
        ("data/events.parquet", _parquet(EVENTS)),
        ("data/events.jsonl", _jsonl(EVENTS)),
    ],
    ids=["csv", "parquet", "jsonl"],
)
def test_each_file_format_gives_rows_columns_and_types(
    write_project, filename: str, content
) -> None:
    root = write_project(
        _spec(events=f"{{path: {filename}, entity: user_id, time: ts}}"), {filename: content}
    )
    [info] = Project(root).sources()
    assert info.error is None
    assert info.kind == "file"
    assert info.location == filename
    assert info.rows == len(EVENTS)
    assert info.columns == TYPES
    assert (info.entity, info.time) == ("user_id", "ts")
    with SourceSet(load_spec(root), root) as sources:
        view = sources.view("events")
        got = sources.con.sql(f"SELECT * FROM {view} ORDER BY ts").df()
    pd.testing.assert_frame_equal(got.reset_index(drop=True), EVENTS, check_dtype=False)


def test_explicit_format_reads_a_file_with_another_extension(write_project) -> None:
    root = write_project(
        _spec(events="{path: data/events.txt, format: csv, entity: user_id}"),
        {"data/events.txt": _csv(EVENTS)},
    )
    [info] = Project(root).sources()
    assert info.error is None and info.rows == len(EVENTS) and info.columns == TYPES


def test_unknown_extension_without_format_is_a_clear_error(write_project) -> None:
    root = write_project(_spec(events="{path: events.dat}"), {"events.dat": _csv(EVENTS)})
    [info] = Project(root).sources()
    assert info.rows is None and "cannot tell the format" in info.error
    assert "format: csv" in info.error


def test_a_glob_over_several_parquet_files_adds_up_the_rows(write_project) -> None:
    parts = {f"data/part-{i}.parquet": _parquet(EVENTS.iloc[: i + 1]) for i in range(4)}
    root = write_project(_spec(events='{path: "data/part-*.parquet", entity: user_id}'), parts)
    [info] = Project(root).sources()
    assert info.error is None
    assert info.rows == 1 + 2 + 3 + 4
    assert info.columns == TYPES


def test_a_glob_matching_only_a_folder_is_no_file(write_project) -> None:
    root = write_project(_spec(events="{path: data/events.parquet}"), {"data/events.parquet/x": ""})
    [info] = Project(root).sources()
    assert "no file matches data/events.parquet" in info.error


def test_an_absolute_path_is_used_as_is(write_project, tmp_path: Path) -> None:
    outside = tmp_path / "outside.parquet"
    outside.write_bytes(_parquet(EVENTS))
    root = write_project(_spec(events=f"{{path: {outside}, entity: user_id}}"))
    [info] = Project(root).sources()
    assert info.error is None and info.rows == len(EVENTS)


# -- errors -----------------------------------------------------------------------------------


def test_a_missing_file_names_the_source_and_the_path(write_project) -> None:
    root = write_project(_spec(events="{path: data/nope.parquet, entity: user_id}"))
    with SourceSet(load_spec(root), root) as sources, pytest.raises(SourceError) as info:
        sources.view("events")
    assert "'events'" in info.value.message
    assert "data/nope.parquet" in info.value.message
    assert str(root) in info.value.message
    assert info.value.hint and "path:" in info.value.hint


@pytest.mark.parametrize(
    ("role", "spec_value", "missing"),
    [
        ("entity", "{path: e.parquet, entity: customer_id, time: ts}", "customer_id"),
        ("time", "{path: e.parquet, entity: user_id, time: happened_at}", "happened_at"),
    ],
)
def test_a_missing_entity_or_time_column_names_it_and_lists_the_real_ones(
    write_project, role: str, spec_value: str, missing: str
) -> None:
    root = write_project(_spec(events=spec_value), {"e.parquet": _parquet(EVENTS)})
    with SourceSet(load_spec(root), root) as sources, pytest.raises(SourceError) as info:
        sources.check("events")
    assert f"{role} column {missing!r}" in info.value.message
    assert info.value.hint == (
        f"columns are: user_id, ts, event_type, value, qty; fix `sources.events.{role}`"
    )


def test_an_unknown_source_name_lists_the_known_ones(write_project) -> None:
    root = write_project(_spec(events="{path: e.parquet}"), {"e.parquet": _parquet(EVENTS)})
    with SourceSet(load_spec(root), root) as sources, pytest.raises(SourceError) as info:
        sources.view("evnets")
    assert "evnets" in info.value.message and "events" in info.value.hint


@pytest.mark.parametrize(
    ("filename", "content", "expected"),
    [
        ("bad.parquet", b"PAR1" + b"\x00" * 64 + b"PAR1", "cannot be read as parquet"),
        ("half.parquet", _parquet(EVENTS)[:200], "cannot be read as parquet"),
        ("bad.jsonl", '{"id": 1}\n{"id": \n', "cannot be read as json"),
        # A malformed line past what DuckDB samples when it opens the file.
        ("late.jsonl", '{"id": 1}\n' * 30_000 + '{"id": \n', "cannot be read"),
    ],
    ids=["garbage-parquet", "truncated-parquet", "bad-json", "bad-json-late"],
)
def test_sources_reports_an_unreadable_file_instead_of_raising(
    write_project, filename: str, content, expected: str
) -> None:
    root = write_project(
        _spec(bad=f"{{path: {filename}}}", good="{path: e.parquet}"),
        {filename: content, "e.parquet": _parquet(EVENTS)},
    )
    bad, good = Project(root).sources()
    assert bad.name == "bad" and bad.rows is None and bad.columns == {}
    assert expected in bad.error and "'bad'" in bad.error and "hint:" in bad.error
    assert good.error is None and good.rows == len(EVENTS)
    assert bad.to_dict()["error"] == bad.error


def test_describe_twice_after_an_error_gives_the_same_error(write_project) -> None:
    root = write_project(
        _spec(events="{path: e.parquet, entity: nope}"), {"e.parquet": _parquet(EVENTS)}
    )
    with SourceSet(load_spec(root), root) as sources:
        first = sources.describe("events").error
        second = sources.describe("events").error
    assert first == second and "entity column 'nope'" in first


# -- times ------------------------------------------------------------------------------------


def test_text_times_with_offsets_become_naive_utc(write_project) -> None:
    csv = (
        "user_id,ts\n"
        "u1,2026-01-01T12:00:00+02:00\n"
        "u2,2026-01-01T12:00:00Z\n"
        "u3,2026-01-01 12:00:00-05:00\n"
    )
    root = write_project(_spec(events="{path: e.csv, entity: user_id, time: ts}"), {"e.csv": csv})
    with SourceSet(load_spec(root), root) as sources:
        assert sources.columns("events")["ts"] == "TIMESTAMP"
        rows = sources.con.sql(f"SELECT * FROM {sources.view('events')} ORDER BY 1").fetchall()
    assert rows == [
        ("u1", datetime(2026, 1, 1, 10, 0)),
        ("u2", datetime(2026, 1, 1, 12, 0)),
        ("u3", datetime(2026, 1, 1, 17, 0)),
    ]


@pytest.fixture
def new_york_machine(monkeypatch):
    """The process runs in America/New_York (DuckDB takes a new connection's zone from TZ)."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    probe = duckdb.connect()
    assert probe.sql("SELECT current_setting('TimeZone')").fetchall() == [("America/New_York",)]
    probe.close()
    yield
    monkeypatch.undo()
    time.tzset()


def test_zoned_parquet_timestamps_become_naive_utc_on_any_machine_time_zone(
    write_project, new_york_machine
) -> None:
    frame = pd.DataFrame(
        {
            "user_id": ["u1", "u2"],
            "ts": pd.to_datetime(["2026-03-01 12:00", "2026-07-01 12:00"]).tz_localize(
                "Europe/Berlin"
            ),
            "seen": pd.to_datetime(["2026-03-01 00:30", "2026-07-01 00:30"]).tz_localize("UTC"),
            "text_ts": ["2026-03-01 12:00:00", "2026-07-01 12:00:00"],
        }
    )
    root = write_project(
        _spec(
            a="{path: a.parquet, entity: user_id, time: ts}",
            b="{path: a.parquet, entity: user_id, time: text_ts}",
        ),
        {"a.parquet": _parquet(frame)},
    )
    with SourceSet(load_spec(root), root) as s:
        assert s.columns("a")["ts"] == s.columns("a")["seen"] == "TIMESTAMP"
        assert s.columns("b")["text_ts"] == "TIMESTAMP"
        zoned = s.con.sql(f"SELECT ts, seen FROM {s.view('a')} ORDER BY 1").fetchall()
        text = s.con.sql(f"SELECT text_ts FROM {s.view('b')} ORDER BY 1").fetchall()
    # Berlin is UTC+1 in March and UTC+2 in July.
    assert zoned == [
        (datetime(2026, 3, 1, 11, 0), datetime(2026, 3, 1, 0, 30)),
        (datetime(2026, 7, 1, 10, 0), datetime(2026, 7, 1, 0, 30)),
    ]
    # Text without an offset is UTC, not the machine's local time.
    assert text == [(datetime(2026, 3, 1, 12, 0),), (datetime(2026, 7, 1, 12, 0),)]


# -- fingerprints -----------------------------------------------------------------------------


def test_fingerprint_is_stable_and_changes_when_a_file_changes(write_project) -> None:
    root = write_project(
        _spec(
            events="{path: data/events.csv, entity: user_id}",
            users="{path: data/users.parquet, entity: user_id}",
        ),
        {"data/events.csv": _csv(EVENTS), "data/users.parquet": _parquet(EVENTS)},
    )
    spec = load_spec(root)

    def fingerprint(names: list[str]) -> str:
        with SourceSet(spec, root) as sources:
            return sources.fingerprint(names)

    base = fingerprint(["events", "users"])
    assert fingerprint(["users", "events"]) == base  # order does not matter
    assert fingerprint(["events"]) != base
    assert fingerprint(["events"]) == fingerprint(["events"])

    events_only, users_only = fingerprint(["events"]), fingerprint(["users"])
    path = root / "data" / "events.csv"
    stat = path.stat()
    # Same size, other bytes, later time: a changed file.
    path.write_text(_csv(EVENTS).replace("u1", "u9"))
    assert path.stat().st_size == stat.st_size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert fingerprint(["events"]) != events_only
    assert fingerprint(["users"]) == users_only  # the other source is untouched
    changed = fingerprint(["events"])
    with path.open("a", encoding="utf-8") as handle:  # a row appended
        handle.write("u4,2026-01-06 00:00:00,view,1.0,1\n")
    assert fingerprint(["events"]) not in (events_only, changed)


def test_fingerprint_of_a_glob_changes_when_a_file_is_added(write_project) -> None:
    root = write_project(
        _spec(events='{path: "data/*.parquet"}'), {"data/a.parquet": _parquet(EVENTS)}
    )
    spec = load_spec(root)
    with SourceSet(spec, root) as sources:
        before = sources.fingerprint(["events"])
    (root / "data" / "b.parquet").write_bytes(_parquet(EVENTS))
    with SourceSet(spec, root) as sources:
        assert sources.fingerprint(["events"]) != before
