"""Batch predictions written to real SQLite, DuckDB, Parquet and PostgreSQL targets: the same
rows as the store, reruns replace their partition, bad targets fail before anything is written."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from cycleml import Project
from cycleml.batch import ROW_SCHEMA, PredictionRun, TargetError
from cycleml.batch._targets import PAUSE_ENV
from cycleml.cli import app
from cycleml.store.tables import prediction_runs, predictions

AS_OF = datetime(2026, 6, 1)  # the demo's data end (trained_demo scored the store as of it)
COLUMNS = [f.name for f in ROW_SCHEMA]
KINDS = ["sqlite", "duckdb", "parquet", "postgres"]


@pytest.fixture
def target_of(request, tmp_path):
    """``target_of(kind)``: a fresh target string of that kind and a reader of its rows."""

    def make(kind: str) -> tuple[str, callable]:
        if kind == "sqlite":
            path = tmp_path / f"out-{uuid.uuid4().hex[:6]}" / "preds.db"
            return f"sqlite:///{path}#preds", lambda: read_sqlite(path, "preds")
        if kind == "duckdb":
            path = tmp_path / f"out-{uuid.uuid4().hex[:6]}" / "preds.duckdb"
            return f"duckdb:///{path}#preds", lambda: read_duckdb(path, "preds")
        if kind == "parquet":
            path = tmp_path / f"out-{uuid.uuid4().hex[:6]}" / "preds.parquet"
            return str(path), lambda: read_parquet(path)
        url = request.getfixturevalue("pg_database")
        return f"{url}#preds", lambda: read_postgres(url, "preds")

    return make


def read_sqlite(path: Path, table: str) -> pd.DataFrame:
    with sqlite3.connect(path) as conn:
        frame = pd.read_sql(f'SELECT * FROM "{table}"', conn)
    for column in ("as_of", "target_date"):
        frame[column] = pd.to_datetime(frame[column])
    return _normal(frame)


def read_duckdb(path: Path, table: str) -> pd.DataFrame:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return _normal(con.sql(f'SELECT * FROM "{table}"').df())
    finally:
        con.close()


def read_parquet(path: Path) -> pd.DataFrame:
    return _normal(pd.read_parquet(path))


def read_postgres(url: str, table: str) -> pd.DataFrame:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return _normal(pd.read_sql(sa.text(f'SELECT * FROM "{table}"'), conn))
    finally:
        engine.dispose()


def _normal(frame: pd.DataFrame) -> pd.DataFrame:
    assert list(frame.columns) == COLUMNS
    frame = frame.astype({"as_of": "datetime64[us]", "target_date": "datetime64[us]"})
    return frame.sort_values(["as_of", "entity"]).reset_index(drop=True)


def store_rows(project: Project, as_of: datetime) -> pd.DataFrame:
    with project.store.connect() as conn:
        rows = conn.execute(
            sa.select(predictions)
            .where(predictions.c.problem == "churn", predictions.c.as_of == as_of)
            .order_by(predictions.c.entity)
        ).mappings()
        return pd.DataFrame(rows.all())


def run_count(project: Project) -> int:
    with project.store.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(prediction_runs)).scalar_one()


@pytest.mark.parametrize("kind", KINDS)
def test_a_target_holds_the_store_rows_and_reruns_replace_the_partition(
    kind, trained_copy, target_of
):
    to, read = target_of(kind)
    project = Project(trained_copy)
    try:
        production = project.model("churn")
        expected = store_rows(project, AS_OF)
        assert len(expected) > 0
        first = project.predict_batch("churn", as_of=AS_OF, to=to, chunk_rows=37)
        rows = read()
        assert first.rows == len(rows) == len(expected)
        assert first.target != "store:predictions" and "#" in first.target or kind == "parquet"
        assert list(rows["entity"]) == list(expected["entity"])
        # The store scored in one chunk: BLAS may round another chunk size a last bit apart.
        np.testing.assert_allclose(rows["score"], expected["score"], rtol=0, atol=1e-12)
        assert (rows["label"].to_numpy() == expected["label"].to_numpy()).all()
        assert set(rows["problem"]) == {"churn"}
        assert set(rows["model_version"]) == {production.version}
        assert set(rows["run_id"]) == {first.id}
        assert set(rows["as_of"]) == {pd.Timestamp(AS_OF)}
        assert rows["horizon"].isna().all() and rows["target_date"].isna().all()
        with project.store.connect() as conn:
            recorded = conn.execute(
                sa.select(prediction_runs).where(prediction_runs.c.id == first.id)
            ).mappings()
            recorded = recorded.one()
        assert recorded["target"] == first.target and recorded["rows"] == first.rows
        assert recorded["features_sha256"]  # the scored features are kept for monitoring

        again = project.predict_batch("churn", as_of=AS_OF, to=to, chunk_rows=37)
        rerun = read()
        assert set(rerun["run_id"]) == {again.id} != {first.id}
        # identical rows (scores bit for bit), but from the new run
        pd.testing.assert_frame_equal(rerun.drop(columns="run_id"), rows.drop(columns="run_id"))

        earlier = AS_OF - timedelta(days=7)
        other = project.predict_batch("churn", as_of=earlier, to=to)
        both = read()
        assert len(both) == len(rows) + other.rows
        kept = both[both["as_of"] == pd.Timestamp(AS_OF)].reset_index(drop=True)
        pd.testing.assert_frame_equal(kept, rerun)  # the other partition is untouched
        assert not both.duplicated(["as_of", "entity"]).any()
        assert store_rows(project, AS_OF)["run_id"].nunique() == 1  # the store was not written
        assert len(store_rows(project, earlier)) == 0
    finally:
        project.close()


def test_created_tables_have_the_documented_types(trained_copy, tmp_path):
    project = Project(trained_copy)
    try:
        project.predict_batch("churn", as_of=AS_OF, to=f"sqlite:///{tmp_path}/p.db#preds")
        project.predict_batch("churn", as_of=AS_OF, to=f"duckdb:///{tmp_path}/p.duckdb#preds")
    finally:
        project.close()
    with sqlite3.connect(tmp_path / "p.db") as conn:
        info = {r[1]: (r[2], r[3]) for r in conn.execute("PRAGMA table_info(preds)")}
    assert list(info) == COLUMNS
    assert info["as_of"] == ("DATETIME", 1) and info["score"] == ("FLOAT", 1)
    assert info["horizon"] == ("INTEGER", 0) and info["label"] == ("INTEGER", 0)
    con = duckdb.connect(str(tmp_path / "p.duckdb"), read_only=True)
    try:
        types = dict(
            con.execute(
                "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'preds'"
            ).fetchall()
        )
    finally:
        con.close()
    assert types == {
        "problem": "VARCHAR",
        "entity": "VARCHAR",
        "as_of": "TIMESTAMP",
        "horizon": "INTEGER",
        "target_date": "TIMESTAMP",
        "score": "DOUBLE",
        "label": "INTEGER",
        "class_label": "VARCHAR",
        "model_version": "INTEGER",
        "run_id": "BIGINT",
    }


@pytest.mark.parametrize(
    ("to", "words"),
    [
        ("mysql://u@localhost/db#preds", "unknown target scheme 'mysql'"),
        ("sqlite:///preds.db", "names no table"),
        ("duckdb:///preds.duckdb#", "names no table"),
        ("predictions.csv", "cannot tell what kind of target"),
    ],
)
def test_a_malformed_target_is_refused_before_scoring(trained_copy, to, words):
    project = Project(trained_copy)
    try:
        runs = run_count(project)
        with pytest.raises(TargetError, match=words) as info:
            project.predict_batch("churn", as_of=AS_OF, to=to)
        assert info.value.hint and info.value.exit_code == 2
        assert run_count(project) == runs
    finally:
        project.close()
    assert not (trained_copy / "preds.db").exists() and not (trained_copy / "preds.duckdb").exists()


@pytest.mark.parametrize("kind", ["sqlite", "duckdb", "parquet"])
def test_an_unwritable_path_is_a_clear_error(trained_copy, tmp_path, kind):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    to = {
        "sqlite": f"sqlite:///{blocker}/p.db#preds",
        "duckdb": f"duckdb:///{blocker}/p.duckdb#preds",
        "parquet": f"{blocker}/p.parquet",
    }[kind]
    project = Project(trained_copy)
    try:
        runs = run_count(project)
        with pytest.raises(TargetError, match=str(blocker)) as info:
            project.predict_batch("churn", as_of=AS_OF, to=to)
        assert "write" in info.value.hint
        assert run_count(project) == runs
    finally:
        project.close()
    assert blocker.read_text() == "not a folder"


@pytest.mark.parametrize("kind", KINDS)
def test_a_table_of_another_shape_is_refused_and_left_alone(kind, trained_copy, tmp_path, request):
    ddl = "CREATE TABLE preds (problem TEXT, entity TEXT, as_of TEXT, score TEXT)"
    if kind == "sqlite":
        path = tmp_path / "p.db"
        with sqlite3.connect(path) as conn:
            conn.execute(ddl.replace("as_of TEXT", "as_of DATETIME"))
            conn.execute("INSERT INTO preds VALUES ('churn', 'x', '2026-06-01', 'high')")
        to = f"sqlite:///{path}#preds"

        def read():
            with sqlite3.connect(path) as conn:
                return conn.execute("SELECT * FROM preds").fetchall()
    elif kind == "duckdb":
        path = tmp_path / "p.duckdb"
        con = duckdb.connect(str(path))
        con.execute(ddl)
        con.execute("INSERT INTO preds VALUES ('churn', 'x', '2026-06-01', 'high')")
        con.close()
        to = f"duckdb:///{path}#preds"

        def read():
            con = duckdb.connect(str(path), read_only=True)
            try:
                return con.execute("SELECT * FROM preds").fetchall()
            finally:
                con.close()
    elif kind == "parquet":
        path = tmp_path / "p.parquet"
        path.write_bytes(b"PAR1 a file, not a folder")
        to = str(path)

        def read():
            return path.read_bytes()
    else:
        url = request.getfixturevalue("pg_database")
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text(ddl))
            conn.execute(sa.text("INSERT INTO preds VALUES ('churn', 'x', '2026-06-01', 'high')"))
        to = f"{url}#preds"

        def read():
            with engine.connect() as conn:
                return conn.execute(sa.text("SELECT * FROM preds")).fetchall()

    before = read()
    project = Project(trained_copy)
    try:
        runs = run_count(project)
        with pytest.raises(TargetError) as info:
            project.predict_batch("churn", as_of=AS_OF, to=to)
        if kind == "parquet":
            assert "not a folder" in info.value.message
        else:
            assert "do not fit" in info.value.message and "'score'" in info.value.message
            assert "no column 'horizon'" in info.value.message
        assert run_count(project) == runs
    finally:
        project.close()
    assert read() == before
    if kind == "postgres":
        engine.dispose()


def test_the_store_file_itself_is_refused_as_a_sqlite_target(trained_copy):
    project = Project(trained_copy)
    try:
        store_file = sa.engine.make_url(project.store.url).database
        with pytest.raises(TargetError, match="store's own database"):
            project.predict_batch("churn", as_of=AS_OF, to=f"sqlite:///{store_file}#preds")
    finally:
        project.close()


def test_cli_writes_a_parquet_target_and_reports_bad_targets_without_a_traceback(
    trained_copy, tmp_path
):
    out = tmp_path / "cli.parquet"
    runner = CliRunner()
    args = ["predict", "churn", "--batch", "--as-of", "2026-06-01", "-p", str(trained_copy)]
    result = runner.invoke(app, [*args, "--to", str(out), "--json"])
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)
    assert run["target"] == str(out) and run["rows"] > 0
    assert len(read_parquet(out)) == run["rows"]
    assert [p.name for p in out.iterdir()] == ["churn-as_of=20260601T000000.parquet"]

    bad = runner.invoke(app, [*args, "--to", "sqlite:///x.db"])
    assert bad.exit_code == 2
    assert "names no table" in bad.output and "Traceback" not in bad.output


# -- a run killed midway ---------------------------------------------------------------------------
# A real `cycleml predict` subprocess. The test hook CYCLEML_TEST_BATCH_PAUSE makes the writer
# create a marker file and wait once the first chunk is in (inside the open transaction, or in
# the temporary Parquet file); the test then kills the process by its PID (SIGKILL).

MARKER_WAIT = 180  # seconds: the subprocess loads the project, features and model first


def _store_partition(root: Path) -> pd.DataFrame:
    project = Project(root)
    try:
        return store_rows(project, AS_OF)
    finally:
        project.close()


def _runs(root: Path) -> list[int]:
    project = Project(root)
    try:
        with project.store.connect() as conn:
            return list(conn.execute(sa.select(prediction_runs.c.id)).scalars())
    finally:
        project.close()


def _batch_in_chunks_of_20(root: Path, to: str | None) -> PredictionRun:
    project = Project(root)
    try:
        return project.predict_batch("churn", as_of=AS_OF, to=to, chunk_rows=20)
    finally:
        project.close()


def _kill_midway(root: Path, to: str | None, marker: Path) -> None:
    args = [sys.executable, "-m", "cycleml", "predict", "churn", "--batch"]
    args += ["--as-of", "2026-06-01", "--chunk-rows", "20", "--project", str(root), "--json"]
    if to:
        args += ["--to", to]
    env = {**os.environ, PAUSE_ENV: str(marker), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + MARKER_WAIT
        while not marker.exists():
            if proc.poll() is not None:
                out, errs = proc.communicate()
                pytest.fail(f"the batch ended before pausing ({proc.returncode}): {errs!r}")
            if time.monotonic() > deadline:
                pytest.fail("the batch never reached its first written chunk")
            time.sleep(0.05)
        assert int(marker.read_text()) == proc.pid
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()


@pytest.mark.parametrize("kind", ["store", "sqlite", "duckdb", "parquet", "postgres"])
def test_a_run_killed_midway_leaves_the_previous_partition_and_a_rerun_completes(
    kind, trained_copy, tmp_path, target_of
):
    if kind == "store":
        to, read = None, lambda: _store_partition(trained_copy)
    else:
        to, read = target_of(kind)

    first = _batch_in_chunks_of_20(trained_copy, to)
    before = read()
    runs = _runs(trained_copy)
    assert len(before) == first.rows > 40  # several chunks: the kill lands mid-partition

    _kill_midway(trained_copy, to, tmp_path / "paused")

    after = read()
    pd.testing.assert_frame_equal(after, before)  # the previous partition, whole
    assert set(after["run_id"]) == {first.id}
    assert _runs(trained_copy) == runs  # the killed run was never recorded
    if kind == "parquet":
        visible = [p.name for p in Path(to).iterdir() if not p.name.startswith(".")]
        assert visible == ["churn-as_of=20260601T000000.parquet"]

    rerun = _batch_in_chunks_of_20(trained_copy, to)
    again = read()
    assert set(again["run_id"]) == {rerun.id}
    pd.testing.assert_frame_equal(again.drop(columns="run_id"), before.drop(columns="run_id"))


def test_an_unreachable_postgres_target_fails_before_scoring(trained_copy):
    project = Project(trained_copy)
    try:
        runs = run_count(project)
        with pytest.raises(TargetError, match="cannot connect") as info:
            project.predict_batch(
                "churn", as_of=AS_OF, to="postgresql://u:secret@127.0.0.1:1/nodb#preds"
            )
        assert "secret" not in str(info.value)  # no password in messages
        assert run_count(project) == runs
    finally:
        project.close()


@pytest.mark.parametrize("kind", ["sqlite", "duckdb"])
def test_an_existing_table_with_an_extra_nullable_column_is_written(kind, trained_copy, tmp_path):
    ddl = (
        "CREATE TABLE preds (problem TEXT, entity TEXT, as_of TIMESTAMP, horizon INTEGER, "
        "target_date TIMESTAMP, score DOUBLE, label INTEGER, class_label TEXT, "
        "model_version INTEGER, run_id BIGINT, note TEXT)"
    )
    path = tmp_path / ("p.db" if kind == "sqlite" else "p.duckdb")
    if kind == "sqlite":
        with sqlite3.connect(path) as conn:
            conn.execute(ddl)
    else:
        con = duckdb.connect(str(path))
        con.execute(ddl)
        con.close()
    project = Project(trained_copy)
    try:
        run = project.predict_batch("churn", as_of=AS_OF, to=f"{kind}:///{path}#preds")
    finally:
        project.close()
    if kind == "sqlite":
        with sqlite3.connect(path) as conn:
            got = conn.execute("SELECT count(*), count(note), min(run_id) FROM preds").fetchone()
    else:
        con = duckdb.connect(str(path), read_only=True)
        got = con.execute("SELECT count(*), count(note), min(run_id) FROM preds").fetchone()
        con.close()
    assert got == (run.rows, 0, run.id)


def test_a_postgres_store_gets_its_rows_by_copy_and_survives_a_killed_run(
    demo_project, pg_database, tmp_path
):
    import re

    spec = demo_project / "cycleml.yaml"
    text, count = re.subn(r"(?m)^store:.*$", f"store: {pg_database}", spec.read_text())
    assert count == 1
    spec.write_text(text)
    project = Project(demo_project)
    try:
        assert project.store.dialect == "postgresql"
        project.train("churn")
    finally:
        project.close()
    first = _batch_in_chunks_of_20(demo_project, None)
    before = _store_partition(demo_project)
    assert len(before) == first.rows > 40 and set(before["run_id"]) == {first.id}
    runs = _runs(demo_project)

    _kill_midway(demo_project, None, tmp_path / "paused")
    pd.testing.assert_frame_equal(_store_partition(demo_project), before)
    assert _runs(demo_project) == runs

    rerun = _batch_in_chunks_of_20(demo_project, None)
    again = _store_partition(demo_project)
    assert set(again["run_id"]) == {rerun.id}
    pd.testing.assert_frame_equal(
        again.drop(columns="run_id"), before.drop(columns="run_id"), check_exact=True
    )
