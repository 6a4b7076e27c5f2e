"""Store.open: Alembic makes every table on SQLite and PostgreSQL, once; bad stores fail clearly."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from cycleml.errors import StoreError
from cycleml.store import Store, tables

TABLES = {
    "artifacts",
    "dataset_versions",
    "model_versions",
    "predictions",
    "prediction_runs",
    "prediction_log",
    "experiment_analyses",
    "monitor_runs",
    "profiles",
}

# (table, column) -> referred table: the lineage every row carries.
LINEAGE = {
    ("dataset_versions", "artifact_sha256"): "artifacts",
    ("model_versions", "dataset_version_id"): "dataset_versions",
    ("model_versions", "artifact_sha256"): "artifacts",
    ("prediction_runs", "model_version_id"): "model_versions",
    ("prediction_runs", "features_sha256"): "artifacts",
    ("predictions", "model_version_id"): "model_versions",
    ("predictions", "run_id"): "prediction_runs",
    ("prediction_log", "model_version_id"): "model_versions",
    ("monitor_runs", "model_version_id"): "model_versions",
    ("monitor_runs", "reference_dataset_id"): "dataset_versions",
    ("monitor_runs", "prediction_run_id"): "prediction_runs",
}


def _head() -> str:
    return Store._head_revision()


def _revision(engine: sa.Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _check_schema(engine: sa.Engine) -> None:
    inspector = sa.inspect(engine)
    assert set(inspector.get_table_names()) >= TABLES
    found = {}
    for table in TABLES:
        for fk in inspector.get_foreign_keys(table):
            assert len(fk["constrained_columns"]) == 1
            found[(table, fk["constrained_columns"][0])] = fk["referred_table"]
    assert found == LINEAGE
    # The migrations build exactly what tables.py declares (no drift between the two).
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), tables.metadata) == []


# -- SQLite ------------------------------------------------------------------------------------


def test_sqlite_relative_path_resolves_under_the_project_not_the_cwd(
    tmp_path: Path, monkeypatch
) -> None:
    project, elsewhere = tmp_path / "project", tmp_path / "cwd"
    project.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    store = Store("sqlite:///.cycleml/store.db", project)
    try:
        store.open()
        assert (project / ".cycleml" / "store.db").is_file()
        assert not (elsewhere / ".cycleml").exists()
        assert store.engine.url.database == str(project / ".cycleml" / "store.db")
        _check_schema(store.engine)
        assert _revision(store.engine) == _head()
    finally:
        store.dispose()


def test_open_twice_and_reopen_is_a_no_op(tmp_path: Path) -> None:
    store = Store("sqlite:///store.db", tmp_path)
    store.open()
    with store.begin() as conn:
        conn.execute(
            tables.profiles.insert().values(source="s", result={"a": 1}, created_at=_now())
        )
    assert store.open() is store
    store.dispose()
    again = Store("sqlite:///store.db", tmp_path)
    try:
        again.open()
        assert _revision(again.engine) == _head()
        with again.connect() as conn:
            versions = conn.execute(sa.text("SELECT version_num FROM alembic_version")).all()
            profiles = conn.execute(sa.select(tables.profiles.c.result)).scalars().all()
        assert versions == [(_head(),)]
        assert profiles == [{"a": 1}]
    finally:
        again.dispose()


def test_sqlite_enforces_lineage_foreign_keys(tmp_path: Path) -> None:
    store = Store("sqlite:///store.db", tmp_path).open()
    try:
        with pytest.raises(sa.exc.IntegrityError), store.begin() as conn:
            conn.execute(
                tables.prediction_runs.insert().values(
                    problem="p",
                    model_version_id=999,
                    as_of=_now(),
                    target="store:predictions",
                    rows=0,
                    seconds=0.0,
                    created_at=_now(),
                )
            )
    finally:
        store.dispose()


def test_store_made_by_a_newer_cycleml_is_a_store_error(tmp_path: Path) -> None:
    store = Store("sqlite:///store.db", tmp_path).open()
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = 'ffff'"))
    store.dispose()
    with pytest.raises(StoreError, match="newer cycleml") as info:
        Store("sqlite:///store.db", tmp_path).open()
    assert "ffff" in str(info.value)


def test_a_file_that_is_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "store.db").write_text("not a database, just text\n" * 10)
    with pytest.raises(StoreError) as info:
        Store("sqlite:///store.db", tmp_path).open()
    assert "store.db" in info.value.message and info.value.hint


def test_a_sqlite_folder_that_cannot_be_created_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    store = Store("sqlite:///afile/store.db", tmp_path)  # constructing writes nothing
    with pytest.raises(StoreError) as info:
        store.ping()
    assert "afile" in info.value.message and info.value.hint
    with pytest.raises(StoreError) as info:
        store.open()
    assert "afile" in info.value.message and info.value.hint


# -- bad URLs --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/store",
        "mysql://someone@localhost/db",
        "not a url at all",
        "postgresql+asyncpg://someone@127.0.0.1:1/x",
    ],
)
def test_a_non_store_url_is_a_store_error(url: str, tmp_path: Path) -> None:
    with pytest.raises(StoreError) as info:
        Store(url, tmp_path).open()
    assert info.value.hint
    assert "sqlite" in info.value.hint and "postgresql" in info.value.hint


def test_an_unreachable_store_fails_fast_with_the_url_and_a_hint(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(StoreError) as info:
        Store("postgresql+psycopg://nobody@127.0.0.1:1/x", tmp_path).open()
    assert time.monotonic() - started < 10
    assert "postgresql+psycopg://nobody@127.0.0.1:1/x" in info.value.message
    assert info.value.hint and "store:" in info.value.hint
    assert "hint:" in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://nobody:Sup3rSecret@127.0.0.1:1/x",
        "postgresql://nobody:Sup3rSecret@127.0.0.1:1/x",
        "postgresql+asyncpg://nobody:Sup3rSecret@127.0.0.1:1/x",
    ],
)
def test_a_password_in_the_url_never_appears_in_the_error(url: str, tmp_path: Path) -> None:
    with pytest.raises(StoreError) as info:
        Store(url, tmp_path).open()
    text = str(info.value) + repr(info.value.to_dict())
    assert "Sup3rSecret" not in text
    assert "127.0.0.1:1/x" in text
    # The display form of a store never shows it either.
    assert "Sup3rSecret" not in Store("postgresql://nobody:Sup3rSecret@h/x", tmp_path).display_url


# -- PostgreSQL -------------------------------------------------------------------------------


@pytest.mark.postgres
def test_postgres_open_creates_every_table_with_lineage(pg_database: str) -> None:
    store = Store(pg_database, "/nonexistent-base-dir-is-not-used")
    try:
        assert store.dialect == "postgresql"
        store.open()
        _check_schema(store.engine)
        assert _revision(store.engine) == _head()
    finally:
        store.dispose()


@pytest.mark.postgres
def test_postgres_open_twice_is_a_no_op(pg_database: str, tmp_path: Path) -> None:
    # A plain postgresql:// URL is served by psycopg 3 (psycopg2 is not a dependency).
    plain = sa.engine.make_url(pg_database).set(drivername="postgresql")
    first = Store(plain.render_as_string(hide_password=False), tmp_path)
    assert first.engine.url.drivername == "postgresql+psycopg"
    first.open()
    with first.begin() as conn:
        conn.execute(
            tables.profiles.insert().values(source="s", result={"k": [1, 2]}, created_at=_now())
        )
    first.dispose()
    second = Store(pg_database, tmp_path)
    try:
        second.open()
        second.open()
        with second.connect() as conn:
            versions = conn.execute(sa.text("SELECT version_num FROM alembic_version")).all()
            results = conn.execute(sa.select(tables.profiles.c.result)).scalars().all()
        assert versions == [(_head(),)]
        assert results == [{"k": [1, 2]}]
        assert not os.listdir(tmp_path)  # nothing written to the project folder
    finally:
        second.dispose()


@pytest.mark.postgres
def test_postgres_enforces_lineage_foreign_keys(pg_database: str) -> None:
    store = Store(pg_database).open()
    try:
        with pytest.raises(sa.exc.IntegrityError), store.begin() as conn:
            conn.execute(
                tables.model_versions.insert().values(
                    problem="p",
                    version=1,
                    dataset_version_id="missing",
                    algorithm="a",
                    params={},
                    metrics={},
                    leaderboard=[],
                    features=[],
                    artifact_sha256="0" * 64,
                    code_version="x",
                    training_seconds=0.0,
                    created_at=_now(),
                )
            )
    finally:
        store.dispose()


@pytest.mark.postgres
def test_postgres_unknown_database_is_a_store_error(pg_url: str, tmp_path: Path) -> None:
    url = sa.engine.make_url(pg_url).set(database="no_such_database_here")
    with pytest.raises(StoreError) as info:
        Store(url.render_as_string(hide_password=False), tmp_path).open()
    assert "no_such_database_here" in info.value.message
    assert info.value.hint


def _now():
    from cycleml.store import utcnow

    return utcnow()


# -- concurrent opens -------------------------------------------------------------------------


def _open_in_child(url: str, barrier, results) -> None:
    store = Store(url)
    barrier.wait(timeout=30)
    try:
        store.open()
        results.put("ok")
    except Exception as exc:  # reported to the parent
        results.put(f"{type(exc).__name__}: {exc}")
    finally:
        store.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fresh_store_url(request, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/store.db"
    return request.getfixturevalue("pg_database")


def test_processes_opening_a_fresh_store_at_once_all_succeed(fresh_store_url: str) -> None:
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    children = [
        ctx.Process(target=_open_in_child, args=(fresh_store_url, barrier, results))
        for _ in range(4)
    ]
    for child in children:
        child.start()
    outcomes = [results.get(timeout=60) for _ in children]
    for child in children:
        child.join(timeout=30)
    assert outcomes == ["ok"] * 4
    engine = sa.create_engine(fresh_store_url)
    try:
        assert _revision(engine) == _head()
    finally:
        engine.dispose()


def test_threads_opening_a_fresh_store_at_once_all_succeed(fresh_store_url: str) -> None:
    stores = [Store(fresh_store_url) for _ in range(4)]
    barrier = threading.Barrier(len(stores))
    errors: list[BaseException] = []

    def run(store: Store) -> None:
        barrier.wait(timeout=30)
        try:
            store.open()
        except BaseException as exc:  # reported to the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s,), daemon=True) for s in stores]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert not any(t.is_alive() for t in threads), "Store.open deadlocked"
        assert errors == []
    finally:
        for store in stores:
            store.dispose()
