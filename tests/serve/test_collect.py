"""POST /v1/events and POST /v1/feedback in-process (httpx.ASGITransport): validation naming
the field, idempotency by id, collected events in the source view and the features, feedback
checked against the prediction log."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from cycleml import Project
from cycleml.data import SourceSet
from cycleml.errors import InvalidRecordsError, SpecError
from cycleml.serve import Limits, PredictionLogger
from cycleml.serve._collect import Collector
from cycleml.store.tables import events, feedback

EVENTS_LINE = "  events: {path: data/events.parquet, entity: user_id, time: ts}"


def collecting(root: Path) -> Path:
    """Turn on `collect: true` for the demo's events source."""
    spec = root / "cycleml.yaml"
    text = spec.read_text()
    assert EVENTS_LINE in text
    spec.write_text(text.replace(EVENTS_LINE, EVENTS_LINE[:-1] + ", collect: true}"))
    return root


def _send(app, *requests: tuple) -> list[httpx.Response]:
    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cycleml.test") as c:
            return [await c.request(method, url, **kw) for method, url, kw in requests]

    return asyncio.run(run())


def _post(app, url: str, body=None, **kw) -> httpx.Response:
    if body is not None:
        kw["json"] = body
    return _send(app, ("POST", url, kw))[0]


@pytest.fixture
def collect_project(demo_project: Path):
    project = Project(collecting(demo_project))
    yield project
    project.close()


def _event(**fields) -> dict:
    base = {"user_id": "u000008", "ts": "2026-06-02T10:00:00Z", "event_type": "purchase"}
    return {**base, **fields}


def _stored(project: Project) -> list:
    with project.store.connect() as conn:
        return conn.execute(sa.select(events).order_by(events.c.id)).fetchall()


# -- validation ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "named"),
    [
        ({"ts": "2026-06-02T10:00:00Z"}, "events[0].user_id is missing"),
        ({"user_id": "u1"}, "events[0].ts is missing"),
        (_event(colour="red"), "events[0].colour is not a column of source 'events'"),
        (_event(value="lots"), "events[0].value must be a number"),
        (_event(ts="yesterday"), "events[0].ts must be an ISO 8601 time"),
        (_event(event_type=7.5), "events[0].event_type must be a string"),
        (_event(event_id=["x"]), "events[0].event_id must be a string"),
    ],
)
def test_invalid_events_answer_422_naming_the_field(collect_project, event, named) -> None:
    app = collect_project.app()
    response = _post(app, "/v1/events", {"source": "events", "events": [event]})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "InvalidRecordsError"
    assert named in body["message"]
    assert "columns of source 'events'" in body["hint"]
    assert _stored(collect_project) == []  # nothing of a rejected batch is stored


def test_non_finite_numbers_are_refused(collect_project) -> None:
    with pytest.raises(InvalidRecordsError, match=r"events\[0\].value must be finite"):
        collect_project.track("events", _event(value=float("nan")))
    response = _post(
        collect_project.app(),
        "/v1/events",
        content=b'{"source": "events", "events": [{"user_id": "u1", "ts": "2026-06-02", '
        b'"value": 1e999}]}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400 and "infinity" in response.json()["message"]
    assert _stored(collect_project) == []


def test_one_bad_event_rejects_the_whole_batch(collect_project) -> None:
    app = collect_project.app()
    response = _post(
        app, "/v1/events", {"source": "events", "events": [_event(), _event(user_id=None)]}
    )
    assert response.status_code == 422
    assert "events[1].user_id is missing" in response.json()["message"]
    assert _stored(collect_project) == []


def test_unknown_source_404_and_a_source_that_does_not_collect_400(collect_project) -> None:
    app = collect_project.app()
    unknown = _post(app, "/v1/events", {"source": "nope", "events": [_event()]})
    assert unknown.status_code == 404 and "events" in unknown.json()["hint"]
    closed = _post(app, "/v1/events", {"source": "users", "events": [_event()]})
    assert closed.status_code == 400
    assert "collect: true" in closed.json()["hint"]
    malformed = _post(
        app, "/v1/events", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert malformed.status_code == 400 and "malformed JSON" in malformed.json()["message"]
    shape = _post(app, "/v1/events", {"source": "events", "rows": []})
    assert shape.status_code == 422 and "rows" in shape.json()["message"]


def test_more_events_than_the_limit_is_413(collect_project) -> None:
    app = collect_project.app(limits=Limits(max_items=2))
    response = _post(app, "/v1/events", {"source": "events", "events": [_event()] * 3})
    assert response.status_code == 413
    assert "limit is 2" in response.json()["message"]


# -- storage ---------------------------------------------------------------------------------------


def test_events_are_stored_in_utc_and_a_repeated_event_id_once(collect_project) -> None:
    app = collect_project.app()
    first = _post(
        app,
        "/v1/events",
        {
            "source": "events",
            "events": [
                _event(event_id="e-1", ts="2026-06-02T12:00:00+02:00", value=19.5, source="email"),
                _event(event_id="e-1"),  # the same id twice in one batch
                _event(),  # no id: always new
            ],
        },
    )
    assert first.status_code == 200, first.text
    assert first.json() == {"source": "events", "received": 3, "new": 2, "duplicates": 1}
    again = _post(app, "/v1/events", {"source": "events", "event": _event(event_id="e-1")})
    assert again.json() == {"source": "events", "received": 1, "new": 0, "duplicates": 1}
    rows = _stored(collect_project)
    assert len(rows) == 2
    row = rows[0]
    assert row.event_id == "e-1" and row.source == "events" and row.entity == "u000008"
    assert row.time == datetime(2026, 6, 2, 10, 0)  # +02:00 converted to naive UTC
    # the id is also the source's own event_id column; entity and time are not repeated
    assert row.payload == {
        "event_id": "e-1",
        "event_type": "purchase",
        "value": 19.5,
        "source": "email",
    }


def test_collected_events_are_rows_of_the_source_view(collect_project) -> None:
    collect_project.track(
        "events", [_event(event_id="e-9", value=3, source="ads", ts="2026-06-03T08:30:00")]
    )
    with collect_project.open_sources() as sources:
        before = sources.con.execute(
            "SELECT count(*) FROM read_parquet(?)",
            [str(collect_project.path / "data/events.parquet")],
        ).fetchall()[0][0]
        view = sources.view("events")
        assert sources.con.execute(f"SELECT count(*) FROM {view}").fetchall()[0][0] == before + 1
        row = sources.con.execute(
            f"SELECT event_id, user_id, ts, event_type, source, value, typeof(value), typeof(ts) "
            f"FROM {view} WHERE event_id = 'e-9'"
        ).fetchall()
    assert row == [
        (
            "e-9",
            "u000008",
            datetime(2026, 6, 3, 8, 30),
            "purchase",
            "ads",
            3.0,
            "DOUBLE",
            "TIMESTAMP",
        )
    ]


def test_a_posted_event_changes_a_feature_computed_later(collect_project) -> None:
    later = datetime(2026, 6, 5)
    column = "activity_sum_value_7d_event_type_purchase"
    with collect_project.features("churn") as fs:
        before = fs.compute(["u000008"], later)[column].iloc[0]
    app = collect_project.app()
    response = _post(
        app, "/v1/events", {"source": "events", "event": _event(event_id="p-1", value=42.0)}
    )
    assert response.status_code == 200 and response.json()["new"] == 1
    with collect_project.features("churn") as fs:
        after = fs.compute(["u000008"], later)[column].iloc[0]
        at_event_time = fs.compute(["u000008"], datetime(2026, 6, 2, 9))[column].iloc[0]
    assert after == pytest.approx(before + 42.0)
    assert at_event_time == pytest.approx(before)  # point in time: not before it happened


def test_dataset_fingerprint_changes_with_collected_events(collect_project) -> None:
    with collect_project.open_sources() as sources:
        first = sources.fingerprint(["events"])
    collect_project.track("events", _event(event_id="f-1"))
    with collect_project.open_sources() as sources:
        assert sources.fingerprint(["events"]) != first


def test_reload_shows_events_collected_after_the_view_was_opened(collect_project) -> None:
    with collect_project.open_sources() as sources:
        view = sources.view("events")
        count = sources.con.execute(f"SELECT count(*) FROM {view}").fetchall()[0][0]
        collect_project.track("events", _event(event_id="r-1"))
        sources.reload("events")
        assert sources.con.execute(f"SELECT count(*) FROM {view}").fetchall()[0][0] == count + 1


COLLECT_ONLY = """
spec_version: 1
name: fresh
store: {store}
sources:
  clicks:
    collect: true
    entity: user_id
    time: ts
    columns: {{user_id: string, ts: timestamp, page: string, price: number, n: integer,
              ok: boolean}}
"""


def _collect_only(write_project, store: str = "sqlite:///.cycleml/store.db") -> Project:
    return Project(write_project(COLLECT_ONLY.format(store=store)))


def test_a_collect_only_source_has_its_declared_columns(write_project) -> None:
    project = _collect_only(write_project)
    try:
        with SourceSet(project.spec, project.path) as sources:  # no store yet: no rows
            assert sources.columns("clicks") == {
                "user_id": "VARCHAR",
                "ts": "TIMESTAMP",
                "page": "VARCHAR",
                "price": "DOUBLE",
                "n": "BIGINT",
                "ok": "BOOLEAN",
            }
            assert sources.describe("clicks").rows == 0
        answer = project.track(
            "clicks",
            [
                {"user_id": "a", "ts": "2026-01-01T00:00:00Z", "page": "/", "n": 2.0, "ok": True},
                {"user_id": 7, "ts": "2026-01-02", "price": 1.5},
            ],
        )
        assert answer["new"] == 2
        with pytest.raises(InvalidRecordsError, match=r"events\[0\].n must be an integer"):
            project.track("clicks", {"user_id": "a", "ts": "2026-01-03", "n": 2.5})
        with pytest.raises(InvalidRecordsError, match=r"events\[0\].ok must be true or false"):
            project.track("clicks", {"user_id": "a", "ts": "2026-01-03", "ok": "yes"})
        with SourceSet(project.spec, project.path) as sources:
            rows = sources.con.execute(
                f"SELECT * FROM {sources.view('clicks')} ORDER BY ts"
            ).fetchall()
        assert rows == [
            ("a", datetime(2026, 1, 1), "/", None, 2, True),
            ("7", datetime(2026, 1, 2), None, 1.5, None, None),
        ]
    finally:
        project.close()


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{collect: true, entity: u, columns: {u: string}}", "needs `entity` and `time`"),
        ("{collect: true, entity: u, time: t}", "needs `columns:`"),
        ("{collect: true, entity: u, time: t, columns: {u: string, t: when}}", "unknown column"),
        ("{collect: true, entity: u, time: t, columns: {u: string}}", "must list the entity"),
        ("{path: a.csv, columns: {u: string}}", "only for a `collect: true` source"),
    ],
)
def test_collect_spec_mistakes_are_spec_errors(write_project, source, message) -> None:
    root = write_project(f"spec_version: 1\nname: x\nsources:\n  s: {source}\n")
    with pytest.raises(SpecError) as info:
        Project(root)
    assert message in str(info.value)


def test_events_on_a_postgresql_store(write_project, pg_database: str) -> None:
    project = _collect_only(write_project, pg_database)
    try:
        batch = [
            {"event_id": f"pg-{i}", "user_id": "a", "ts": f"2026-01-0{i + 1}"} for i in range(3)
        ]
        assert project.track("clicks", batch)["new"] == 3
        assert project.track("clicks", batch[:2] + [{**batch[0], "event_id": "pg-9"}]) == {
            "source": "clicks",
            "received": 3,
            "new": 1,
            "duplicates": 2,
        }
        with SourceSet(project.spec, project.path) as sources:
            count = sources.con.execute(
                f"SELECT count(*), max(ts) FROM {sources.view('clicks')}"
            ).fetchall()
        assert count == [(4, datetime(2026, 1, 3))]
    finally:
        project.close()


# -- feedback --------------------------------------------------------------------------------------


@pytest.fixture
def served(trained_copy: Path):
    project = Project(trained_copy)
    app = project.app()
    yield project, app
    app.state.serving.logger.close()
    project.close()


def _predict_entities(app, entities: list[str]) -> dict:
    response = _post(
        app, "/v1/models/churn/predict", {"entities": entities, "as_of": "2026-06-01T00:00:00"}
    )
    assert response.status_code == 200, response.text
    return response.json()


def _feedback_rows(project: Project) -> list:
    with project.store.connect() as conn:
        return conn.execute(sa.select(feedback).order_by(feedback.c.id)).fetchall()


def test_feedback_for_a_logged_prediction_is_stored_once(served) -> None:
    project, app = served
    answer = _predict_entities(app, ["u000008", "u000030"])
    request_id = answer["request_id"]
    first = _post(
        app,
        "/v1/feedback",
        {
            "problem": "churn",
            "request_id": request_id,
            "id": "u000030",
            "label": 1,
            "feedback_id": "f-1",
        },
    )
    assert first.status_code == 200, first.text
    assert first.json() == {"problem": "churn", "received": 1, "new": 1, "duplicates": 0}
    again = _post(
        app,
        "/v1/feedback",
        {
            "problem": "churn",
            "request_id": request_id,
            "id": "u000030",
            "label": 1,
            "feedback_id": "f-1",
        },
    )
    assert again.json()["duplicates"] == 1
    by_entity = _post(
        app, "/v1/feedback", {"problem": "churn", "feedback": [{"entity": "u000008", "label": 0}]}
    )
    assert by_entity.status_code == 200 and by_entity.json()["new"] == 1
    rows = _feedback_rows(project)
    assert [(r.feedback_id, r.request_id, r.entity, r.label) for r in rows] == [
        ("f-1", request_id, "u000030", 1.0),
        (None, None, "u000008", 0.0),
    ]


def test_feedback_for_a_record_prediction_names_its_item_id(served, trained_copy) -> None:
    project, app = served
    _, bundle = project.load_model("churn")
    with project.features("churn") as fs:
        frame = fs.compute(["u000008"], datetime(2026, 6, 1))
    record = {n: (None if v != v else v) for n, v in frame[bundle.feature_names].iloc[0].items()}
    record = {k: (v.item() if hasattr(v, "item") else v) for k, v in record.items()}
    response = _post(app, "/v1/models/churn/predict", {"records": [{**record, "id": "r-7"}]})
    assert response.status_code == 200, response.text
    request_id = response.json()["request_id"]
    ok = _post(app, "/v1/feedback", {"problem": "churn", "request_id": request_id, "label": 0})
    assert ok.status_code == 200, ok.text  # one item: no id needed
    assert _feedback_rows(project)[0].item_id == "r-7"


def test_feedback_errors(served) -> None:
    project, app = served
    answer = _predict_entities(app, ["u000008", "u000030"])
    unknown_problem = _post(app, "/v1/feedback", {"problem": "nope", "entity": "u1", "label": 1})
    assert unknown_problem.status_code == 404
    cases = [
        ({"request_id": "0" * 32, "label": 1}, "is not in the churn prediction log"),
        ({"request_id": answer["request_id"], "label": 1}, "scored 2 items: name one"),
        ({"request_id": answer["request_id"], "id": "u9", "label": 1}, "item 'u9' is not in"),
        ({"entity": "never-predicted", "label": 1}, "has no logged churn prediction"),
        ({"entity": "u000008", "label": "yes"}, "label must be a finite number"),
        ({"label": 1}, "needs `request_id` (and `id`) or `entity`"),
        ({"entity": "u000008", "label": 1, "score": 0.3}, "score is not a feedback field"),
    ]
    for item, message in cases:
        response = _post(app, "/v1/feedback", {"problem": "churn", **item})
        assert response.status_code == 422, (item, response.text)
        assert message in response.json()["message"], (item, response.json())
    assert _feedback_rows(project) == []


def test_feedback_right_after_the_answer_waits_for_the_log_flush(served) -> None:
    """The server logs predictions in the background: feedback for a request whose log rows
    are not written yet is accepted once the server's writer has flushed them."""
    project, _ = served
    logger = PredictionLogger(project.store, interval=3.0)
    try:
        answer = project.predict(
            "churn", entities=["u000008"], as_of=datetime(2026, 6, 1)
        )  # written at once, under its own request id
        rows_logged = project.counts()["prediction_log"]
        # a second request whose rows sit in the slow writer's queue
        pending = {
            "request_id": "pending-request",
            "problem": "churn",
            "model_version_id": project.model("churn").id,
            "entity": "u000030",
            "item_id": None,
            "inputs": {},
            "score": 0.5,
            "label": 1,
            "latency_ms": 1.0,
            "created_at": datetime(2026, 6, 1),
        }
        logger.put([pending])
        item = {"request_id": "pending-request", "id": "u000030", "label": 1}
        with pytest.raises(InvalidRecordsError, match="not in the churn prediction log"):
            Collector(project).record_feedback("churn", [item])  # no writer to wait for
        started = time.monotonic()
        stored = Collector(project, logger=logger).record_feedback("churn", [item])
        assert stored["new"] == 1 and time.monotonic() - started < 6
        assert project.counts()["prediction_log"] == rows_logged + 1
        assert answer["request_id"] != "pending-request"
    finally:
        logger.close()


def test_a_column_of_a_type_events_cannot_carry_is_named(write_project) -> None:
    root = write_project(
        "spec_version: 1\nname: x\nsources:\n"
        "  visits: {path: visits.jsonl, entity: user_id, time: ts, collect: true}\n",
        {"visits.jsonl": '{"user_id": "a", "ts": "2026-01-01T00:00:00", "tags": ["x", "y"]}\n'},
    )
    project = Project(root)
    try:
        with pytest.raises(InvalidRecordsError, match=r"events\[0\].tags: column type VARCHAR\[\]"):
            project.track("visits", {"user_id": "a", "ts": "2026-01-02", "tags": ["z"]})
        assert project.track("visits", {"user_id": "b", "ts": "2026-01-02"})["new"] == 1
        with SourceSet(project.spec, project.path) as sources:
            rows = sources.con.execute(
                f"SELECT user_id, ts, tags FROM {sources.view('visits')} ORDER BY ts"
            ).fetchall()
        assert rows == [
            ("a", datetime(2026, 1, 1), ["x", "y"]),
            ("b", datetime(2026, 1, 2), None),
        ]
    finally:
        project.close()


def test_concurrent_requests_with_the_same_event_ids_store_each_once(collect_project) -> None:
    from concurrent.futures import ThreadPoolExecutor

    batch = [_event(event_id=f"c-{i}", ts=f"2026-06-02T10:00:{i:02d}Z") for i in range(20)]
    collect_project.track("events", _event(event_id="warm-up"))  # the columns, read once

    def post(_: int) -> dict:
        return collect_project.track("events", batch)

    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(post, range(12)))
    assert sum(a["new"] for a in answers) == 20
    assert sum(a["duplicates"] for a in answers) == 20 * 11
    assert len(_stored(collect_project)) == 21


def test_make_router_works_with_the_project_alone(collect_project) -> None:
    from fastapi import FastAPI

    from cycleml.serve._collect import make_router

    app = FastAPI()
    app.include_router(make_router(collect_project))
    response = _post(app, "/v1/events", {"source": "events", "event": _event(event_id="m-1")})
    assert response.status_code == 200, response.text
    assert response.json() == {"source": "events", "received": 1, "new": 1, "duplicates": 0}
    assert [r.event_id for r in _stored(collect_project)] == ["m-1"]
