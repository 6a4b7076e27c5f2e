"""The service's guards, in-process: token scopes, metrics, body and item limits, NaN and
infinity, generated request schemas in /docs, a store that goes away, a corrupt artifact."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from cycleml import Project
from cycleml.errors import RequestError
from cycleml.serve import Limits, required_scope
from cycleml.serve._auth import parse_tokens
from cycleml.store import Store
from cycleml.store.tables import prediction_log

URL = "/v1/models/churn/predict"


def _send(app, *requests: tuple) -> list[httpx.Response]:
    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://cycleml.test") as c:
            return [await c.request(method, url, **kw) for method, url, kw in requests]

    return asyncio.run(run())


def _one(app, method: str, url: str, **kw) -> httpx.Response:
    return _send(app, (method, url, kw))[0]


def _error(response: httpx.Response, status: int, *needles: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["error"] and body["message"]
    for needle in needles:
        assert needle in body["message"], (needle, body)
    return body


@pytest.fixture
def project(trained_copy: Path):
    proj = Project(trained_copy)
    yield proj
    proj.close()


@pytest.fixture
def record(project: Project) -> dict:
    _, bundle = project.load_model("churn")
    return {c.name: (1.0 if c.kind == "number" else "free") for c in bundle.columns}


def _close(app) -> None:
    app.state.serving.stop()


# -- tokens and scopes -----------------------------------------------------------------------------


def test_scoped_tokens_answer_401_and_403_per_route(project, record, monkeypatch) -> None:
    monkeypatch.delenv("CYCLEML_API_TOKEN", raising=False)
    monkeypatch.setenv("CYCLEML_API_TOKENS", "p-tok:predict; t-tok:track ;a-tok:admin")
    app = project.app()
    auth = {name: {"Authorization": f"Bearer {name}-tok"} for name in ("p", "t", "a")}
    body = {"json": {"records": [record]}}
    r = _send(
        app,
        ("POST", URL, body),  # no token
        ("POST", URL, {**body, "headers": {"Authorization": "Bearer nope"}}),
        ("POST", URL, {**body, "headers": auth["t"]}),  # track cannot predict
        ("POST", URL, {**body, "headers": auth["p"]}),
        ("POST", URL, {**body, "headers": auth["a"]}),
        ("GET", "/v1/models/churn", {"headers": auth["p"]}),
        ("GET", "/v1/models/churn", {"headers": auth["t"]}),
        ("POST", "/v1/events", {"json": {}, "headers": auth["p"]}),  # predict cannot track
        ("POST", "/v1/feedback", {"json": {}, "headers": auth["p"]}),
        ("GET", "/healthz", {}),
        ("GET", "/metrics", {}),
        ("GET", "/openapi.json", {}),
    )
    _error(r[0], 401, "needs an API token")
    assert r[0].headers["www-authenticate"] == "Bearer"
    _error(r[1], 401, "wrong")
    body403 = _error(r[2], 403, "predict")
    assert body403["error"] == "PermissionError"
    assert r[3].status_code == 200 and r[4].status_code == 200
    assert r[5].status_code == 200
    _error(r[6], 403)
    _error(r[7], 403, "track")
    _error(r[8], 403, "track")
    assert [x.status_code for x in r[9:]] == [200, 200, 200]
    _close(app)


def test_the_admin_token_has_every_scope_and_the_route_table_covers_other_routes(
    project, monkeypatch
) -> None:
    monkeypatch.setenv("CYCLEML_API_TOKEN", "root")
    monkeypatch.delenv("CYCLEML_API_TOKENS", raising=False)
    app = project.app()
    admin = {"Authorization": "Bearer root"}
    r = _send(
        app,
        ("GET", "/v1/models/churn", {"headers": admin}),
        ("POST", "/v1/events", {"json": {}, "headers": {"Authorization": "Bearer other"}}),
    )
    assert r[0].status_code == 200
    _error(r[1], 401)
    # the table, as other engineers' routes meet it
    assert required_scope("POST", "/v1/events") == "track"
    assert required_scope("POST", "/v1/feedback") == "track"
    assert required_scope("POST", "/v1/models/x/rank") == "predict"
    assert required_scope("GET", "/v1/experiments/e/assignment") == "predict"
    assert required_scope("DELETE", "/v1/models/x") == "admin"
    assert required_scope("POST", "/v1/anything-new") == "admin"
    assert required_scope("GET", "/readyz") is None
    _close(app)


def test_a_malformed_tokens_variable_is_refused() -> None:
    assert parse_tokens(None, "a:predict,track;b:admin") == {
        "a": frozenset({"predict", "track"}),
        "b": frozenset({"predict", "track", "admin"}),
    }
    for bad in ("justatoken", "a:", "a:read", ":predict"):
        with pytest.raises(RequestError, match="CYCLEML_API_TOKENS"):
            parse_tokens(None, bad)


# -- metrics ---------------------------------------------------------------------------------------


def test_metrics_parse_and_count_requests_errors_and_the_model_version(project, record) -> None:
    app = project.app(token="")
    responses = _send(
        app,
        *[("POST", URL, {"json": {"records": [record]}})] * 3,
        ("POST", URL, {"json": {"records": [{}]}}),
        ("GET", "/metrics", {}),
    )
    assert [r.status_code for r in responses[:4]] == [200, 200, 200, 422]
    text = responses[-1].text
    assert responses[-1].headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    requests = {
        (s.labels["route"], s.labels["status"]): s.value
        for s in families["cycleml_requests"].samples
        if s.name == "cycleml_requests_total"
    }
    assert requests[("/v1/models/{problem}/predict", "200")] == 3
    assert requests[("/v1/models/{problem}/predict", "422")] == 1
    latency = {
        s.labels.get("route"): s.value
        for s in families["cycleml_request_seconds"].samples
        if s.name == "cycleml_request_seconds_count"
    }
    assert latency["/v1/models/{problem}/predict"] == 4
    errors = [
        s
        for s in families["cycleml_errors"].samples
        if s.name == "cycleml_errors_total" and s.labels["error"] == "InvalidRecordsError"
    ]
    assert [e.value for e in errors] == [1]
    version = [s for s in families["cycleml_model_version"].samples]
    assert [(s.labels["problem"], s.value) for s in version] == [("churn", 1.0)]
    assert "cycleml_log_queue_depth" in families
    predictions = [
        s.value for s in families["cycleml_predictions"].samples if s.name.endswith("_total")
    ]
    assert predictions == [3]
    _close(app)


# -- limits and bad bodies -------------------------------------------------------------------------


def test_nan_and_infinity_in_the_json_body_answer_422_naming_the_field(project, record) -> None:
    app = project.app(token="")
    name = next(k for k, v in record.items() if isinstance(v, float))
    bodies = [
        json.dumps({"records": [record, {**record, name: float(v)}]}).encode()
        for v in ("nan", "inf", "-inf")
    ]
    assert b"NaN" in bodies[0] and b"Infinity" in bodies[1]  # what Python's json writes
    responses = _send(
        app,
        *[
            ("POST", URL, {"content": b, "headers": {"content-type": "application/json"}})
            for b in bodies
        ],
    )
    for r in responses:
        _error(r, 422, f"records[1].{name}", "finite")
    app.state.serving.logger.flush()
    assert project.counts()["prediction_log"] == 0
    _close(app)


def test_item_and_byte_limits_answer_413(project, record) -> None:
    limits = Limits(max_items=3, max_body_bytes=20_000)
    app = project.app(token="", limits=limits)
    ok = _one(app, "POST", URL, json={"records": [record] * 3})
    assert ok.status_code == 200
    over = _error(_one(app, "POST", URL, json={"records": [record] * 4}), 413, "limit is 3")
    assert over["error"] == "PayloadTooLargeError"
    _error(_one(app, "POST", URL, json={"entities": ["a", "b", "c", "d"]}), 413, "entities")
    big = json.dumps({"records": [record] * 2, "pad": "x" * 30_000}).encode()
    _error(
        _one(app, "POST", URL, content=big, headers={"content-type": "application/json"}),
        413,
        "20000 bytes",
    )

    # a streamed body (no Content-Length) stops being read once past the limit
    chunks_read = []

    async def stream():
        for i in range(100):
            chunks_read.append(i)
            yield b" " * 4096

    r = _one(app, "POST", URL, content=stream(), headers={"content-type": "application/json"})
    _error(r, 413, "20000 bytes")
    assert len(chunks_read) < 10  # 20 kB is 5 chunks: the rest was never pulled
    _close(app)


def test_docs_show_each_problems_fields_and_requests_are_typed(project, record) -> None:
    app = project.app(token="")
    spec = _one(app, "GET", "/openapi.json").json()
    path = spec["paths"]["/v1/models/churn/predict"]["post"]
    body = path["requestBody"]["content"]["application/json"]["schema"]
    fields = body["properties"]["records"]["anyOf"][0]["items"]["properties"]
    _, bundle = project.load_model("churn")
    assert set(bundle.feature_names) <= set(fields)
    number = next(c.name for c in bundle.columns if c.kind == "number")
    assert "number" in json.dumps(fields[number])
    assert "/v1/models/{problem}/predict" in spec["paths"]
    # a number sent for a text feature is taken as its text; a string for a number is refused
    text = next((c.name for c in bundle.columns if c.kind != "number"), None)
    if text is not None:
        r = _one(app, "POST", URL, json={"records": [{**record, text: 7}]})
        assert r.status_code == 200, r.text
    bad = _one(app, "POST", URL, json={"records": [{**record, number: "7"}]})
    _error(bad, 422, f"records[0].{number}", "number")
    _error(_one(app, "POST", "/v1/models/nope/predict", json={"records": [record]}), 404, "nope")
    _close(app)


# -- failures --------------------------------------------------------------------------------------


def test_a_store_gone_mid_service_answers_503_and_keeps_the_log_rows(project, record) -> None:
    app = project.app(token="")
    state = app.state.serving
    assert _one(app, "POST", URL, json={"records": [record]}).status_code == 200  # model loaded
    assert state.logger.flush()
    db = project.path / ".cycleml" / "store.db"
    files = [Path(str(db) + suffix) for suffix in ("", "-wal", "-shm")]
    away = project.path / "away"
    away.mkdir()
    project.store.engine.dispose()
    for f in files:
        if f.exists():
            f.rename(away / f.name)
    try:
        # records need no store: answered, and their log rows wait in memory
        scored = _send(app, *[("POST", URL, {"json": {"records": [record]}})] * 3)
        assert [r.status_code for r in scored] == [200, 200, 200]
        # what needs the store answers 503 with a JSON body
        body = _error(_one(app, "POST", URL, json={"entities": ["u000001"]}), 503)
        assert body["error"] == "StoreError" and "store" in body["message"]
        deadline = time.monotonic() + 10  # the writer tries every 50 ms: wait for its failure
        while state.logger.failing_since is None and time.monotonic() < deadline:
            time.sleep(0.02)
        ready = _one(app, "GET", "/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["prediction_log"] != "ok"
        assert ready.json()["prediction_log"]["pending_rows"] >= 1
        assert _one(app, "GET", "/healthz").status_code == 200  # the service stays up
        metrics = _one(app, "GET", "/metrics").text
        failures = [
            s.value
            for f in text_string_to_metric_families(metrics)
            if f.name == "cycleml_log_write_failures"
            for s in f.samples
            if s.name.endswith("_total")
        ]
        assert failures and failures[0] >= 1
    finally:
        project.store.engine.dispose()
        for f in files:
            f.unlink(missing_ok=True)  # the empty database SQLite made meanwhile
            if (away / f.name).exists():
                (away / f.name).rename(f)
    assert state.logger.flush(timeout=30)
    _close(app)
    with project.store.connect() as conn:
        logged = conn.execute(sa.select(sa.func.count()).select_from(prediction_log)).scalar()
    assert logged == 4  # none lost
    assert _one(project.app(token=""), "GET", "/readyz").status_code == 200


def test_a_corrupt_artifact_answers_500_integrity_and_the_service_stays_up(project, record) -> None:
    app = project.app(token="")
    artifact = project.state_dir / "artifacts" / "models" / "churn-v1.joblib"
    original = artifact.read_bytes()
    artifact.write_bytes(original + b"tampered")
    body = _error(_one(app, "POST", URL, json={"records": [record]}), 500, "sha256")
    assert body["error"] == "IntegrityError"
    assert _one(app, "GET", "/healthz").status_code == 200
    artifact.write_bytes(original)
    assert _one(app, "POST", URL, json={"records": [record]}).status_code == 200
    _close(app)


# -- entities from the online store ----------------------------------------------------------------


def test_entities_read_the_online_store_and_score_like_batch(project) -> None:
    from cycleml.batch import latest_run
    from cycleml.store.tables import predictions

    run = latest_run(project.store, "churn")
    with project.store.connect() as conn:
        batch = dict(
            conn.execute(
                sa.select(predictions.c.entity, predictions.c.score).where(
                    predictions.c.run_id == run["id"]
                )
            ).all()
        )
    picked = sorted(batch)[:3]
    app = project.app(token="")
    # not materialized yet: computed as of now
    (before,) = _send(app, ("POST", URL, {"json": {"entities": picked}}))
    assert before.status_code == 200, before.text
    assert before.json()["features"]["source"] == "computed"

    project.materialize("churn", as_of=run["as_of"])
    (after,) = _send(app, ("POST", URL, {"json": {"entities": [*picked, "nobody"]}}))
    assert after.status_code == 200, after.text
    body = after.json()
    fresh = body["features"]
    assert fresh["source"] == "online_store"
    assert fresh["as_of"] == run["as_of"].isoformat() and fresh["materialized_at"]
    items = body["predictions"]
    assert [i["entity"] for i in items] == [*picked, "nobody"]
    for item in items[:3]:
        assert abs(item["score"] - batch[item["entity"]]) < 1e-9  # same as the batch run
    assert items[3]["score"] is None and "nobody" in items[3]["error"]
    _close(app)


def test_a_row_the_store_refuses_is_dropped_and_counted_without_blocking_the_log(project) -> None:
    from cycleml.serve import Metrics, PredictionLogger
    from cycleml.store import utcnow

    mv = project.model("churn")
    good = {
        "request_id": "r-good",
        "problem": "churn",
        "model_version_id": mv.id,
        "entity": None,
        "item_id": "0",
        "inputs": {},
        "score": 0.5,
        "label": 1,
        "latency_ms": 1.0,
        "created_at": utcnow(),
    }
    bad = {**good, "request_id": "r-bad", "score": None}  # score is NOT NULL
    metrics = Metrics()
    logger = PredictionLogger(project.store, metrics)
    logger.put([good, bad, {**good, "request_id": "r-good2"}])
    assert logger.flush(timeout=20)
    logger.close()
    assert (logger.written, logger.dropped) == (2, 1)
    assert metrics.log_dropped._value.get() == 1
    with project.store.connect() as conn:
        ids = conn.execute(sa.select(prediction_log.c.request_id)).scalars().all()
    assert sorted(ids) == ["r-good", "r-good2"]


def test_a_promoted_version_that_cannot_load_keeps_the_old_one_serving(project, record) -> None:
    from cycleml.store import utcnow
    from cycleml.store.tables import artifacts, model_versions

    app = project.app(token="")
    state = app.state.serving
    state.start()  # what the app's startup does: models loaded, refresher running
    try:
        assert _one(app, "POST", URL, json={"records": [record]}).json()["model_version"] == (
            "churn-v1"
        )
        # churn v2 points at an artifact whose bytes do not match its recorded sha256
        models = project.state_dir / "artifacts" / "models"
        (models / "churn-v2.joblib").write_bytes((models / "churn-v1.joblib").read_bytes() + b"x")
        with project.store.begin() as conn:
            v1 = conn.execute(
                sa.select(model_versions).where(model_versions.c.problem == "churn")
            ).one()
            conn.execute(
                artifacts.insert().values(
                    sha256="0" * 64,
                    path="models/churn-v2.joblib",
                    size=1,
                    kind="model",
                    created_at=utcnow(),
                )
            )
            values = {k: v for k, v in v1._mapping.items() if k != "id"}
            values.update(version=2, stage="staging", artifact_sha256="0" * 64)
            conn.execute(model_versions.insert().values(**values))
        project.registry.promote("churn", 2)
        state.cache.refresh()  # what the refresher does every 2 s
        assert "sha256" in state.cache.errors["churn"]
        served = _one(app, "POST", URL, json={"records": [record]})
        assert served.status_code == 200 and served.json()["model_version"] == "churn-v1"
        ready = _one(app, "GET", "/readyz").json()
        assert ready["checks"]["model:churn"] == "churn-v1"
        assert "sha256" in ready["checks"]["reload:churn"]
    finally:
        state.stop()


def test_the_sources_are_reopened_now_and_then_and_answer_the_same(project) -> None:
    app = project.app(token="")
    state = app.state.serving
    body = {"json": {"entities": ["u000001", "u000002"], "as_of": "2026-06-01T00:00:00"}}
    first = _one(app, "POST", URL, **body)
    opened = state._sources
    state.sources_seconds = 0.0  # reopen at every use
    second, third = _send(app, ("POST", URL, body), ("POST", URL, body))
    assert first.status_code == second.status_code == third.status_code == 200, third.text
    assert state._sources is not opened
    scores = [[p["score"] for p in r.json()["predictions"]] for r in (first, second, third)]
    assert scores[0] == scores[1] == scores[2] and scores[0][0] is not None
    _close(app)


# -- entity predictions: one indexed read, no frame (SQLite and PostgreSQL) -----------------------


def _batch_scores(project: Project) -> tuple[dict, datetime]:
    from cycleml.batch import latest_run
    from cycleml.store.tables import predictions

    run = latest_run(project.store, "churn")
    with project.store.connect() as conn:
        rows = conn.execute(
            sa.select(predictions.c.entity, predictions.c.score).where(
                predictions.c.run_id == run["id"]
            )
        ).all()
    return dict(rows), run["as_of"]


def _no_frame_path(monkeypatch) -> None:
    """Make the frame path of entity predictions (``lookup`` -> DataFrame) fail loudly."""
    from cycleml.serve import _online_store

    def refuse(*_a, **_k):
        raise AssertionError("the entity answer went through the DataFrame lookup")

    monkeypatch.setattr(_online_store, "lookup", refuse)


def _stored_features(project: Project, entities: list[str]) -> dict[str, dict]:
    from cycleml.store.tables import online_features

    c = online_features.c
    with project.store.connect() as conn:
        rows = conn.execute(
            sa.select(c.entity, c.features).where(c.problem == "churn", c.entity.in_(entities))
        ).all()
    return {r.entity: r.features for r in rows}


def _check_entity_answer(project: Project, app, monkeypatch, batch: dict, as_of) -> None:
    """Entities (one repeated, one unknown) answer the batch scores from the online store,
    without a DataFrame, and their log rows hold the stored features."""
    _no_frame_path(monkeypatch)
    picked = sorted(batch)[:3]
    asked = [picked[0], picked[1], picked[0], "nobody", picked[2]]
    started = datetime.now(UTC).replace(tzinfo=None)
    first, second = _send(
        app,
        ("POST", URL, {"json": {"entities": asked}}),
        ("POST", URL, {"json": {"entities": asked}}),
    )
    assert first.status_code == second.status_code == 200, first.text
    body = first.json()
    assert body["features"]["source"] == "online_store"
    assert body["features"]["as_of"] == as_of.isoformat()
    assert "computed_as_of" not in body["features"]  # "nobody" is in no source
    items = body["predictions"]
    assert [i["entity"] for i in items] == asked
    for item in [*items[:3], items[4]]:
        assert abs(item["score"] - batch[item["entity"]]) < 1e-9, item
        assert item["label"] in (0, 1)
    assert items[0]["score"] == items[2]["score"]
    assert items[3]["score"] is None and "nobody" in items[3]["error"]
    assert [i["score"] for i in second.json()["predictions"]] == [i["score"] for i in items]

    state = app.state.serving
    assert state.logger.flush(timeout=20)
    with project.store.connect() as conn:
        rows = conn.execute(
            sa.select(prediction_log).where(prediction_log.c.request_id == body["request_id"])
        ).all()
    assert sorted(r.entity for r in rows) == sorted(e for e in asked if e != "nobody")
    stored = _stored_features(project, picked)
    _, bundle = project.load_model("churn")
    for row in rows:
        want = {n: stored[row.entity].get(n) for n in bundle.feature_names}
        assert row.inputs == want  # the stored feature vector, as logged
        assert abs(row.score - batch[row.entity]) < 1e-9
        assert isinstance(row.created_at, datetime)
        assert started - timedelta(seconds=1) <= row.created_at <= started + timedelta(minutes=5)
    assert state.logger._fast is not None and state.logger._fast.sql  # the driver-level insert


def test_entity_predictions_are_one_indexed_read_scored_without_a_frame(
    project, monkeypatch
) -> None:
    batch, as_of = _batch_scores(project)
    project.materialize("churn", as_of=as_of)
    app = project.app(token="")
    state = app.state.serving
    statements: list[str] = []
    connect = state.online._connect

    def traced():
        conn = connect()
        conn.set_trace_callback(statements.append)  # every statement the driver runs
        return conn

    state.online._connect = traced
    _check_entity_answer(project, app, monkeypatch, batch, as_of)
    # entities all in the online store: one indexed read, answered on the event loop
    statements.clear()
    known = sorted(batch)[:3]

    def no_thread(*_a, **_k):
        raise AssertionError("went to the worker-thread path")

    monkeypatch.setattr(state, "score_entities", no_thread)
    (answer,) = _send(app, ("POST", URL, {"json": {"entities": known}}))
    assert answer.status_code == 200, answer.text
    assert [p["score"] for p in answer.json()["predictions"]] == [
        pytest.approx(batch[e], abs=1e-9) for e in known
    ]
    reads = [s for s in statements if "online_features" in s]
    assert len(reads) == 1, statements
    assert "entity IN" in reads[0] and "problem =" in reads[0]
    assert len(state.online._idle) == 1  # the connection is kept for the next request
    _close(app)
    assert state.online.closed and not state.online._idle


def test_entities_the_online_store_lacks_are_computed_as_of_now(project) -> None:
    from cycleml.store.tables import online_features

    batch, as_of = _batch_scores(project)
    project.materialize("churn", as_of=as_of)
    kept, dropped = sorted(batch)[:2]
    with project.store.begin() as conn:
        conn.execute(online_features.delete().where(online_features.c.entity == dropped))
    app = project.app(token="")
    (mixed,) = _send(app, ("POST", URL, {"json": {"entities": [dropped, kept]}}))
    assert mixed.status_code == 200, mixed.text
    fresh = mixed.json()["features"]
    assert fresh["source"] == "online_store" and fresh["computed_as_of"]
    now = fresh["computed_as_of"]
    (computed,) = _send(app, ("POST", URL, {"json": {"entities": [dropped], "as_of": now}}))
    assert computed.status_code == 200, computed.text
    got = mixed.json()["predictions"]
    assert got[0]["entity"] == dropped
    assert got[0]["score"] == computed.json()["predictions"][0]["score"]
    assert abs(got[1]["score"] - batch[kept]) < 1e-9
    _close(app)


def _store_on_postgres(root: Path, pg_database: str) -> Project:
    """The project at ``root`` moved to a PostgreSQL store: every table's rows copied over."""
    from cycleml.store.tables import metadata

    source = Project(root)
    source.store.open()
    spec = root / "cycleml.yaml"
    text = spec.read_text()
    assert "store: sqlite:///.cycleml/store.db" in text
    spec.write_text(text.replace("store: sqlite:///.cycleml/store.db", f"store: {pg_database}"))
    target = Project(root)
    target.store.open()
    with source.store.connect() as src, target.store.begin() as dst:
        for table in metadata.sorted_tables:
            rows = [dict(r._mapping) for r in src.execute(sa.select(table)).all()]
            if rows:
                dst.execute(table.insert(), rows)
        for table in metadata.sorted_tables:  # the copied ids must not collide with new rows
            if (
                "id" in table.c
                and isinstance(table.c.id.type, sa.Integer)
                and table.c.id.primary_key
            ):
                dst.execute(
                    sa.text(
                        f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                        f"COALESCE((SELECT MAX(id) FROM {table.name}), 0) + 1, false)"
                    )
                )
    source.close()
    return target


def test_entity_predictions_on_a_postgresql_store(
    trained_copy: Path, pg_database: str, monkeypatch
) -> None:
    project = _store_on_postgres(trained_copy, pg_database)
    try:
        assert project.store.dialect == "postgresql"
        batch, as_of = _batch_scores(project)
        project.materialize("churn", as_of=as_of)
        app = project.app(token="")
        _check_entity_answer(project, app, monkeypatch, batch, as_of)
        state = app.state.serving
        assert len(state.online._idle) == 1  # kept open between requests
        for _ in range(6):  # psycopg prepares a statement run 5 times on one connection
            state.online.read("churn", sorted(batch)[:2])
        (conn,) = state.online._idle
        prepared = [r[0] for r in conn.execute("SELECT statement FROM pg_prepared_statements")]
        assert any("online_features" in text for text in prepared), prepared

        # the kept connection dies (a server restart, an idle timeout): read again on a new one
        known = {"json": {"entities": sorted(batch)[:2]}}
        with project.store.connect() as admin:
            killed = admin.execute(
                sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": conn.info.backend_pid}
            ).scalar()
        assert killed
        (again,) = _send(app, ("POST", URL, known))
        assert again.status_code == 200, again.text
        assert state.online._idle and state.online._idle[0] is not conn
        # the store itself unreachable: 503 with a JSON body, the service stays up
        state.online.close()
        state.online = type(state.online)(Store("postgresql+psycopg://nobody@127.0.0.1:1/none"))
        (down,) = _send(app, ("POST", URL, known))
        _error(down, 503, "store")
        assert _one(app, "GET", "/healthz").status_code == 200
        _close(app)
        assert state.online.closed
    finally:
        project.close()


def test_the_switch_interval_is_short_while_the_app_runs_and_restored_after(project) -> None:
    import sys

    from cycleml.serve._state import SWITCH_INTERVAL

    before = sys.getswitchinterval()
    assert before > SWITCH_INTERVAL  # Python's default (5 ms)
    app = project.app(token="")
    seen: list[float] = []

    async def run() -> None:
        async with app.router.lifespan_context(app):  # the app's startup and shutdown
            seen.append(sys.getswitchinterval())

    asyncio.run(run())
    assert seen == [SWITCH_INTERVAL]
    assert sys.getswitchinterval() == before
