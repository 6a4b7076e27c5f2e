"""``Project.validate()``: the spec checked against the data, every problem in one SpecError, and
nothing written to the store when validation (or a command) fails."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import cycleml
from cycleml.errors import CycleMLError, SpecError, SpecIssue

USERS = "user_id,plan,signup_at\nu1,free,2024-01-01\nu2,pro,2024-02-01\nu3,free,2024-02-11\n"
EVENTS = (
    "user_id,ts,event_type,value\n"
    "u1,2024-03-01 10:00:00,page_view,0\n"
    "u2,2024-03-02 11:00:00,purchase,20.5\n"
    "u1,2024-04-02 09:00:00,purchase,3.0\n"
)

SPEC = """\
spec_version: 1
name: shop
sources:
  users: {path: data/users.csv, entity: user_id, time: signup_at}
  events: {path: data/events.csv, entity: user_id, time: ts}
problems:
  churn:
    entity: user_id
    task: binary
    label: {kind: inactivity, source: events, days: 30}
    cutoffs: {every: 7d, start: 2024-03-01, end: 2024-04-01}
    features: [profile, activity]
features:
  profile:
    source: users
    columns: [plan]
  activity:
    source: events
    windows: [7d, 30d]
    aggregate: {count: "*", sum: value}
"""

FILES = {"data/users.csv": USERS, "data/events.csv": EVENTS}


def validate_error(root: Path) -> SpecError:
    with pytest.raises(SpecError) as info:
        cycleml.Project(root).validate()
    return info.value


def by_path(error: SpecError) -> dict[str, list[SpecIssue]]:
    out: dict[str, list[SpecIssue]] = {}
    for issue in error.issues:
        out.setdefault(issue.path, []).append(issue)
    return out


def store_rows(root: Path) -> int:
    """Rows in the project's SQLite store outside Alembic's bookkeeping (0 if no store)."""
    db = root / ".cycleml" / "store.db"
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        tables = [
            name
            for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if name != "alembic_version"
        ]
        return sum(conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables)


def test_a_project_matching_its_data_validates(write_project) -> None:
    root = write_project(SPEC, FILES)
    report = cycleml.Project(root).validate()
    assert report.spec.name == "shop"
    rows = {s.name: s.rows for s in report.sources}
    assert rows == {"users": 3, "events": 3}
    body = report.to_dict()
    assert body["valid"] is True and body["problems"] == ["churn"]
    assert body["feature_groups"] == ["profile", "activity"]
    events = next(s for s in body["sources"] if s["name"] == "events")
    assert {"user_id", "ts", "event_type", "value"} <= set(events["columns"])
    assert events["columns"]["ts"].startswith("TIMESTAMP")  # text time column is cast
    assert not (root / ".cycleml" / "store.db").exists()  # validating writes no store


def test_missing_source_file(write_project) -> None:
    root = write_project(SPEC, {"data/users.csv": USERS})
    error = validate_error(root)
    [issue] = by_path(error)["sources.events"]
    assert "data/events.csv" in issue.message and "no file" in issue.message
    assert "path" in issue.hint


@pytest.mark.parametrize(("role", "wrong"), [("entity", "uid"), ("time", "timestamp")])
def test_entity_or_time_column_missing_from_its_source(write_project, role, wrong) -> None:
    spec = SPEC.replace(
        "events: {path: data/events.csv, entity: user_id, time: ts}",
        "events: {path: data/events.csv, entity: user_id, time: ts}".replace(
            {"entity": "entity: user_id", "time": "time: ts"}[role], f"{role}: {wrong}"
        ),
    )
    error = validate_error(write_project(spec, FILES))
    [issue] = by_path(error)[f"sources.events.{role}"]
    assert f"{role} column {wrong!r}" in issue.message
    assert "user_id, ts, event_type, value" in issue.hint  # names the columns that exist


def test_feature_group_naming_a_column_its_source_lacks(write_project) -> None:
    spec = SPEC.replace("columns: [plan]", "columns: [plan, country]")
    error = validate_error(write_project(spec, FILES))
    [issue] = error.issues
    assert issue.path.startswith("features.profile")
    assert issue.message == "unknown column 'country'"
    assert "user_id, plan, signup_at" in issue.hint  # the columns that exist


def test_aggregate_and_by_columns_are_checked(write_project) -> None:
    spec = SPEC.replace("sum: value", "sum: amount").replace(
        'aggregate: {count: "*", sum: amount}',
        'aggregate: {count: "*", sum: amount}\n    by: {channel: [ads]}',
    )
    error = validate_error(write_project(spec, FILES))
    assert {i.message for i in error.issues} == {
        "unknown column 'amount'",
        "unknown column 'channel'",
    }
    assert all(i.path.startswith("features.activity") for i in error.issues)


def test_label_column_missing_from_its_source(write_project) -> None:
    spec = SPEC.replace(
        "label: {kind: inactivity, source: events, days: 30}",
        "label: {kind: column, source: users, column: churned}",
    ).replace("    cutoffs: {every: 7d, start: 2024-03-01, end: 2024-04-01}\n", "")
    error = validate_error(write_project(spec, FILES))
    [issue] = by_path(error)["problems.churn.label.column"]
    assert "'churned'" in issue.message and "plan" in issue.hint


def test_every_data_problem_is_reported_together(write_project) -> None:
    spec = SPEC.replace("columns: [plan]", "columns: [plan, country]").replace(
        "sources:\n",
        "sources:\n"
        "  orders: {path: data/orders.csv, entity: user_id}\n"
        "  visits: {path: data/visits.csv, entity: visitor, time: ts}\n",
    )
    files = dict(FILES, **{"data/visits.csv": "user_id,ts\nu1,2024-01-01\n"})
    error = validate_error(write_project(spec, files))
    found = {(i.path.split(".")[0], i.path.split(".")[1], i.message) for i in error.issues}
    assert len(error.issues) == 3
    assert ("features", "profile", "unknown column 'country'") in found
    assert {(p, n) for p, n, _ in found} == {
        ("sources", "orders"),
        ("sources", "visits"),
        ("features", "profile"),
    }
    messages = " | ".join(i.message for i in error.issues)
    assert "data/orders.csv" in messages and "entity column 'visitor'" in messages
    assert error.message.endswith("3 problem(s)") and error.hint


def test_missing_sqlite_table(write_project) -> None:
    root = write_project(
        SPEC.replace(
            "users: {path: data/users.csv, entity: user_id, time: signup_at}",
            "users: {url: 'sqlite:///db.sqlite', table: nope, entity: user_id}",
        ),
        FILES,
    )
    with sqlite3.connect(root / "db.sqlite") as conn:
        conn.execute("CREATE TABLE users (user_id TEXT, plan TEXT)")
    error = validate_error(root)
    [issue] = by_path(error)["sources.users"]
    assert "'nope'" in issue.message and "table" in issue.hint


def test_missing_sqlite_database(write_project) -> None:
    root = write_project(
        SPEC.replace(
            "users: {path: data/users.csv, entity: user_id, time: signup_at}",
            "users: {url: 'sqlite:///missing.sqlite', table: users, entity: user_id}",
        ),
        FILES,
    )
    [issue] = by_path(validate_error(root))["sources.users"]
    assert "missing.sqlite" in issue.message and "does not exist" in issue.message


def test_a_sqlite_table_that_exists_validates(write_project) -> None:
    root = write_project(
        SPEC.replace(
            "users: {path: data/users.csv, entity: user_id, time: signup_at}",
            "users: {url: 'sqlite:///db.sqlite', table: users, entity: user_id}",
        ),
        FILES,
    )
    with sqlite3.connect(root / "db.sqlite") as conn:
        conn.execute("CREATE TABLE users (user_id TEXT, plan TEXT)")
        conn.executemany("INSERT INTO users VALUES (?, ?)", [("u1", "free"), ("u2", "pro")])
    report = cycleml.Project(root).validate()
    assert {s.name: s.rows for s in report.sources}["users"] == 2


# -- every problem at once, across sources and feature groups --------------------------------------


def test_entity_and_time_both_missing_are_both_reported(write_project) -> None:
    spec = SPEC.replace("entity: user_id, time: ts", "entity: uid, time: timestamp")
    error = validate_error(write_project(spec, FILES))
    text = " ".join(i.message for i in error.issues)
    assert "'uid'" in text and "'timestamp'" in text
    paths = {i.path for i in error.issues}
    assert {"sources.events.entity", "sources.events.time"} <= paths


def test_feature_column_reported_even_when_another_source_is_broken(write_project) -> None:
    spec = SPEC.replace("columns: [plan]", "columns: [plan, country]")
    error = validate_error(write_project(spec, {"data/users.csv": USERS}))
    paths = {i.path for i in error.issues}
    assert "sources.events" in paths
    assert any("country" in i.message for i in error.issues)


def test_bad_columns_in_two_feature_groups_are_reported_together(write_project) -> None:
    spec = SPEC.replace("columns: [plan]", "columns: [plan, country]").replace(
        "sum: value", "sum: amount"
    )
    messages = {i.message for i in validate_error(write_project(spec, FILES)).issues}
    assert messages == {"unknown column 'country'", "unknown column 'amount'"}


def test_a_feature_group_no_problem_uses_is_checked_too(write_project) -> None:
    spec = SPEC + "  extra:\n    source: users\n    columns: [country]\n"
    messages = {i.message for i in validate_error(write_project(spec, FILES)).issues}
    assert messages == {"unknown column 'country'"}


def test_an_unreachable_store_is_reported_by_validate(write_project) -> None:
    spec = SPEC.replace(
        "name: shop\n", "name: shop\nstore: postgresql+psycopg://nobody@127.0.0.1:1/x\n"
    )
    error = validate_error(write_project(spec, FILES))
    assert [i.path for i in error.issues] == ["store"]
    assert "cannot reach the store" in error.issues[0].message


# -- nothing is written to the store when validation fails -----------------------------------------


def test_failed_spec_or_validation_writes_no_store(write_project) -> None:
    bad_spec = write_project(SPEC.replace("days: 30", "days: thirty"), FILES)
    with pytest.raises(SpecError):
        cycleml.Project(bad_spec)
    assert not (bad_spec / ".cycleml").exists()

    bad_data = write_project(SPEC, {"data/users.csv": USERS})
    with pytest.raises(SpecError):
        cycleml.Project(bad_data).validate()
    assert not (bad_data / ".cycleml" / "store.db").exists()


def test_failed_commands_leave_no_rows_in_the_store(write_project) -> None:
    root = write_project(SPEC, {"data/users.csv": USERS})  # events.csv is missing
    project = cycleml.Project(root)
    try:
        for action in (
            lambda: project.build_dataset("churn"),
            lambda: project.train("churn"),
            lambda: project.profile(),
            lambda: project.predict_batch("churn"),
        ):
            with pytest.raises(CycleMLError):
                action()
    finally:
        project.close()
    assert store_rows(root) == 0
