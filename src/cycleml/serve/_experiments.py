"""Served experiments: ``GET /v1/experiments/{name}/assignment`` and ``?experiment=NAME`` on
predict and rank.

Each unit (an entity, a record's ``id``, the ranked entity) gets its variant by a hash of
(experiment, salt, unit) and is answered with the variant's behaviour: its model version (loaded
through the server's :class:`ModelCache`, sha256 checked) or, for ``baseline``, no model (predict
answers ``score: null``; rank the items in the order sent). While the experiment runs (start..end
in UTC dates) the first exposure of each unit is handed to an :class:`ExposureWriter` (batched
background writes, insert-or-ignore); outside its dates every unit gets the control and nothing
is logged."""

from __future__ import annotations

import threading
import time
import uuid
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool

from ..errors import InvalidRecordsError, NotFoundError, RequestError
from ..experiments._served import is_active, missing_version, served_experiment, variant_of
from ..store import utcnow
from ._online import LoadedModel, score_frame
from ._schema import RequestSchema

if TYPE_CHECKING:
    from ..project import Project
    from ..spec import ExperimentSpec
    from ._state import ServingState

INLINE_RECORDS = 16  # as the predict route: small record batches score on the event loop
_LOCK = threading.Lock()


class ExperimentService:
    """What served experiments keep in a server: the exposure writer and the variants' models."""

    def __init__(self, state: ServingState) -> None:
        self.state = state
        self.exposures = state.exposures  # the state's writer: in /readyz and /metrics

    def experiment(self, name: str, problem: str | None = None) -> ExperimentSpec:
        exp = served_experiment(self.state.project.spec, name)
        if problem is not None and exp.problem != problem:
            raise RequestError(
                f"experiment {name!r} splits the requests of problem {exp.problem!r}, "
                f"not {problem!r}",
                hint=f"send it with /v1/models/{exp.problem}/predict or /rank",
            )
        return exp

    def model(
        self, exp: ExperimentSpec, name: str, variant: str, production: LoadedModel | None = None
    ) -> LoadedModel | None:
        """The variant's model (None for ``baseline``)."""
        choice = exp.variants[variant].model
        if choice == "baseline":
            return None
        if choice == "production":
            return production if production is not None else self.state.model(exp.problem)
        if production is not None and production.version.version == choice:
            return production
        try:
            loaded = self.state.cache.version(exp.problem, choice)
        except NotFoundError:
            existing = self.state.project.registry.list(exp.problem)
            raise missing_version(name, exp, variant, choice, existing) from None
        if "schema" not in loaded.extra:
            bundle = loaded.bundle
            loaded.extra["schema"] = RequestSchema(exp.problem, bundle.columns, self.state.limits)
        return loaded

    def expose(
        self, name: str, units: dict[str, str], models: dict[str, Any], request_id: str | None
    ) -> None:
        """Hand the first exposure of each unit (unit -> variant) to the writer."""
        now = utcnow()
        put = self.exposures.put
        for unit, variant in units.items():
            model = models.get(variant)
            put(name, unit, variant, model.version.id if model else None, request_id, now)

    def close(self) -> None:
        self.exposures.close()


def service_of(state: ServingState) -> ExperimentService:
    """The app's :class:`ExperimentService` (created on first use)."""
    service = state.__dict__.get("experiments")
    if service is None:
        with _LOCK:
            service = state.__dict__.get("experiments")
            if service is None:
                service = state.__dict__["experiments"] = ExperimentService(state)
    return service


def close_experiments(state: ServingState) -> None:
    """Write every pending exposure (the app's shutdown)."""
    service = state.__dict__.get("experiments")
    if service is not None:
        service.close()


def _assign(exp: ExperimentSpec, name: str, units: list[str]) -> tuple[bool, list[str]]:
    active = is_active(exp, utcnow().date())
    if not active:
        return False, [exp.control] * len(units)
    return True, [variant_of(exp, name, u) for u in units]


# -- predict -------------------------------------------------------------------------------------


async def predict_in_experiment(
    state: ServingState,
    problem: str,
    name: str,
    raw: bytes,
    production: LoadedModel,
    body,
    started: float,
) -> dict:
    """The predict answer with each item's variant behaviour (see the module docstring)."""
    if body.records is not None and len(body.records) <= INLINE_RECORDS:
        return _predict(state, problem, name, raw, production, body, started)
    return await run_in_threadpool(_predict, state, problem, name, raw, production, body, started)


def _predict(state, problem, name, raw, production, body, started) -> dict:
    service = service_of(state)
    exp = service.experiment(name, problem)
    by_entity = body.records is None
    if by_entity:
        units = [str(e) for e in body.entities]
    else:
        schema: RequestSchema = production.extra["schema"]
        units = []
        for i, record in enumerate(body.records):
            unit = getattr(record, schema.id_field)
            if unit is None:
                raise InvalidRecordsError(
                    f"records[{i}] has no `id`: with experiment={name} every record needs one",
                    hint="the record's `id` is the unit the experiment assigns (a user id)",
                )
            units.append(str(unit))
    active, variants = _assign(exp, name, units)
    groups: dict[str, list[int]] = {}
    for i, variant in enumerate(variants):
        groups.setdefault(variant, []).append(i)
    request_id = None  # the first scored group's (score_frame makes one)
    items: list[dict | None] = [None] * len(units)
    models: dict[str, LoadedModel | None] = {}
    log_rows: list[dict] = []
    fresh = None
    for variant, index in groups.items():
        model = models[variant] = service.model(exp, name, variant, production)
        ids = [units[i] for i in index]
        if model is None:
            for i in index:
                item = {"id": units[i]}
                if by_entity:
                    item["entity"] = units[i]
                items[i] = item | {"score": None, "label": None}
        else:
            if by_entity:
                answer, rows, fresh = state.entity_answer(
                    problem, model, ids, body.as_of, time.perf_counter()
                )
            else:
                answer, rows = _score_records(problem, model, production, raw, body, index)
            for i, item in zip(index, answer["predictions"], strict=True):
                items[i] = item
            request_id = request_id or answer["request_id"]
            for row in rows:
                row["request_id"] = request_id
            log_rows += rows
        version = model.version.name if model is not None else None
        for i in index:
            items[i]["variant"] = variant
            items[i]["model_version"] = version
    request_id = request_id or uuid.uuid4().hex
    latency = (time.perf_counter() - started) * 1000
    for row in log_rows:
        row["latency_ms"] = latency
    state.logger.put(log_rows)
    state.metrics.predictions.labels(problem, "predict").inc(len(log_rows))
    if active:
        service.expose(name, dict(zip(units, variants, strict=True)), models, request_id)
    answer = {
        "model_version": production.version.name,
        "request_id": request_id,
        "experiment": name,
        "active": active,
        "predictions": items,
    }
    if fresh is not None:
        answer["features"] = fresh
    return answer


def _score_records(problem, model, production, raw, body, index) -> tuple[dict, list[dict]]:
    schema: RequestSchema = model.extra["schema"]
    records = body.records
    if schema is not production.extra["schema"]:
        records = schema.parse_predict(raw).records  # the variant's own features
    chosen = [records[i] for i in index]
    names = schema.names
    inputs = [dict(zip(names, row, strict=True)) for row in schema.rows(chosen)]
    return score_frame(
        problem,
        model,
        None,
        schema.ids(chosen),
        list(range(len(chosen))),
        entity_name=None,
        by_entity=False,
        started=time.perf_counter(),
        inputs=inputs,
        outputs=model.bundle.outputs_records(inputs),
    )


# -- rank ----------------------------------------------------------------------------------------


async def rank_in_experiment(
    state: ServingState,
    problem: str,
    name: str,
    raw: bytes,
    production: LoadedModel,
    body,
    started: float,
) -> dict:
    """The rank answer of the entity's variant: its model's order, or for ``baseline`` the
    items in the order sent (``score: null``)."""
    return await run_in_threadpool(_rank, state, problem, name, raw, production, body, started)


def _rank(state, problem, name, raw, production, body, started) -> dict:
    from ._rank import rank_items

    service = service_of(state)
    exp = service.experiment(name, problem)
    unit = str(body.entity)
    active, (variant,) = _assign(exp, name, [unit])
    model = service.model(exp, name, variant, production)
    if model is None:
        schema: RequestSchema = production.extra["schema"]
        ids = [
            item if isinstance(item, str) else str(getattr(item, schema.id_field))
            for item in body.items
        ]
        answer = {
            "model_version": None,
            "request_id": uuid.uuid4().hex,
            "entity": unit,
            "items": [{"id": i, "score": None, "rank": r + 1} for r, i in enumerate(ids)],
        }
    else:
        schema = model.extra["schema"]
        if schema is not production.extra["schema"]:
            body = schema.parse_rank(raw)
        answer = rank_items(state, problem, body, started, model)
    if active:
        service.expose(name, {unit: variant}, {variant: model}, answer["request_id"])
    return answer | {"experiment": name, "variant": variant, "active": active}


# -- the assignment route ------------------------------------------------------------------------


def make_router(project: Project, state: ServingState) -> APIRouter:
    """``GET /v1/experiments/{name}/assignment?unit=u1`` (scope ``predict``)."""
    router = APIRouter(tags=["experiments"])

    @router.get(
        "/v1/experiments/{name}/assignment",
        summary="The variant of a unit in a served experiment (logs its first exposure)",
    )
    def assignment(
        name: str,
        unit: Annotated[
            str, Query(min_length=1, max_length=200, description="The unit (an entity id).")
        ],
    ) -> dict:
        service = service_of(state)
        exp = service.experiment(name)
        active, (variant,) = _assign(exp, name, [unit])
        model = service.model(exp, name, variant)
        if active:
            service.expose(name, {unit: variant}, {variant: model}, None)
        return {
            "experiment": name,
            "unit": unit,
            "variant": variant,
            "model_version": model.version.name if model is not None else None,
            "active": active,
        }

    return router


__all__ = [
    "ExperimentService",
    "close_experiments",
    "make_router",
    "predict_in_experiment",
    "rank_in_experiment",
    "service_of",
]
