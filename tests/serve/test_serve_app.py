"""The serving app in-process (httpx.ASGITransport): health, predictions equal to batch, the
prediction log, JSON errors for bad requests, and the API token."""

from __future__ import annotations

import asyncio
import json
import math
import threading
from datetime import datetime
from pathlib import Path

import httpx
import pandas as pd
import pytest
import sqlalchemy as sa

from cycleml import Project
from cycleml.batch import latest_run
from cycleml.errors import InvalidRecordsError
from cycleml.serve import check_records, create_app
from cycleml.serve._app import MAX_ITEMS
from cycleml.store.tables import prediction_log, predictions

AS_OF = datetime(2026, 6, 1)
URL = "/v1/models/churn/predict"


def _send(app, *requests: tuple, raise_app_exceptions: bool = True) -> list[httpx.Response]:
    """Send (method, url, kwargs) requests in order through the app, in-process."""

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
        async with httpx.AsyncClient(transport=transport, base_url="http://cycleml.test") as c:
            return [await c.request(method, url, **kw) for method, url, kw in requests]

    return asyncio.run(run())


def _one(app, method: str, url: str, **kw) -> httpx.Response:
    return _send(app, (method, url, kw))[0]


def _json_value(value):
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    return value.item() if hasattr(value, "item") else value


@pytest.fixture
def served(trained_copy: Path):
    """(project, app, batch): the batch holds the scored snapshot joined with the batch rows."""
    project = Project(trained_copy)
    run = latest_run(project.store, "churn")
    snapshot = pd.read_parquet(project.artifacts.verified_path(run["features_sha256"]))
    with project.store.connect() as conn:
        rows = conn.execute(
            sa.select(predictions.c.entity, predictions.c.score, predictions.c.label).where(
                predictions.c.run_id == run["id"]
            )
        ).all()
    scored = pd.DataFrame(rows, columns=["user_id", "batch_score", "batch_label"])
    batch = snapshot.merge(scored, on="user_id", validate="one_to_one")
    assert len(batch) == len(snapshot) > 10
    yield project, project.app(), batch
    project.close()


def _record(project: Project, row: pd.Series) -> dict:
    _, bundle = project.load_model("churn")
    return {name: _json_value(row[name]) for name in bundle.feature_names}


def _flush(app) -> None:
    """Wait for the app's background prediction-log writer to write what it was handed."""
    assert app.state.serving.logger.flush(timeout=20), "the prediction log did not flush"


def _log_rows(app, project: Project, request_id: str) -> list[dict]:
    _flush(app)
    with project.store.connect() as conn:
        rows = conn.execute(
            sa.select(prediction_log).where(prediction_log.c.request_id == request_id)
        ).all()
    return [dict(r._mapping) for r in rows]


def _assert_error(response: httpx.Response, status: int, *needles: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["message"], str) and body["message"]
    for needle in needles:
        assert needle in body["message"], (needle, body)
    return body


# -- health ----------------------------------------------------------------------------------------


def test_healthz_and_readyz_name_the_production_model(served) -> None:
    project, app, _ = served
    health, ready = _send(app, ("GET", "/healthz", {}), ("GET", "/readyz", {}))
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert ready.status_code == 200
    body = ready.json()
    assert body["ready"] is True
    assert body["checks"]["store"] == "ok"
    assert body["checks"]["model:churn"] == project.model("churn").name == "churn-v1"


def test_readyz_is_503_when_the_model_artifact_is_corrupt(served) -> None:
    project, app, _ = served
    artifact = project.state_dir / "artifacts" / "models" / "churn-v1.joblib"
    artifact.write_bytes(artifact.read_bytes() + b"tampered")
    response = _one(app, "GET", "/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["ready"] is False and body["checks"]["store"] == "ok"
    assert "sha256" in body["checks"]["model:churn"]
    # a prediction refuses the tampered model with a JSON error, not a crash
    r = _one(app, "POST", URL, json={"entities": ["u1"]})
    assert r.status_code == 500 and r.json()["error"] == "IntegrityError"


# -- predictions -----------------------------------------------------------------------------------


def test_predict_by_records_equals_the_batch_score_and_label(served) -> None:
    project, app, batch = served
    rows = batch.sort_values("batch_score").iloc[[0, len(batch) // 2, -1]]
    records = [{**_record(project, row), "id": row["user_id"]} for _, row in rows.iterrows()]
    response = _one(app, "POST", URL, json={"records": records})
    assert response.status_code == 200, response.text
    body = response.json()
    mv, bundle = project.load_model("churn")
    assert body["model_version"] == mv.name
    assert [p["id"] for p in body["predictions"]] == list(rows["user_id"])
    for item, (_, row) in zip(body["predictions"], rows.iterrows(), strict=True):
        assert abs(item["score"] - row["batch_score"]) < 1e-9
        assert abs(item["score"] - row["__score"]) < 1e-9
        assert item["label"] == int(item["score"] >= bundle.threshold) == row["batch_label"]
    # the threshold splits these rows: the lowest is 0 and the highest 1
    assert [p["label"] for p in body["predictions"]][0] == 0
    assert [p["label"] for p in body["predictions"]][-1] == 1


def test_each_prediction_is_logged_once_with_request_id_and_model_version(served) -> None:
    project, app, batch = served
    records = [_record(project, row) for _, row in batch.head(5).iterrows()]
    first, second = _send(
        app,
        ("POST", URL, {"json": {"records": records}}),
        ("POST", URL, {"json": {"records": records[:1]}}),
    )
    assert first.status_code == second.status_code == 200
    mv = project.model("churn")
    for response, n in ((first, 5), (second, 1)):
        body = response.json()
        logged = _log_rows(app, project, body["request_id"])
        assert len(logged) == n == len(body["predictions"])
        assert {r["model_version_id"] for r in logged} == {mv.id}
        assert {r["problem"] for r in logged} == {"churn"}
        assert all(r["latency_ms"] > 0 and r["created_at"] is not None for r in logged)
        assert all(set(r["inputs"]) >= set(records[0]) for r in logged)
        assert sorted(r["score"] for r in logged) == sorted(p["score"] for p in body["predictions"])
    assert first.json()["request_id"] != second.json()["request_id"]
    _flush(app)
    assert project.counts()["prediction_log"] == 6


def test_predict_by_entities_as_of_the_batch_time_equals_batch(served) -> None:
    project, app, batch = served
    picked = list(batch["user_id"].iloc[[3, 1, 7]])  # not in sorted order on purpose
    response = _one(
        app, "POST", URL, json={"entities": [*picked, picked[0]], "as_of": AS_OF.isoformat()}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert [p["id"] for p in body["predictions"]] == [*picked, picked[0]]  # request order
    expected = batch.set_index("user_id")
    for item in body["predictions"]:
        assert abs(item["score"] - expected.loc[item["id"], "batch_score"]) < 1e-9
        assert item["label"] == expected.loc[item["id"], "batch_label"]
    logged = _log_rows(app, project, body["request_id"])
    assert len(logged) == 4
    assert sorted(r["entity"] for r in logged) == sorted([*picked, picked[0]])
    # the same through the Python API, and an aware time means the same instant
    same = project.predict("churn", entities=picked, as_of=AS_OF)
    assert [p["score"] for p in same["predictions"]] == [
        p["score"] for p in body["predictions"][:3]
    ]
    aware = _one(app, "POST", URL, json={"entities": picked, "as_of": "2026-06-01T02:00:00+02:00"})
    assert [p["score"] for p in aware.json()["predictions"]] == [
        p["score"] for p in body["predictions"][:3]
    ]


def test_predict_by_entities_now_and_an_unknown_entity_answers_per_item(served) -> None:
    project, app, batch = served
    known = str(batch["user_id"].iloc[0])
    response = _one(app, "POST", URL, json={"entities": ["no-such-user", known]})
    assert response.status_code == 200, response.text
    items = response.json()["predictions"]
    assert [i["id"] for i in items] == ["no-such-user", known]
    assert items[0]["score"] is None and "no-such-user" in items[0]["error"]
    assert 0.0 <= items[1]["score"] <= 1.0 and items[1]["label"] in (0, 1)
    logged = _log_rows(app, project, response.json()["request_id"])
    assert [r["entity"] for r in logged] == [known]  # only the scored item is logged


# -- bad requests ----------------------------------------------------------------------------------


def test_missing_and_mistyped_fields_answer_422_naming_the_field(served) -> None:
    project, app, batch = served
    record = _record(project, batch.iloc[0])
    missing = {k: v for k, v in record.items() if k != "activity_count_30d"}
    mistyped = {**record, "age": "forty"}
    r_missing, r_mistyped, r_string_for_number = _send(
        app,
        ("POST", URL, {"json": {"records": [record, missing]}}),
        ("POST", URL, {"json": {"records": [mistyped]}}),
        ("POST", URL, {"json": {"records": [{**record, "signup_at_days_since": "NaN"}]}}),
    )
    _assert_error(r_missing, 422, "records[1].activity_count_30d", "missing")
    _assert_error(r_mistyped, 422, "records[0].age", "number")
    _assert_error(r_string_for_number, 422, "records[0].signup_at_days_since")
    _flush(app)
    assert project.counts()["prediction_log"] == 0


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_check_records_rejects_non_finite_numbers(served, bad: float) -> None:
    project, _, batch = served
    _, bundle = project.load_model("churn")
    record = {**_record(project, batch.iloc[0]), "activity_sum_value_30d": bad}
    with pytest.raises(InvalidRecordsError, match=r"records\[0\]\.activity_sum_value_30d") as exc:
        check_records([record], bundle)
    assert exc.value.http_status == 422
    # null is the way to send a missing value
    frame = check_records([{**record, "activity_sum_value_30d": None}], bundle)
    assert list(frame.columns) == bundle.feature_names


def test_request_body_shape_errors_are_json(served) -> None:
    project, app, batch = served
    record = _record(project, batch.iloc[0])
    responses = _send(
        app,
        (
            "POST",
            URL,
            {"content": b'{"records": [', "headers": {"content-type": "application/json"}},
        ),
        ("POST", URL, {"content": b"[1, 2]", "headers": {"content-type": "application/json"}}),
        ("POST", URL, {"json": {}}),
        ("POST", URL, {"json": {"records": [record], "entities": ["u1"]}}),
        ("POST", URL, {"json": {"records": []}}),
        ("POST", URL, {"json": {"records": [record], "extra": 1}}),
        ("POST", URL, {"json": {"records": [record], "as_of": "2026-06-01"}}),
        ("POST", URL, {"json": {"entities": ["u1"], "as_of": "yesterday"}}),
    )
    _assert_error(responses[0], 400, "malformed JSON")
    _assert_error(responses[1], 422)
    _assert_error(responses[2], 422, "exactly one of")
    _assert_error(responses[3], 422, "exactly one of")
    _assert_error(responses[4], 422, "records")
    _assert_error(responses[5], 422, "extra")
    _assert_error(responses[6], 422, "as_of")
    _assert_error(responses[7], 422, "as_of")
    _flush(app)
    assert project.counts()["prediction_log"] == 0


def test_unknown_problem_is_404_with_a_hint(served) -> None:
    project, app, batch = served
    record = _record(project, batch.iloc[0])
    response = _one(app, "POST", "/v1/models/chrun/predict", json={"records": [record]})
    body = _assert_error(response, 404, "chrun")
    assert body["error"] == "NotFoundError"
    assert "churn" in body["hint"]
    info = _one(app, "GET", "/v1/models/nope")
    _assert_error(info, 404, "nope")


def test_more_than_the_batch_limit_is_413(served) -> None:
    project, app, batch = served
    record = _record(project, batch.iloc[0])
    over = _one(app, "POST", URL, json={"records": [record] * (MAX_ITEMS + 1)})
    body = _assert_error(over, 413, str(MAX_ITEMS))
    assert body["error"] == "PayloadTooLargeError"
    entities = _one(app, "POST", URL, json={"entities": ["u"] * (MAX_ITEMS + 1)})
    _assert_error(entities, 413)
    _flush(app)
    assert project.counts()["prediction_log"] == 0


def test_unknown_route_wrong_method_and_crash_answer_json(served, monkeypatch) -> None:
    project, app, _ = served
    not_found, wrong_method = _send(app, ("GET", "/v1/nothing", {}), ("GET", URL, {}))
    _assert_error(not_found, 404)
    _assert_error(wrong_method, 405)

    def boom(*_a, **_k):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(app.state.serving, "score_entities", boom)
    crashed = _send(app, ("POST", URL, {"json": {"entities": ["u1"]}}), raise_app_exceptions=False)
    body = _assert_error(crashed[0], 500, "RuntimeError")
    assert "secret internals" not in json.dumps(body)


def test_model_info_lists_the_features_the_hint_points_at(served) -> None:
    project, app, _ = served
    response = _one(app, "GET", "/v1/models/churn")
    assert response.status_code == 200
    body = response.json()
    _, bundle = project.load_model("churn")
    assert [f["name"] for f in body["features"]] == bundle.feature_names
    assert body["model_version"] == "churn-v1" and body["threshold"] == bundle.threshold


# -- API token -------------------------------------------------------------------------------------


def test_token_protects_v1_routes_but_not_healthz(served, monkeypatch) -> None:
    project, _, batch = served
    monkeypatch.setenv("CYCLEML_API_TOKEN", "s3cret-token")
    app = project.app()
    record = _record(project, batch.iloc[0])
    body = {"json": {"records": [record]}}
    responses = _send(
        app,
        ("GET", "/healthz", {}),
        ("POST", URL, body),
        ("POST", URL, {**body, "headers": {"Authorization": "Bearer wrong"}}),
        ("POST", URL, {**body, "headers": {"Authorization": "Basic s3cret-token"}}),
        ("POST", URL, {**body, "headers": {"Authorization": "Bearer s3cret-token"}}),
        ("GET", "/v1/models/churn", {"headers": {"Authorization": "Bearer s3cret-token"}}),
        ("GET", "/v1/models/churn", {}),
        ("POST", "/v1/models/nope/predict", {"content": b"{bad"}),
    )
    health, none, wrong, basic, right, info, info_none, bad_unauth = responses
    assert health.status_code == 200
    for r in (none, wrong, basic, info_none, bad_unauth):
        _assert_error(r, 401)
        assert r.headers["www-authenticate"] == "Bearer"
    assert right.status_code == 200 and len(right.json()["predictions"]) == 1
    assert info.status_code == 200
    _flush(app)
    assert project.counts()["prediction_log"] == 1


def test_without_a_token_v1_routes_are_open(served, monkeypatch) -> None:
    project, _, batch = served
    monkeypatch.delenv("CYCLEML_API_TOKEN", raising=False)
    app = project.app()
    record = _record(project, batch.iloc[0])
    assert _one(app, "POST", URL, json={"records": [record]}).status_code == 200
    # an explicit token overrides the environment
    locked = create_app(project, token="t0k")
    assert _one(locked, "POST", URL, json={"records": [record]}).status_code == 401
    ok = _one(
        locked, "POST", URL, json={"records": [record]}, headers={"Authorization": "Bearer t0k"}
    )
    assert ok.status_code == 200


# -- the in-process API keeps its sources open -----------------------------------------------------


def test_project_predict_reuses_its_sources_across_threads_and_closes_them(served) -> None:
    import duckdb

    project, _app, batch = served
    row = batch.iloc[3]
    entity = str(row["user_id"])
    as_of = latest_run(project.store, "churn")["as_of"]
    first = project.predict("churn", entities=[entity], as_of=as_of)
    shared = project._predict_sources
    sources = shared._sources
    assert sources is not None  # opened by the first call that needed them
    answers: list[dict] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(3):
                answers.append(project.predict("churn", entities=[entity], as_of=as_of))
                answers.append(project.predict("churn", records=[_record(project, row)]))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert shared._sources is sources  # one connection for every call
    assert len(answers) == 24
    want = first["predictions"][0]["score"]
    assert abs(want - row["batch_score"]) < 1e-9
    for answer in answers:  # by entity as of the batch time and by record: the batch score
        assert abs(answer["predictions"][0]["score"] - want) < 1e-9
    with project.store.connect() as conn:
        logged = conn.execute(
            sa.select(sa.func.count())
            .select_from(prediction_log)
            .where(prediction_log.c.request_id.in_([a["request_id"] for a in [first, *answers]]))
        ).scalar()
    assert logged == 25  # written before each call returned
    project.close()
    assert "_predict_sources" not in project.__dict__
    with pytest.raises(duckdb.Error):
        sources.con.execute("SELECT 1")  # closed by Project.close()


def test_record_numbers_are_read_as_one_block_and_score_as_their_frame(served) -> None:
    from cycleml.registry._fastpath import _Records

    project, _app, batch = served
    _, bundle = project.load_model("churn")
    numbers = [c.name for c in bundle.columns if c.kind == "number"]
    assert len(numbers) >= 2
    base = _record(project, batch.iloc[0])
    plain = [base, {**base, numbers[0]: None}, {**base, numbers[1]: 7}]  # floats, None, an int
    block = _Records(plain).number_block(numbers)
    by_column = [_Records(plain).numbers(n) for n in numbers]
    assert block is not None and block.shape == (3, len(numbers))
    for j, column in enumerate(by_column):  # what the column-by-column read gives (NaN too)
        assert column.tolist() == pytest.approx(block[:, j].tolist(), nan_ok=True)
    odd = [{**base, numbers[0]: "2.5"}, {**base, numbers[1]: True}]  # text, a bool
    for record in odd:
        assert _Records([record]).number_block(numbers) is None  # read column by column
    for records in (plain, odd, [*plain, *odd]):
        frame = pd.DataFrame.from_records(records, columns=bundle.feature_names)
        got, labels = bundle.outputs_records(records)
        want, want_labels = bundle.outputs(frame)
        assert got.tolist() == pytest.approx(want.tolist(), abs=1e-9)
        assert list(labels) == list(want_labels)
    assert "fastpath_error" not in bundle.__dict__
