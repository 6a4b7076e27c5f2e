"""Database sources read through DuckDB: SQLite and PostgreSQL tables named by a URL."""

from __future__ import annotations

import sqlite3
import time
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from cycleml import Project
from cycleml.data import SourceSet
from cycleml.errors import SourceError
from cycleml.spec import load_spec


def _spec(**sources: str) -> str:
    lines = "\n".join(f"  {k}: {v}" for k, v in sources.items())
    return f"spec_version: 1\nname: db\nsources:\n{lines}\n"


def _sqlite(path: Path, ddl: str, rows: list[tuple], table: str = "events") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    try:
        conn.execute(ddl)
        marks = ", ".join("?" * len(rows[0]))
        conn.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
        conn.commit()
    finally:
        conn.close()


SQLITE_ROWS = [
    ("u1", "2026-01-01 08:00:00", 1.5, 3),
    ("u2", "2026-01-02T09:30:00", None, 1),
    ("u1", "2026-01-03 10:00:00.250000", 2.0, 2),
    ("u3", "2026-01-04T12:00:00+02:00", 4.0, 5),
]


def _sqlite_project(write_project, url_path: str = "data/app.db", **extra: str) -> Path:
    root = write_project(
        _spec(events=f'{{url: "sqlite:///{url_path}", table: events, entity: user_id, time: ts}}')
        if not extra
        else _spec(**extra)
    )
    _sqlite(
        root / "data" / "app.db",
        "CREATE TABLE events (user_id TEXT, ts TEXT, value REAL, qty INTEGER)",
        SQLITE_ROWS,
    )
    return root


def test_sqlite_table_with_a_text_time_column_comes_out_as_timestamp(write_project) -> None:
    root = _sqlite_project(write_project)
    [info] = Project(root).sources()
    assert info.error is None
    assert info.kind == "sqlite"
    assert info.location == "sqlite:///data/app.db#events"
    assert info.rows == 4
    assert info.columns == {
        "user_id": "VARCHAR",
        "ts": "TIMESTAMP",
        "value": "DOUBLE",
        "qty": "BIGINT",
    }
    with SourceSet(load_spec(root), root) as sources:
        got = sources.con.sql(f"SELECT ts FROM {sources.view('events')} ORDER BY ts").fetchall()
    assert [row[0] for row in got] == [
        datetime(2026, 1, 1, 8, 0),
        datetime(2026, 1, 2, 9, 30),
        datetime(2026, 1, 3, 10, 0, 0, 250000),
        datetime(2026, 1, 4, 10, 0),  # +02:00 read as UTC
    ]


def test_sqlite_absolute_url_and_a_path_with_uri_characters(write_project, tmp_path) -> None:
    folder = tmp_path / "odd #name 100%"
    _sqlite(
        folder / "app.db",
        "CREATE TABLE events (user_id TEXT, ts TEXT, value REAL, qty INTEGER)",
        SQLITE_ROWS,
    )
    root = write_project(_spec(events=f'{{url: "sqlite:///{folder}/app.db", table: events}}'))
    [info] = Project(root).sources()
    assert info.error is None and info.rows == 4
    # Nothing was created next to the odd folder by a misread URI.
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("odd")) == [folder.name]


def test_sqlite_column_mixing_integers_reals_and_text_past_the_first_rows(write_project) -> None:
    root = write_project(
        _spec(events='{url: "sqlite:///app.db", table: events, entity: user_id, time: ts}')
    )
    rows = [(f"u{i}", None, i, i) for i in range(3000)]
    rows.append(("u9", "2026-02-01 00:00:00", 2.5, "many"))
    _sqlite(
        root / "app.db",
        "CREATE TABLE events (user_id TEXT, ts TEXT, price NUMERIC, note)",
        rows,
    )
    [info] = Project(root).sources()
    assert info.error is None, info.error
    assert info.rows == 3001
    assert info.columns["price"] == "DOUBLE"
    assert info.columns["ts"] == "TIMESTAMP"
    with SourceSet(load_spec(root), root) as sources:
        total, last = sources.con.sql(
            f"SELECT sum(price), max(ts) FROM {sources.view('events')}"
        ).fetchall()[0]
    assert total == pytest.approx(sum(range(3000)) + 2.5)
    assert last == datetime(2026, 2, 1)


def test_sqlite_file_that_does_not_exist(write_project) -> None:
    root = write_project(_spec(events='{url: "sqlite:///data/nope.db", table: events}'))
    with SourceSet(load_spec(root), root) as sources, pytest.raises(SourceError) as info:
        sources.view("events")
    assert "'events'" in info.value.message
    assert str(root / "data" / "nope.db") in info.value.message
    assert "does not exist" in info.value.message
    assert info.value.hint
    assert not (root / "data" / "nope.db").exists()  # reading never creates a database


def test_sqlite_table_that_does_not_exist_names_it(write_project) -> None:
    root = _sqlite_project(
        write_project, other='{url: "sqlite:///data/app.db", table: evnts, entity: user_id}'
    )
    [info] = Project(root).sources()
    assert info.rows is None
    assert "'other'" in info.error and "'evnts'" in info.error
    assert "hint:" in info.error and "table:" in info.error


def test_sqlite_missing_time_column_lists_the_real_ones(write_project) -> None:
    root = _sqlite_project(
        write_project, events='{url: "sqlite:///data/app.db", table: events, time: created}'
    )
    [info] = Project(root).sources()
    assert "time column 'created'" in info.error
    assert "columns are: user_id, ts, value, qty" in info.error


def test_sqlite_fingerprint_follows_the_table(write_project) -> None:
    root = _sqlite_project(write_project)
    spec = load_spec(root)
    with SourceSet(spec, root) as sources:
        before = sources.fingerprint(["events"])
    with SourceSet(spec, root) as sources:
        assert sources.fingerprint(["events"]) == before
    conn = sqlite3.connect(root / "data" / "app.db")
    conn.execute("INSERT INTO events VALUES ('u4', '2026-02-01 00:00:00', 1.0, 1)")
    conn.commit()
    conn.close()
    with SourceSet(spec, root) as sources:
        assert sources.fingerprint(["events"]) != before


# -- PostgreSQL -------------------------------------------------------------------------------


@pytest.fixture
def pg_events(pg_database: str) -> str:
    engine = sa.create_engine(pg_database)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE SCHEMA shop"))
            conn.execute(
                sa.text(
                    "CREATE TABLE shop.events (user_id text, ts timestamptz, "
                    "value double precision, price numeric(10, 2), qty integer, "
                    "day date, local_ts timestamp)"
                )
            )
            conn.execute(
                sa.text(
                    "INSERT INTO shop.events VALUES "
                    "('u1', '2026-01-01 12:00:00+02', 1.5, 10.25, 1, '2026-01-01', "
                    "'2026-01-01 12:00:00'), "
                    "('u2', '2026-01-02 00:30:00+00', NULL, 3, 2, '2026-01-02', NULL), "
                    "('u1', '2026-01-03 23:00:00-05', 2.5, NULL, 3, NULL, NULL)"
                )
            )
    finally:
        engine.dispose()
    return pg_database


@pytest.mark.postgres
def test_postgres_table_with_timestamptz_comes_out_as_naive_utc(
    write_project, pg_events: str
) -> None:
    root = write_project(
        _spec(events=f'{{url: "{pg_events}", table: shop.events, entity: user_id, time: ts}}')
    )
    [info] = Project(root).sources()
    assert info.error is None, info.error
    assert info.kind == "postgres"
    assert info.rows == 3
    assert info.columns == {
        "user_id": "VARCHAR",
        "ts": "TIMESTAMP",
        "value": "DOUBLE",
        "price": "DOUBLE",
        "qty": "INTEGER",
        "day": "DATE",
        "local_ts": "TIMESTAMP",
    }
    with SourceSet(load_spec(root), root) as sources:
        rows = sources.con.sql(
            f"SELECT user_id, ts, price FROM {sources.view('events')} ORDER BY ts"
        ).fetchall()
    assert rows == [
        ("u1", datetime(2026, 1, 1, 10, 0), 10.25),
        ("u2", datetime(2026, 1, 2, 0, 30), 3.0),
        ("u1", datetime(2026, 1, 4, 4, 0), None),
    ]


@pytest.mark.postgres
def test_postgres_plain_url_and_fingerprint(write_project, pg_events: str) -> None:
    plain = sa.engine.make_url(pg_events).set(drivername="postgresql")
    url = plain.render_as_string(hide_password=False)
    root = write_project(_spec(events=f'{{url: "{url}", table: shop.events, time: ts}}'))
    spec = load_spec(root)
    with SourceSet(spec, root) as sources:
        assert sources.describe("events").rows == 3
        before = sources.fingerprint(["events"])
    engine = sa.create_engine(pg_events)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO shop.events (user_id, ts) VALUES ('u9', now())"))
    finally:
        engine.dispose()
    with SourceSet(spec, root) as sources:
        assert sources.describe("events").rows == 4
        assert sources.fingerprint(["events"]) != before


@pytest.mark.postgres
def test_postgres_table_that_does_not_exist_names_it(write_project, pg_database: str) -> None:
    root = write_project(_spec(events=f'{{url: "{pg_database}", table: nowhere}}'))
    [info] = Project(root).sources()
    assert info.rows is None
    assert "'nowhere'" in info.error and "hint:" in info.error


def test_postgres_server_that_refuses_fails_fast_and_hides_the_password(write_project) -> None:
    url = "postgresql://nobody:Sup3rSecret@127.0.0.1:1/x"
    root = write_project(_spec(events=f'{{url: "{url}", table: events, entity: user_id}}'))
    started = time.monotonic()
    [info] = Project(root).sources()
    assert time.monotonic() - started < 10
    assert info.rows is None
    assert "cannot connect to postgresql://nobody:***@127.0.0.1:1/x" in info.error
    assert "hint:" in info.error
    assert "Sup3rSecret" not in info.error
    assert "Sup3rSecret" not in info.location
    with SourceSet(load_spec(root), root) as sources, pytest.raises(SourceError) as exc:
        sources.view("events")
    assert "'events'" in exc.value.message and "Sup3rSecret" not in str(exc.value)


def test_an_unsupported_database_url_is_a_source_error(write_project) -> None:
    root = write_project(_spec(events='{url: "mysql://someone@localhost/db", table: t}'))
    [info] = Project(root).sources()
    assert "'events'" in info.error and "not supported" in info.error
