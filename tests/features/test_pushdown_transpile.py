"""The transpile step of pushdown: DuckDB-only SQL rewritten for PostgreSQL (no server needed)."""

from __future__ import annotations

import pytest

from cycleml.features._pushdown import PushdownUnsupported, _Table, to_postgres

TABLES = {"events": _Table('"public"."events"', '"user_id", "ts"')}


def test_source_view_becomes_its_table():
    sql = to_postgres('SELECT count(*) FROM "events" e', TABLES)
    assert '"public"."events"' in sql
    assert "AS e" in sql


def test_interval_and_calendar_functions():
    sql = to_postgres(
        'SELECT isodow(ts), quarter(ts), ts - to_seconds(60), ts + to_days(2) FROM "events"',
        TABLES,
    )
    assert "EXTRACT(ISODOW FROM ts)" in sql
    assert "EXTRACT(QUARTER FROM ts)" in sql
    assert "INTERVAL '1 SECOND'" in sql and "INTERVAL '1 DAY'" in sql
    assert "TO_SECONDS" not in sql.upper()


def test_asof_join_becomes_distinct_on():
    sql = to_postgres(
        "SELECT s.__entity, e.ts FROM _spine s ASOF LEFT JOIN "
        '(SELECT * FROM "events") e ON s.__entity = e.user_id AND s.__as_of > e.ts',
        TABLES,
    )
    assert "ASOF JOIN" not in sql.upper() and "ASOF LEFT" not in sql.upper()
    assert "DISTINCT ON" in sql
    assert "ORDER BY" in sql and "DESC" in sql


def test_subquery_without_alias_gets_one():
    sql = to_postgres('SELECT * FROM (SELECT * FROM "events") WHERE ts IS NOT NULL', TABLES)
    assert ") AS _q" in sql


def test_unknown_function_is_refused():
    with pytest.raises(PushdownUnsupported, match="no_such"):
        to_postgres('SELECT no_such(ts) FROM "events"', TABLES)


def test_table_that_is_not_in_the_database_is_refused():
    with pytest.raises(PushdownUnsupported, match="users"):
        to_postgres('SELECT * FROM "users"', TABLES)
