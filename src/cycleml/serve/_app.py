"""The FastAPI app: health, readiness, metrics, online predictions and ranking.

Every error answers a JSON body with ``error``, ``message`` and ``hint``. Tokens and scopes:
see :mod:`cycleml.serve._auth`. The app keeps one :class:`ServingState` (``app.state.serving``):
the models, the DuckDB sources, the prediction-log writer and the metrics."""

from __future__ import annotations

import copy
import gc
import ipaddress
import logging
import os
import time
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from .._version import __version__
from ..errors import CycleMLError, StoreError
from ._auth import TOKEN_ENV, TokenAuth, tokens_from_env
from ._experiments import close_experiments, predict_in_experiment, rank_in_experiment
from ._experiments import make_router as experiments_router
from ._limits import BodyLimit, Limits
from ._metrics import MetricsMiddleware
from ._schema import BODY_HINT
from ._state import ServingState

if TYPE_CHECKING:
    from ..project import Project

log = logging.getLogger("cycleml.serve")

PROJECT_ENV = "CYCLEML_PROJECT"
INLINE_RECORDS = 16  # record batches up to this size are scored on the event loop
MAX_ITEMS = Limits().max_items  # the default; the server's limit is `state.limits.max_items`


class _GenericPredict(BaseModel):
    """The predict body in general; /docs shows each problem's own fields too."""

    model_config = ConfigDict(extra="forbid")
    records: list[dict[str, Any]] | None = Field(default=None, min_length=1)
    entities: list[str] | None = Field(default=None, min_length=1)
    as_of: datetime | None = None


class _GenericRank(BaseModel):
    model_config = ConfigDict(extra="forbid")
    entity: str
    items: list[str] | list[dict[str, Any]]
    as_of: datetime | None = None


def _body_doc(model: type[BaseModel]) -> dict:
    from ._schema import _inline

    schema = _inline(model.model_json_schema())
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _error(status: int, error: str, message: str, hint: str | None = None, **headers: str):
    body = {"error": error, "message": message, "hint": hint}
    return JSONResponse(body, status_code=status, headers=headers or None)


def _json(body: dict) -> Response:
    return Response(
        orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json"
    )


def create_app(
    project: Project,
    *,
    token: str | None = None,
    limits: Limits | None = None,
    refresh_seconds: float = 2.0,
) -> FastAPI:
    """The app serving ``project``. ``token`` defaults to ``$CYCLEML_API_TOKEN`` (an empty
    string: none); ``$CYCLEML_API_TOKENS`` adds scoped tokens. When any token is set, every
    route but the probes, ``/metrics`` and the docs requires one."""
    state = ServingState(project, limits=limits, refresh_seconds=refresh_seconds)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        await run_in_threadpool(state.start)
        # Everything loaded so far (models, libraries) lives as long as the server: move it out
        # of the garbage collector's reach, so a full collection does not stall a request.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await run_in_threadpool(state.stop)
            await run_in_threadpool(close_experiments, state)  # served experiments (issue 7)

    app = FastAPI(title="cycleml", version=__version__, lifespan=lifespan)
    app.state.serving = state
    tokens = tokens_from_env(token)
    # outermost first: metrics see every answer, auth runs before any body is read
    app.add_middleware(BodyLimit, limits=state.limits)
    if tokens:
        app.add_middleware(TokenAuth, tokens=tokens)
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)
    app.state.auth = bool(tokens)
    metrics = state.metrics

    def _count_error(request: Request, error: str) -> None:
        route = getattr(request.scope.get("route"), "path", None) or "other"
        metrics.errors.labels(route, error).inc()

    @app.exception_handler(CycleMLError)
    async def _cycleml_error(request: Request, exc: CycleMLError) -> JSONResponse:
        _count_error(request, type(exc).__name__)
        return JSONResponse(exc.to_dict(), status_code=exc.http_status)

    @app.exception_handler(SQLAlchemyError)
    async def _store_error(request: Request, exc: SQLAlchemyError) -> JSONResponse:
        _count_error(request, "StoreError")
        first = str(getattr(exc, "orig", None) or exc).splitlines()[0][:200]
        err = StoreError(
            f"the store could not answer: {type(exc).__name__}: {first}",
            hint="check that the store (the `store:` URL in cycleml.yaml) is up; "
            "GET /readyz reports it",
        )
        return JSONResponse(err.to_dict(), status_code=err.http_status)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        from ._schema import where

        _count_error(request, "RequestError")
        errors = exc.errors()
        malformed = [e for e in errors if e.get("type") == "json_invalid"]
        if malformed:
            e = malformed[0]
            detail = (e.get("ctx") or {}).get("error") or e["msg"]
            return _error(400, "RequestError", f"malformed JSON: {detail}", BODY_HINT)
        fields = [f"{where(tuple(e['loc']))}: {e['msg']}" for e in errors]
        return _error(422, "RequestError", "invalid request body: " + "; ".join(fields))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        hints = {404: "see /docs for the routes", 405: "see /docs for the allowed methods"}
        return _error(
            exc.status_code,
            "HTTPError",
            f"{request.method} {request.url.path}: {exc.detail}",
            hints.get(exc.status_code),
            **(exc.headers or {}),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        _count_error(request, "InternalError")
        return _error(
            500,
            "InternalError",
            f"unexpected {type(exc).__name__} while answering the request",
            "the server log has the traceback; please report it",
        )

    # -- probes and metrics ------------------------------------------------------------------

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok", "version": __version__}

    @app.get("/readyz")
    def readyz():
        import sqlalchemy as sa

        checks: dict[str, Any] = {}
        ok = True
        try:
            project.store.open()
            with project.store.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            checks["store"] = "ok"
        except CycleMLError as exc:
            checks["store"] = exc.message
            ok = False
        except Exception as exc:  # noqa: BLE001 - any driver error means "not ready"
            checks["store"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            ok = False
        for problem in project.spec.problems:
            loaded = state.cache.peek(problem)
            try:
                loaded = loaded or state.cache.get(problem)
                checks[f"model:{problem}"] = loaded.version.name
            except CycleMLError as exc:
                checks[f"model:{problem}"] = exc.message
                ok = False
            except Exception as exc:  # noqa: BLE001 - the store is down: reported above
                checks[f"model:{problem}"] = f"{type(exc).__name__}: {str(exc)[:200]}"
                ok = False
            if problem in state.cache.errors:
                checks[f"reload:{problem}"] = state.cache.errors[problem]
        writers = {"prediction_log": state.logger.status(), "exposures": state.exposures.status()}
        for key, writer in writers.items():  # the background writers: ok, or their last error
            checks[key] = "ok" if writer["error"] is None else writer["error"]
            ok = ok and writer["error"] is None
        body = {"ready": ok, "checks": checks, **writers}
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics")
    def metrics_text():
        metrics.log_queue.set(state.logger.depth)
        metrics.exposure_queue.set(state.exposures.depth)
        text, content_type = metrics.render()
        return Response(text, media_type=content_type)

    # -- models --------------------------------------------------------------------------------

    @app.get("/v1/models/{problem}")
    def model_info(problem: str) -> dict:
        state.check_problem(problem)
        loaded = state.model(problem)
        bundle = loaded.bundle
        return {
            "problem": problem,
            "model_version": loaded.version.name,
            "task": bundle.task,
            "threshold": bundle.threshold,
            "entity": bundle.entity,
            "features": [{"name": c.name, "kind": c.kind} for c in bundle.columns],
        }

    async def _loaded(problem: str):
        state.check_problem(problem)
        loaded = state.cache.peek(problem)
        if loaded is None or not state.cache.background:
            loaded = await run_in_threadpool(state.model, problem)
        return loaded

    @app.post(
        "/v1/models/{problem}/predict",
        openapi_extra=_body_doc(_GenericPredict),
        summary="Score records or entities with the production model",
    )
    async def predict(problem: str, request: Request):
        started = time.perf_counter()
        raw = await request.body()
        loaded = await _loaded(problem)
        body = loaded.extra["schema"].parse_predict(raw)
        experiment = request.query_params.get("experiment")  # served experiments (issue 7)
        if experiment is not None:
            return _json(
                await predict_in_experiment(state, problem, experiment, raw, loaded, body, started)
            )
        if body.records is not None and len(body.records) <= INLINE_RECORDS:
            # small batches score on the event loop: no thread hop on the fast path
            answer = state.score_records(problem, loaded, body.records, started)
        elif body.records is not None:  # bigger ones in a thread, not blocking other requests
            answer = await run_in_threadpool(
                state.score_records, problem, loaded, body.records, started
            )
        else:  # a SQLite online store answers on the event loop (servefast); else a thread
            answer = state.score_entities_inline(
                problem, loaded, body.entities, body.as_of, started
            ) or await run_in_threadpool(
                state.score_entities, problem, loaded, body.entities, body.as_of, started
            )
        return _json(answer)

    @app.post(
        "/v1/models/{problem}/rank",
        openapi_extra=_body_doc(_GenericRank),
        summary="Order candidate items for an entity by the ranking model's score",
    )
    async def rank(problem: str, request: Request):
        from ._rank import rank_items

        started = time.perf_counter()
        raw = await request.body()
        loaded = await _loaded(problem)
        body = loaded.extra["schema"].parse_rank(raw)
        experiment = request.query_params.get("experiment")  # served experiments (issue 7)
        if experiment is not None:
            return _json(
                await rank_in_experiment(state, problem, experiment, raw, loaded, body, started)
            )
        answer = await run_in_threadpool(rank_items, state, problem, body, started, loaded)
        return _json(answer)

    try:
        from ._collect import make_router
    except ImportError:  # pragma: no cover - until serve/_collect.py exists
        make_router = None
    if make_router is not None:
        app.include_router(make_router(project, state))
    app.include_router(experiments_router(project, state))  # served experiments (issue 7)

    # -- the web dashboard at / (cycleml.dashboard): pages, assets and two admin actions --
    from ..dashboard import make_router as make_dashboard_router

    app.include_router(make_dashboard_router(project, state))
    # -- end of the dashboard block --

    def openapi() -> dict:
        """The generated schema plus one predict (and rank) path per problem, with the fields of
        its production model."""
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            try:
                app.openapi_schema = get_openapi(
                    title=app.title, version=app.version, routes=app.routes
                )
            except Exception:  # noqa: BLE001 - one undocumentable route must not hide the rest
                routes = []
                for route in app.routes:
                    try:
                        get_openapi(title=app.title, version=app.version, routes=[route])
                    except Exception:  # noqa: BLE001
                        name = getattr(route, "path", None) or type(route).__name__
                        log.warning("/openapi.json leaves out %s (it cannot be documented)", name)
                        continue
                    routes.append(route)
                app.openapi_schema = get_openapi(
                    title=app.title, version=app.version, routes=routes
                )
        schema = copy.deepcopy(app.openapi_schema)
        paths = schema.setdefault("paths", {})
        for problem in project.spec.problems:
            loaded = state.cache.peek(problem)
            if loaded is None:
                try:
                    loaded = state.model(problem)
                except Exception:  # noqa: BLE001 - no model yet: the generic path documents it
                    continue
            kinds = ["predict"] + (["rank"] if loaded.bundle.task == "ranking" else [])
            for kind in kinds:
                generic = paths.get(f"/v1/models/{{problem}}/{kind}", {}).get("post")
                if generic is None:
                    continue
                op = copy.deepcopy(generic)
                op["parameters"] = [p for p in op.get("parameters", []) if p["name"] != "problem"]
                op["operationId"] = f"{kind}_{problem}"
                op["summary"] = f"{kind.capitalize()} with the {problem} model"
                op.update(loaded.extra["schema"].openapi(kind))
                paths[f"/v1/models/{problem}/{kind}"] = {"post": op}
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def app_from_env() -> FastAPI:
    """The app factory uvicorn workers import (``cycleml serve --workers N``): the project path
    comes from ``$CYCLEML_PROJECT``."""
    from ..project import Project

    project = Project(os.environ.get(PROJECT_ENV, "."))
    project.store.open()
    return create_app(project)


def is_loopback(host: str) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


__all__ = ["MAX_ITEMS", "PROJECT_ENV", "TOKEN_ENV", "app_from_env", "create_app", "is_loopback"]
