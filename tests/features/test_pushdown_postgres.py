"""PostgreSQL pushdown: the feature SQL runs inside PostgreSQL and gives DuckDB's result."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd
import psycopg
import pytest
import sqlalchemy as sa

from cycleml import Project
from cycleml.data import SourceSet
from cycleml.features import _pushdown

pytestmark = pytest.mark.postgres

AS_OF = datetime(2026, 3, 1)


def _load_demo(url: str, data: Path) -> None:
    """users and events of the demo in PostgreSQL (events.ts as timestamptz and value as
    NUMERIC, to cover the conversions the DuckDB views make), copied with COPY."""
    con = duckdb.connect()
    libpq = sa.engine.make_url(url).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(libpq, autocommit=True) as pg:
        pg.execute("SET TimeZone = 'UTC'")
        pg.execute(
            "CREATE TABLE users (user_id text PRIMARY KEY, plan text, country text, age bigint, "
            "signup_at timestamp)"
        )
        pg.execute(
            "CREATE TABLE events (event_id text, user_id text, ts timestamptz, event_type text, "
            "source text, value numeric)"
        )
        for table in ("users", "events"):
            csv = (
                con.sql(f"SELECT * FROM '{data / table}.parquet'")
                .df()
                .to_csv(index=False, header=False)
            )
            with pg.cursor().copy(f"COPY {table} FROM STDIN WITH (FORMAT csv)") as copy:
                copy.write(csv)
        pg.execute("ANALYZE")


def _pg_project(template: Path, dest: Path, url: str, *, users_in_pg: bool = True) -> Path:
    shutil.copytree(template, dest)
    spec = (dest / "cycleml.yaml").read_text()
    spec = spec.replace(
        "events: {path: data/events.parquet", f"events: {{url: '{url}', table: events"
    )
    if users_in_pg:
        spec = spec.replace(
            "users: {path: data/users.parquet", f"users: {{url: '{url}', table: users"
        )
    (dest / "cycleml.yaml").write_text(spec)
    return dest


@pytest.fixture
def pg_demo(pg_database: str, demo_template: Path, tmp_path: Path) -> Path:
    _load_demo(pg_database, demo_template / "data")
    return _pg_project(demo_template, tmp_path / "pg", pg_database)


@pytest.fixture
def pushed(monkeypatch) -> list[str]:
    """Records every query that ran in PostgreSQL through pushdown."""
    calls: list[str] = []
    original = _pushdown._run_in_postgres

    def spy(fs, url, sql, *args, **kwargs):
        calls.append(sql)
        return original(fs, url, sql, *args, **kwargs)

    monkeypatch.setattr(_pushdown, "_run_in_postgres", spy)
    return calls


def _same(pushed_frame: pd.DataFrame, duck_frame: pd.DataFrame) -> None:
    assert list(pushed_frame.columns) == list(duck_frame.columns)
    assert len(pushed_frame) == len(duck_frame)
    pd.testing.assert_frame_equal(pushed_frame, duck_frame, check_exact=False, rtol=1e-9, atol=1e-9)


def test_training_frame_pushed_down_equals_duckdb(pg_demo, demo_template, pushed):
    with Project(demo_template).features("churn") as fs:
        expected = fs.training_frame()
    with Project(pg_demo).features("churn") as fs:
        got = fs.training_frame()
        assert fs.engine_notes == []
    assert len(pushed) == 1  # every group ran in PostgreSQL, in one query
    _same(got.frame, expected.frame)
    assert got.cutoffs == expected.cutoffs
    # nulls in the same places (users without events before a cutoff, for example)
    assert got.frame.isna().to_numpy().sum() > 0
    assert (got.frame.isna() == expected.frame.isna()).all().all()


def test_compute_does_not_pull_rows_out_of_postgres(pg_demo, demo_template, pushed, monkeypatch):
    entities = [f"u{i:06d}" for i in range(0, 800, 3)] + ["nobody"]
    with Project(demo_template).features("churn") as fs:
        expected = fs.compute(entities, AS_OF)

    def no_pull(self, name, source):
        raise AssertionError(f"source {name} was read out of PostgreSQL")

    monkeypatch.setattr(SourceSet, "_fetch_table", no_pull)
    with Project(pg_demo).features("churn") as fs:
        got = fs.compute(entities, AS_OF)
    assert len(pushed) == 1
    _same(got, expected)
    unknown = got[got["user_id"] == "nobody"]
    assert unknown["activity_count_30d"].iloc[0] == 0
    assert pd.isna(unknown["plan"].iloc[0])


def test_group_outside_the_database_falls_back_with_a_note(
    pg_database, demo_template, tmp_path, pushed
):
    _load_demo(pg_database, demo_template / "data")
    mixed = _pg_project(demo_template, tmp_path / "mixed", pg_database, users_in_pg=False)
    entities = [f"u{i:06d}" for i in range(0, 800, 7)]
    with Project(demo_template).features("churn") as fs:
        expected = fs.compute(entities, AS_OF)
    with Project(mixed).features("churn") as fs:
        got = fs.compute(entities, AS_OF)
        notes = fs.engine_notes
    assert len(pushed) == 1  # the events groups still ran in PostgreSQL
    assert len(notes) == 1
    assert "'profile'" in notes[0] and "computed in DuckDB" in notes[0]
    assert "users" in notes[0]
    _same(got, expected)


def test_failure_in_postgres_falls_back_to_duckdb(pg_demo, demo_template, monkeypatch):
    entities = ["u000001", "u000002"]
    with Project(demo_template).features("churn") as fs:
        expected = fs.compute(entities, AS_OF)

    def broken(sql, tables):
        return "SELECT no_such_function()"

    monkeypatch.setattr(_pushdown, "to_postgres", broken)
    with Project(pg_demo).features("churn") as fs:
        got = fs.compute(entities, AS_OF)
        notes = fs.engine_notes
    assert any("could not run in PostgreSQL" in n and "no_such_function" in n for n in notes)
    _same(got, expected)


def test_collecting_source_is_not_pushed_down_and_sees_collected_events(
    pg_demo, demo_template, pushed
):
    """A `collect: true` source's events also live in the store, which PostgreSQL cannot see:
    its feature groups run in DuckDB (with a note), and an event collected through the API
    counts in the features exactly as it does for the same project on Parquet."""
    spec = pg_demo / "cycleml.yaml"
    text = spec.read_text()
    line = next(x for x in text.splitlines() if x.strip().startswith("events: {url:"))
    spec.write_text(text.replace(line, line[:-1] + ", collect: true}"))
    user = "u000003"
    event = {"user_id": user, "ts": "2026-02-27T09:00:00Z", "event_type": "purchase"}
    with Project(demo_template).features("churn") as fs:
        before = fs.compute([user], AS_OF)["activity_count_30d"].iloc[0]
    project = Project(pg_demo)
    try:
        assert project.track("events", [event])["new"] == 1
        with project.features("churn") as fs:
            got = fs.compute([user], AS_OF)
            notes = fs.engine_notes
    finally:
        project.close()
    assert got["activity_count_30d"].iloc[0] == before + 1
    assert notes and all("collect: true" in n and "computed in DuckDB" in n for n in notes)
    assert not any("events" in sql.lower() for sql in pushed)
