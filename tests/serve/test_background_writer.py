"""The one batched background writer (cycleml.store._background) and its two users: batching,
the row-by-row fallback, the buffer limit, close and restart, which failures are the rows' and
which the store's (real SQLite and PostgreSQL errors), and the exposure writer's health in
/readyz and /metrics through a real app."""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from datetime import datetime
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
import yaml
from prometheus_client.parser import text_string_to_metric_families

from cycleml import Project
from cycleml.experiments import ExposureWriter
from cycleml.serve import Metrics, PredictionLogger
from cycleml.store import Store, utcnow
from cycleml.store._background import BackgroundWriter, WriterMetrics, rows_at_fault
from cycleml.store.tables import exposures

WHEN = datetime(2026, 6, 1, 12)
ITEMS = sa.Table(
    "writer_items",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(20), nullable=False),
)


class _Items(BackgroundWriter):
    """A writer of ITEMS rows that records each write call's batch size."""

    def __init__(self, store: Store, **kw) -> None:
        super().__init__(store, name="items", **kw)
        self.calls: list[int] = []

    def write(self, conn, batch: list[dict]) -> None:
        self.calls.append(len(batch))
        conn.execute(ITEMS.insert(), batch)


@pytest.fixture
def store(tmp_path: Path):
    s = Store(f"sqlite:///{tmp_path / 'store.db'}", tmp_path).open()
    ITEMS.create(s.engine)
    yield s
    s.dispose()


def _names(store: Store) -> list[str]:
    with store.connect() as conn:
        return conn.execute(sa.select(ITEMS.c.name).order_by(ITEMS.c.id)).scalars().all()


def _rows(n: int, start: int = 0) -> list[dict]:
    return [{"name": f"n{i}"} for i in range(start, start + n)]


def _wait(condition, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


# -- the writer --------------------------------------------------------------------------------


def test_rows_are_written_in_batches_of_at_most_batch_size(store) -> None:
    metrics = Metrics()
    writer = _Items(store, batch_size=500, counters=metrics.log_writer)
    writer.put(_rows(1200))
    assert writer.flush(timeout=20)
    assert writer.calls == [500, 500, 200]
    status = writer.status()
    assert (status["written"], status["batches"], status["queue_depth"]) == (1200, 3, 0)
    assert status["status"] == "ok" and status["error"] is None
    assert datetime.fromisoformat(status["last_write_at"]) <= utcnow()  # naive UTC
    assert metrics.log_written._value.get() == 1200
    writer.close()
    assert _names(store) == [f"n{i}" for i in range(1200)]  # every row once, in order


def test_rows_handed_over_within_the_interval_share_one_transaction(store) -> None:
    writer = _Items(store, interval=1.0)
    for i in range(5):
        writer.put(_rows(1, i))
    assert writer.flush(timeout=20)
    writer.close()
    assert writer.calls == [5]
    assert _names(store) == [f"n{i}" for i in range(5)]


def test_a_refused_row_is_dropped_alone_and_the_writer_stays_ok(store) -> None:
    metrics = Metrics()
    writer = _Items(store, counters=metrics.log_writer)
    writer.put([{"name": "a"}, {"name": None}, {"name": "c"}])  # name is NOT NULL
    assert writer.flush(timeout=20)
    writer.close()
    assert writer.calls == [3, 1, 1, 1]  # the batch, then row by row
    assert (writer.written, writer.dropped, writer.failures) == (2, 1, 0)
    assert writer.status()["status"] == "ok"  # a bad row is not a sick store
    assert metrics.log_dropped._value.get() == 1
    assert _names(store) == ["a", "c"]


def test_a_failing_store_keeps_the_rows_up_to_max_pending_and_reports_the_error(store) -> None:
    metrics = Metrics()
    writer = _Items(store, max_pending=10, counters=metrics.log_writer)
    with store.begin() as conn:
        conn.execute(sa.text("ALTER TABLE writer_items RENAME TO writer_items_away"))
    writer.put(_rows(30))
    assert _wait(lambda: writer.failing_since is not None)
    assert not writer.flush(timeout=0.3)
    status = writer.status()
    assert status["status"] == "degraded" and "no such table" in status["error"]
    assert status["dropped"] == 20 and status["queue_depth"] == 10  # the oldest went
    assert metrics.log_dropped._value.get() == 20
    assert metrics.log_failures._value.get() >= 1
    assert _wait(lambda: metrics.log_queue._value.get() == 10)
    with store.begin() as conn:
        conn.execute(sa.text("ALTER TABLE writer_items_away RENAME TO writer_items"))
    assert writer.flush(timeout=30)  # retried after a pause of at most 2 s
    writer.close()
    assert writer.status()["status"] == "ok" and writer.status()["error"] is None
    assert _names(store) == [f"n{i}" for i in range(20, 30)]


def test_close_writes_what_is_left_and_a_later_put_starts_a_new_thread(store) -> None:
    writer = _Items(store, interval=30.0)  # the thread would wait 30 s to gather the rows
    writer.put(_rows(3))
    started = time.monotonic()
    writer.close()
    assert time.monotonic() - started < 10  # close did not wait for the interval
    assert _names(store) == ["n0", "n1", "n2"]
    assert not [t for t in threading.enumerate() if t.name == "cycleml-items"]
    writer.put(_rows(2, 3))
    assert [t for t in threading.enumerate() if t.name == "cycleml-items"]
    writer.close()
    assert _names(store) == [f"n{i}" for i in range(5)]
    never_started = _Items(store)
    never_started.close()  # nothing handed over: nothing written, no thread
    assert never_started.calls == []


def test_flush_says_true_only_once_the_rows_are_stored(store) -> None:
    """Round after round with a busy writer (1 ms pauses, batches of 7)."""
    writer = _Items(store, interval=0.001, batch_size=7)
    for round_ in range(50):
        writer.put(_rows(3, round_ * 3))
        assert writer.flush(timeout=20)
        assert len(_names(store)) == round_ * 3 + 3
    writer.close()


# -- which failure is whose: real errors ---------------------------------------------------------


def _error(store: Store, rows: list[dict]) -> Exception:
    try:
        with store.begin() as conn:
            conn.execute(ITEMS.insert(), rows)
    except Exception as exc:  # noqa: BLE001 - the error under test
        return exc
    raise AssertionError("the insert was accepted")


def _classify(store: Store) -> dict[str, bool]:
    ITEMS.create(store.engine, checkfirst=True)
    got = {
        "null": rows_at_fault(_error(store, [{"name": None}])),
        "unbindable": rows_at_fault(_error(store, [{"name": object()}])),
    }
    ITEMS.drop(store.engine)
    got["missing table"] = rows_at_fault(_error(store, [{"name": "x"}]))
    return got


def test_which_failures_are_the_rows_sqlite(store) -> None:
    assert _classify(store) == {"null": True, "unbindable": True, "missing table": False}


def test_which_failures_are_the_rows_postgres(pg_database: str, tmp_path: Path) -> None:
    store = Store(pg_database, tmp_path).open()
    try:
        assert _classify(store) == {"null": True, "unbindable": True, "missing table": False}
    finally:
        store.dispose()


def test_a_missing_exposures_table_on_postgres_keeps_the_exposures(
    pg_database: str, tmp_path: Path
) -> None:
    """PostgreSQL answers a missing table with a ProgrammingError: the store's failure, so the
    rows wait (they were dropped row by row before the writers shared this code)."""
    store = Store(pg_database, tmp_path).open()
    metrics = Metrics()
    writer = ExposureWriter(store, counters=metrics.exposure_writer)
    try:
        with store.begin() as conn:
            conn.execute(sa.text("ALTER TABLE exposures RENAME TO exposures_away"))
        for u in range(4):
            assert writer.put("exp", f"u{u}", "a", None, None, WHEN)
        assert not writer.put("exp", "u1", "b", None, None, WHEN)  # seen: not handed twice
        assert _wait(lambda: writer.failing_since is not None)
        status = writer.status()
        assert status["status"] == "degraded" and "does not exist" in status["error"]
        assert (status["dropped"], status["queue_depth"]) == (0, 4)
        with store.begin() as conn:
            conn.execute(sa.text("ALTER TABLE exposures_away RENAME TO exposures"))
        assert writer.flush(timeout=30)
        writer.close()
        with store.connect() as conn:
            units = conn.execute(sa.select(exposures.c.unit)).scalars().all()
        assert sorted(units) == ["u0", "u1", "u2", "u3"]
        assert metrics.exposures_written._value.get() == 4
    finally:
        writer.close()
        store.dispose()


def test_both_writers_report_the_same_status_shape(store) -> None:
    logger = PredictionLogger(store)
    writer = ExposureWriter(store)
    assert logger.status().keys() == writer.status().keys()
    assert {"status", "queue_depth", "written", "batches", "dropped", "error"} <= set(
        writer.status()
    )
    assert isinstance(writer.counters, WriterMetrics)
    logger.close()
    writer.close()


# -- the exposure writer in /readyz and /metrics -------------------------------------------------


@pytest.fixture(scope="module")
def exp_template(trained_demo: Path, tmp_path_factory) -> Path:
    """The trained demo plus an experiment served on churn (production vs baseline)."""
    root = tmp_path_factory.mktemp("writer") / "demo"
    shutil.copytree(trained_demo, root)
    path = root / "cycleml.yaml"
    spec = yaml.safe_load(path.read_text())
    spec["sources"]["exp_events"] = {
        "collect": True,
        "entity": "user_id",
        "time": "ts",
        "columns": {"user_id": "string", "ts": "timestamp", "event_type": "string"},
    }
    spec["experiments"] = {
        "split": {
            "problem": "churn",
            "variants": {
                "control": {"weight": 0.5, "model": "production"},
                "treatment": {"weight": 0.5, "model": "baseline"},
            },
            "control": "control",
            "events": "exp_events",
            "metrics": {"converted": {"type": "conversion", "event": "purchase", "days": 7}},
        }
    }
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return root


@pytest.fixture
def served(exp_template: Path, tmp_path: Path):
    root = tmp_path / "served"
    shutil.copytree(exp_template, root)
    project = Project(root)
    app = project.app(token="")
    yield project, app
    app.state.serving.stop()
    project.close()


def _send(app, *requests: tuple[str, str]) -> list[httpx.Response]:
    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://cycleml.test") as c:
            return [await c.request(method, url) for method, url in requests]

    return asyncio.run(run())


def _assign(app, *units: str) -> None:
    responses = _send(app, *[("GET", f"/v1/experiments/split/assignment?unit={u}") for u in units])
    for r in responses:
        assert r.status_code == 200, r.text
        assert r.json()["active"] is True


def _metric(text: str, name: str) -> float:
    (value,) = [
        s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == name
    ]
    return value


def test_readyz_and_metrics_report_the_exposure_writer(served) -> None:
    _project, app = served
    (ready,) = _send(app, ("GET", "/readyz"))
    body = ready.json()
    assert ready.status_code == 200, body
    assert body["checks"]["exposures"] == "ok"
    assert body["exposures"]["status"] == "ok" and body["exposures"]["written"] == 0
    assert body["exposures"].keys() == body["prediction_log"].keys()  # the same shape

    _assign(app, "u1", "u2", "u3", "u1")  # u1 twice: one exposure
    assert app.state.serving.exposures.flush(timeout=20)
    ready, metrics = _send(app, ("GET", "/readyz"), ("GET", "/metrics"))
    assert ready.json()["exposures"]["written"] == 3
    assert ready.json()["exposures"]["batches"] >= 1
    assert ready.json()["exposures"]["last_write_at"] is not None
    text = metrics.text
    assert _metric(text, "cycleml_exposures_written_total") == 3
    assert _metric(text, "cycleml_exposure_queue_depth") == 0
    assert _metric(text, "cycleml_exposure_write_failures_total") == 0
    assert _metric(text, "cycleml_exposures_dropped_total") == 0


def test_a_failing_exposure_write_makes_readyz_degraded_with_the_error(served) -> None:
    project, app = served
    state = app.state.serving
    _assign(app, "u1")
    assert state.exposures.flush(timeout=20)
    with project.store.begin() as conn:
        conn.execute(sa.text("DROP TABLE exposures"))
    try:
        _assign(app, "u2", "u3")
        assert _wait(lambda: state.exposures.failing_since is not None)
        ready, metrics = _send(app, ("GET", "/readyz"), ("GET", "/metrics"))
        body = ready.json()
        assert ready.status_code == 503, body
        assert body["ready"] is False
        assert "no such table: exposures" in body["checks"]["exposures"]
        assert body["exposures"]["status"] == "degraded"
        assert body["exposures"]["queue_depth"] == 2 and body["exposures"]["dropped"] == 0
        assert body["checks"]["prediction_log"] == "ok"  # the other writer is fine
        assert _metric(metrics.text, "cycleml_exposure_queue_depth") == 2
        assert _metric(metrics.text, "cycleml_exposure_write_failures_total") >= 1
    finally:
        exposures.create(project.store.engine)
    assert state.exposures.flush(timeout=30)  # the kept exposures are written
    (ready,) = _send(app, ("GET", "/readyz"))
    assert ready.status_code == 200, ready.json()
    assert ready.json()["checks"]["exposures"] == "ok"
    with project.store.connect() as conn:
        units = conn.execute(sa.select(exposures.c.unit)).scalars().all()
    assert sorted(units) == ["u2", "u3"]  # u1's row went with the dropped table


def test_stopping_the_app_writes_the_pending_exposures(served) -> None:
    project, app = served
    state = app.state.serving
    state.exposures.interval = 30.0  # the writer would wait long before writing
    state.exposures.close()  # restarted by the next put with the long interval
    _assign(app, "u7", "u8")
    state.stop()
    with project.store.connect() as conn:
        units = conn.execute(sa.select(exposures.c.unit)).scalars().all()
    assert sorted(units) == ["u7", "u8"]
