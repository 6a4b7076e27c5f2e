"""Collecting product events (``POST /v1/events``) and ground-truth feedback (``POST
/v1/feedback``) into the store.

Events go to a source that says ``collect: true``: each one is checked against the source's
columns as DuckDB reads them, and stored in the store's ``events`` table (entity, time in naive
UTC, the other fields as a JSON payload). The source's DuckDB view then includes them (see
:meth:`cycleml.data.SourceSet._with_collected`). Feedback labels a logged prediction, named by
its request id (and item id) or by entity. Both are idempotent by an optional client id
(``event_id``, ``feedback_id``) and written in one transaction."""

from __future__ import annotations

import math
import threading
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from ..errors import InvalidRecordsError, NotFoundError, PayloadTooLargeError, RequestError
from ..store import utcnow
from ..store.tables import events as events_table
from ..store.tables import feedback as feedback_table
from ..store.tables import prediction_log

if TYPE_CHECKING:
    from ..project import Project
    from ._logger import PredictionLogger

EVENT_ID = "event_id"
MAX_ID_CHARS = 200
DEFAULT_MAX_ITEMS = 1000
_SHOWN = 20  # problems listed in one error message


# -- column types ----------------------------------------------------------------------------------


_INTEGERS = frozenset(
    {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT"}
    | {"UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT"}
)


def _kind(dtype: str) -> str | None:
    """What JSON value a column of DuckDB type ``dtype`` takes: text, integer, number, boolean,
    timestamp, date; None for types events cannot carry (lists, structs, blobs...)."""
    upper = dtype.upper()
    if upper in ("VARCHAR", "UUID") or upper.startswith("ENUM"):
        return "text"
    if upper in _INTEGERS:
        return "integer"
    if upper in ("DOUBLE", "FLOAT", "REAL") or upper.startswith("DECIMAL"):
        return "number"
    if upper == "BOOLEAN":
        return "boolean"
    if upper.startswith("TIMESTAMP"):
        return "timestamp"
    if upper == "DATE":
        return "date"
    return None


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time as naive UTC (an offset is honoured; none means UTC); None if not one."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def _check_value(value: Any, kind: str) -> tuple[Any, str | None]:
    """(the value to store, None) or (None, what is wrong)."""
    if kind == "text":
        if isinstance(value, str):
            return value, None
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value), None
        return None, f"must be a string, got {value!r}"
    if kind in ("integer", "number"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None, f"must be a number, got {value!r}"
        if not math.isfinite(value):
            return None, f"must be finite, got {value!r}"
        if kind == "integer" and isinstance(value, float):
            if not value.is_integer():
                return None, f"must be an integer, got {value!r}"
            value = int(value)
        return value, None
    if kind == "boolean":
        if isinstance(value, bool):
            return value, None
        return None, f"must be true or false, got {value!r}"
    if kind == "timestamp":
        parsed = parse_time(value)
        if parsed is None:
            return None, f"must be an ISO 8601 time (2026-06-01T12:00:00Z), got {value!r}"
        return parsed.isoformat(sep=" "), None
    if kind == "date":
        try:
            return date.fromisoformat(str(value)).isoformat(), None
        except ValueError:
            return None, f"must be a date (2026-06-01), got {value!r}"
    return None, "has a type events cannot carry"  # pragma: no cover - filtered earlier


def _client_id(value: Any, what: str) -> tuple[str | None, str | None]:
    if value is None:
        return None, None
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None, f"{what} must be a string, got {value!r}"
    text = str(value)
    if not text or len(text) > MAX_ID_CHARS:
        return None, f"{what} must have 1 to {MAX_ID_CHARS} characters"
    return text, None


def _raise_problems(what: str, problems: list[str], hint: str) -> None:
    if problems:
        more = f" (and {len(problems) - _SHOWN} more)" if len(problems) > _SHOWN else ""
        raise InvalidRecordsError(
            f"invalid {what}: " + "; ".join(problems[:_SHOWN]) + more, hint=hint
        )


def _items(body: Any, many: str, one: str, where: str) -> list:
    """The list under ``many`` (or the object under ``one``/``many``) of a request body."""
    if not isinstance(body, dict):
        raise InvalidRecordsError(f"the {where} body must be a JSON object")
    value = body.get(many, body.get(one))
    if isinstance(value, dict):
        return [value]
    if not isinstance(value, list) or not value:
        raise InvalidRecordsError(
            f"the {where} body needs `{many}` (a non-empty list of objects) or `{one}` (one)",
        )
    return value


# -- the collector ---------------------------------------------------------------------------------


class Collector:
    """Checks and stores events and feedback for one project. Source schemas are read once and
    cached (a server restart, or a new Collector, picks up a changed source)."""

    def __init__(
        self,
        project: Project,
        *,
        max_items: int = DEFAULT_MAX_ITEMS,
        logger: PredictionLogger | None = None,
    ) -> None:
        self.project = project
        self.max_items = max_items
        self.logger = logger
        self._schemas: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()

    # -- events --------------------------------------------------------------------------------

    def schema(self, source: str) -> dict[str, str]:
        """``{column: DuckDB type}`` of a ``collect: true`` source."""
        spec = self.project.spec
        if source not in spec.sources:
            raise NotFoundError(
                f"unknown source {source!r}",
                hint="sources that collect events: "
                + (", ".join(n for n, s in spec.sources.items() if s.collect) or "(none)"),
            )
        if not spec.sources[source].collect:
            raise RequestError(
                f"source {source!r} does not collect events",
                hint=f"add `collect: true` to sources.{source} in cycleml.yaml and restart",
            )
        with self._lock:
            if source not in self._schemas:
                with self.project.open_sources() as sources:
                    self._schemas[source] = sources.check(source)
            return self._schemas[source]

    def track(self, body: Any) -> dict:
        """``POST /v1/events``: ``{"source": ..., "events": [...]}`` or ``{"source": ...,
        "event": {...}}``."""
        if not isinstance(body, dict) or not isinstance(body.get("source"), str):
            raise InvalidRecordsError(
                "the events body needs `source` (the name of a `collect: true` source)",
                hint='send {"source": "events", "events": [{...}, ...]}',
            )
        unknown = sorted(set(body) - {"source", "events", "event"})
        if unknown:
            raise InvalidRecordsError(
                f"unknown key(s) {', '.join(unknown)} in the events body",
                hint='send {"source": ..., "events": [...]} (each event\'s fields go inside)',
            )
        return self.track_events(body["source"], _items(body, "events", "event", "events"))

    def track_events(self, source: str, events: list[dict] | dict) -> dict:
        """Check ``events`` against ``source``'s columns and store the new ones in one
        transaction. Answer: how many were received, new, and duplicates (a repeated
        ``event_id``)."""
        if isinstance(events, dict):
            events = [events]
        if not events:
            raise InvalidRecordsError("no events", hint="send at least one event")
        if len(events) > self.max_items:
            raise PayloadTooLargeError(
                f"{len(events)} events in one request; the limit is {self.max_items}",
                hint="send them in several requests (the limit is CYCLEML_MAX_ITEMS)",
            )
        columns = self.schema(source)
        spec = self.project.spec.sources[source]
        entity, time_col = spec.entity, spec.time
        assert entity is not None and time_col is not None  # the spec requires them
        rows: list[dict] = []
        problems: list[str] = []
        received = utcnow()
        for i, event in enumerate(events):
            where = f"events[{i}]"
            if not isinstance(event, dict):
                problems.append(f"{where} is not an object")
                continue
            mistakes = []
            event_id, wrong = _client_id(event.get(EVENT_ID), f"{where}.{EVENT_ID}")
            if wrong:
                mistakes.append(wrong)
            payload: dict = {}
            for field, role in ((entity, "entity"), (time_col, "time")):
                if event.get(field) is None:
                    mistakes.append(f"{where}.{field} is missing (the {role} column)")
            for field, value in event.items():
                if field not in columns:
                    if field != EVENT_ID:
                        mistakes.append(f"{where}.{field} is not a column of source {source!r}")
                    continue
                kind = _kind(columns[field])
                if kind is None:
                    mistakes.append(
                        f"{where}.{field}: column type {columns[field]} cannot be collected"
                    )
                    continue
                if value is None:
                    continue
                stored, wrong = _check_value(value, kind)
                if wrong:
                    mistakes.append(f"{where}.{field} {wrong}")
                else:
                    payload[field] = stored
            when = parse_time(event.get(time_col))
            if when is None and event.get(time_col) is not None and time_col in payload:
                mistakes.append(f"{where}.{time_col} must be an ISO 8601 time")
            if mistakes:
                problems.extend(mistakes)
                continue
            rows.append(
                {
                    "event_id": event_id,
                    "source": source,
                    "entity": str(event[entity]),
                    "time": when,
                    "payload": {k: v for k, v in payload.items() if k not in (entity, time_col)},
                    "received_at": received,
                }
            )
        _raise_problems(
            "events",
            problems,
            f"fields must be columns of source {source!r} ({', '.join(columns)}), typed as "
            "they are there; the entity and time columns are required",
        )
        new = _insert_once(self.project, events_table, "event_id", rows)
        return {"source": source, "received": len(rows), "new": new, "duplicates": len(rows) - new}

    # -- feedback ------------------------------------------------------------------------------

    def feedback(self, body: Any) -> dict:
        """``POST /v1/feedback``: ``{"problem": ..., "request_id": ..., "id": ..., "label":
        ...}``, ``{"problem": ..., "entity": ..., "label": ...}``, or ``{"problem": ...,
        "feedback": [{...}, ...]}``."""
        if not isinstance(body, dict) or not isinstance(body.get("problem"), str):
            raise InvalidRecordsError(
                "the feedback body needs `problem`",
                hint='send {"problem": "churn", "request_id": "...", "id": "u1", "label": 1}',
            )
        problem = body["problem"]
        if "feedback" in body:
            extra = sorted(set(body) - {"problem", "feedback"})
            if extra:
                raise InvalidRecordsError(
                    f"unknown key(s) {', '.join(extra)} next to `feedback`",
                    hint="put each label's fields inside the `feedback` list",
                )
            items = _items(body, "feedback", "feedback", "feedback")
        else:
            items = [{k: v for k, v in body.items() if k != "problem"}]
        return self.record_feedback(problem, items)

    def record_feedback(self, problem: str, items: list[dict]) -> dict:
        """Check each label against the prediction log and store the new ones in one
        transaction."""
        self.project._problem(problem)  # NotFoundError (404) for an unknown problem
        if len(items) > self.max_items:
            raise PayloadTooLargeError(
                f"{len(items)} feedback items in one request; the limit is {self.max_items}",
                hint="send them in several requests (the limit is CYCLEML_MAX_ITEMS)",
            )
        allowed = {"request_id", "id", "entity", "label", "feedback_id"}
        parsed: list[dict] = []
        problems: list[str] = []
        for i, item in enumerate(items):
            where = f"feedback[{i}]"
            if not isinstance(item, dict):
                problems.append(f"{where} is not an object")
                continue
            mistakes = [f"{where}.{k} is not a feedback field" for k in item if k not in allowed]
            label = item.get("label")
            if isinstance(label, bool):
                label = float(label)
            if not isinstance(label, int | float) or not math.isfinite(label):
                mistakes.append(f"{where}.label must be a finite number, got {label!r}")
            ids = {}
            for key in ("request_id", "id", "entity", "feedback_id"):
                ids[key], wrong = _client_id(item.get(key), f"{where}.{key}")
                if wrong:
                    mistakes.append(wrong)
            if ids["request_id"] is None and ids["entity"] is None:
                mistakes.append(f"{where} needs `request_id` (and `id`) or `entity`")
            if mistakes:
                problems.extend(mistakes)
                continue
            parsed.append({"where": where, "label": float(label), **ids})
        hint = (
            "name a logged prediction: the `request_id` a predict answer gave (and the item's "
            "`id`, or its entity), or an `entity` that was predicted; `label` is the truth"
        )
        _raise_problems("feedback", problems, hint)
        rows = self._match_log(problem, parsed, hint)
        new = _insert_once(self.project, feedback_table, "feedback_id", rows)
        return {
            "problem": problem,
            "received": len(rows),
            "new": new,
            "duplicates": len(rows) - new,
        }

    def _match_log(self, problem: str, parsed: list[dict], hint: str) -> list[dict]:
        """Find each item in the prediction log; the server's pending log rows are flushed
        first when one is missing, so feedback for an answer just given is accepted."""
        rows, missing = self._lookup_log(problem, parsed)
        if missing and self.logger is not None:
            self.logger.flush(timeout=5.0)
            rows, missing = self._lookup_log(problem, parsed)
        _raise_problems("feedback", missing, hint)
        return rows

    def _lookup_log(self, problem: str, parsed: list[dict]) -> tuple[list[dict], list[str]]:
        log = prediction_log.c
        request_ids = sorted({p["request_id"] for p in parsed if p["request_id"]})
        entities = sorted({p["entity"] for p in parsed if p["request_id"] is None})
        by_request: dict[str, list] = {}
        logged_entities: set[str] = set()
        with self.project.store.connect() as conn:
            for start in range(0, len(request_ids), 500):
                chunk = request_ids[start : start + 500]
                for row in conn.execute(
                    sa.select(log.request_id, log.item_id, log.entity).where(
                        log.problem == problem, log.request_id.in_(chunk)
                    )
                ):
                    by_request.setdefault(row.request_id, []).append(row)
            for start in range(0, len(entities), 500):
                chunk = entities[start : start + 500]
                logged_entities.update(
                    conn.execute(
                        sa.select(log.entity)
                        .where(log.problem == problem, log.entity.in_(chunk))
                        .distinct()
                    ).scalars()
                )
        now = utcnow()
        rows: list[dict] = []
        missing: list[str] = []
        for p in parsed:
            row = {
                "feedback_id": p["feedback_id"],
                "problem": problem,
                "request_id": p["request_id"],
                "item_id": None,
                "entity": p["entity"],
                "label": p["label"],
                "created_at": now,
            }
            if p["request_id"] is None:
                if p["entity"] not in logged_entities:
                    missing.append(
                        f"{p['where']}: entity {p['entity']!r} has no logged {problem} prediction"
                    )
                    continue
                rows.append(row)
                continue
            logged = by_request.get(p["request_id"], [])
            name = p["id"] or p["entity"]
            if name is not None:
                logged = [r for r in logged if name in (r.item_id, r.entity)]
            if not logged:
                what = f"request {p['request_id']!r}" + (f" item {name!r}" if name else "")
                missing.append(f"{p['where']}: {what} is not in the {problem} prediction log")
                continue
            if len(logged) > 1:
                missing.append(
                    f"{p['where']}: request {p['request_id']!r} scored {len(logged)} items: "
                    "name one with `id`"
                )
                continue
            row["item_id"], row["entity"] = logged[0].item_id, logged[0].entity
            rows.append(row)
        return rows, missing


def _insert_once(project: Project, table: sa.Table, key: str, rows: list[dict]) -> int:
    """Insert ``rows`` in one transaction, skipping those whose ``key`` is already stored or
    repeated in ``rows``; return how many were inserted."""
    if not rows:
        return 0
    store = project.store
    column = table.c[key]
    with store.begin() as conn:
        if store.dialect == "sqlite":
            # Take the write lock before reading the stored ids: a deferred transaction that
            # read first would fail ("database is locked") when a concurrent one wrote since.
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        keys = sorted({r[key] for r in rows if r[key] is not None})
        existing: set[str] = set()
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            existing.update(conn.execute(sa.select(column).where(column.in_(chunk))).scalars())
        fresh = []
        for row in rows:
            if row[key] is not None:
                if row[key] in existing:
                    continue
                existing.add(row[key])
            fresh.append(row)
        if not fresh:
            return 0
        if store.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        # A concurrent request may have stored the same id since the read: skip it then too.
        statement = insert(table).on_conflict_do_nothing(index_elements=[key])
        result = conn.execute(statement.returning(table.c.id), fresh)
        return len(result.fetchall())


# -- the routes ------------------------------------------------------------------------------------


def _parse(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise RequestError(
            f"malformed JSON: {exc}", hint="send a JSON object with Content-Type: application/json"
        ) from None


def _doc(example: dict, schema: dict) -> dict:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": schema, "example": example}},
        }
    }


_EVENTS_SCHEMA = {
    "type": "object",
    "required": ["source"],
    "properties": {
        "source": {"type": "string", "description": "a source with `collect: true`"},
        "events": {
            "type": "array",
            "items": {"type": "object"},
            "description": "events: the source's entity and time columns, optional `event_id`, "
            "and any other columns of the source",
        },
        "event": {"type": "object", "description": "one event"},
    },
}
_FEEDBACK_SCHEMA = {
    "type": "object",
    "required": ["problem"],
    "properties": {
        "problem": {"type": "string"},
        "request_id": {"type": "string", "description": "from the predict answer"},
        "id": {"type": "string", "description": "the item's id (or entity) in that answer"},
        "entity": {"type": "string", "description": "without request_id: a predicted entity"},
        "label": {"type": "number", "description": "the ground truth"},
        "feedback_id": {"type": "string", "description": "optional: a repeat is stored once"},
        "feedback": {"type": "array", "items": {"type": "object"}, "description": "several"},
    },
}


def make_router(project: Project, state: Any = None) -> APIRouter:
    """The routes ``POST /v1/events`` and ``POST /v1/feedback`` for ``project``. ``state`` (the
    app's :class:`cycleml.serve.ServingState`, optional) supplies the item limit and the
    prediction-log writer to flush before feedback is checked against the log."""
    limits = getattr(state, "limits", None)
    collector = Collector(
        project,
        max_items=getattr(limits, "max_items", DEFAULT_MAX_ITEMS),
        logger=getattr(state, "logger", None),
    )
    router = APIRouter(tags=["collect"])

    @router.post(
        "/v1/events",
        summary="Collect product events into a `collect: true` source",
        openapi_extra=_doc(
            {
                "source": "events",
                "events": [
                    {
                        "event_id": "e-1",
                        "user_id": "u1",
                        "ts": "2026-06-01T12:00:00Z",
                        "event_type": "purchase",
                        "value": 19.9,
                    }
                ],
            },
            _EVENTS_SCHEMA,
        ),
    )
    async def post_events(request: Request) -> Response:
        body = _parse(await request.body())
        answer = await run_in_threadpool(collector.track, body)
        return Response(orjson.dumps(answer), media_type="application/json")

    @router.post(
        "/v1/feedback",
        summary="Ground-truth labels for logged predictions",
        openapi_extra=_doc(
            {"problem": "churn", "request_id": "9f1c...", "id": "u1", "label": 1},
            _FEEDBACK_SCHEMA,
        ),
    )
    async def post_feedback(request: Request) -> Response:
        body = _parse(await request.body())
        answer = await run_in_threadpool(collector.feedback, body)
        return Response(orjson.dumps(answer), media_type="application/json")

    router.collector = collector  # type: ignore[attr-defined]  # for tests and the app
    return router


__all__ = ["Collector", "make_router", "parse_time"]
