"""The FastAPI app: health, readiness and online predictions over the Python API.

Every error answers a JSON body with ``error``, ``message`` and ``hint``. When an API token is set
(``CYCLEML_API_TOKEN``), every ``/v1/*`` route requires ``Authorization: Bearer <token>``;
``/healthz`` and ``/readyz`` stay open for probes."""

from __future__ import annotations

import hmac
import os
from datetime import datetime
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from .._version import __version__
from ..errors import CycleMLError, PayloadTooLargeError

if TYPE_CHECKING:
    from ..project import Project

TOKEN_ENV = "CYCLEML_API_TOKEN"
MAX_ITEMS = 1000

_BODY_HINT = 'send JSON like {"records": [{...}]} or {"entities": ["id"]}'


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    records: list[dict[str, Any]] | None = Field(default=None, min_length=1)
    entities: list[str] | None = Field(default=None, min_length=1)
    as_of: datetime | None = Field(
        default=None,
        description="For `entities`: compute the features as of this time (default: now).",
    )

    @model_validator(mode="after")
    def _one_of(self) -> PredictRequest:
        if (self.records is None) == (self.entities is None):
            raise ValueError("send exactly one of `records` or `entities`")
        if self.as_of is not None and self.records is not None:
            raise ValueError("`as_of` applies to `entities` only (records carry their features)")
        return self


def _error(status: int, error: str, message: str, hint: str | None = None, **headers: str):
    body = {"error": error, "message": message, "hint": hint}
    return JSONResponse(body, status_code=status, headers=headers or None)


class BearerTokenAuth:
    """Pure ASGI middleware: ``/v1/*`` needs ``Authorization: Bearer <token>`` (401 otherwise)."""

    def __init__(self, app, token: str) -> None:
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope, receive, send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and (path == "/v1" or path.startswith("/v1/")):
            header = b""
            for key, value in scope.get("headers", []):
                if key == b"authorization":
                    header = value
                    break
            scheme, _, credential = header.partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(
                credential.strip(), self.token
            ):
                response = _error(
                    401,
                    "AuthenticationError",
                    "missing or wrong API token" if header else "this route needs an API token",
                    "send `Authorization: Bearer <token>` with the server's CYCLEML_API_TOKEN",
                    **{"WWW-Authenticate": "Bearer"},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(project: Project, *, token: str | None = None) -> FastAPI:
    """The app serving ``project``. ``token`` defaults to ``$CYCLEML_API_TOKEN``; when set (and
    not empty) every ``/v1/*`` route requires it."""
    app = FastAPI(title="cycleml", version=__version__)
    token = token if token is not None else os.environ.get(TOKEN_ENV)
    if token:
        app.add_middleware(BearerTokenAuth, token=token)
    app.state.auth = bool(token)

    @app.exception_handler(CycleMLError)
    async def _cycleml_error(_request: Request, exc: CycleMLError) -> JSONResponse:
        return JSONResponse(exc.to_dict(), status_code=exc.http_status)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        malformed = [e for e in errors if e.get("type") == "json_invalid"]
        if malformed:
            e = malformed[0]
            position = next((p for p in e["loc"] if isinstance(p, int)), None)
            detail = (e.get("ctx") or {}).get("error") or e["msg"]
            where = f" at character {position}" if position is not None else ""
            return _error(400, "RequestError", f"malformed JSON{where}: {detail}", _BODY_HINT)
        fields = [
            (".".join(str(p) for p in e["loc"] if p != "body") or "body") + f": {e['msg']}"
            for e in errors
        ]
        return _error(422, "RequestError", "invalid request body: " + "; ".join(fields), _BODY_HINT)

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
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        return _error(
            500,
            "InternalError",
            f"unexpected {type(exc).__name__} while answering the request",
            "the server log has the traceback; please report it",
        )

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok", "version": __version__}

    @app.get("/readyz")
    def readyz() -> JSONResponse:
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
            try:
                checks[f"model:{problem}"] = project.model_cache.get(problem).version.name
            except CycleMLError as exc:
                checks[f"model:{problem}"] = exc.message
                ok = False
        return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503)

    @app.get("/v1/models/{problem}")
    def model_info(problem: str) -> dict:
        project._problem(problem)
        loaded = project.model_cache.get(problem)
        bundle = loaded.bundle
        return {
            "problem": problem,
            "model_version": loaded.version.name,
            "task": bundle.task,
            "threshold": bundle.threshold,
            "entity": bundle.entity,
            "features": [{"name": c.name, "kind": c.kind} for c in bundle.columns],
        }

    @app.post("/v1/models/{problem}/predict")
    def predict(problem: str, body: PredictRequest) -> dict:
        items = body.records if body.records is not None else body.entities
        if items is not None and len(items) > MAX_ITEMS:
            raise PayloadTooLargeError(
                f"{len(items)} items in one request; the limit is {MAX_ITEMS}",
                hint="split the batch, or use `cycleml predict --batch` for bulk scoring",
            )
        return project.predict(
            problem, records=body.records, entities=body.entities, as_of=body.as_of
        )

    return app


def is_loopback(host: str) -> bool:
    import ipaddress

    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
