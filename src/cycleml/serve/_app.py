"""The FastAPI app: health, readiness and online predictions over the Python API."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from .._version import __version__
from ..errors import CycleMLError, PayloadTooLargeError

if TYPE_CHECKING:
    from ..project import Project


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    records: list[dict[str, Any]] | None = None
    entities: list[str] | None = None


MAX_ITEMS = 1000


def create_app(project: Project) -> FastAPI:
    app = FastAPI(title="cycleml", version=__version__)

    @app.exception_handler(CycleMLError)
    async def _cycleml_error(_request: Request, exc: CycleMLError) -> JSONResponse:
        return JSONResponse(exc.to_dict(), status_code=exc.http_status)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [
            ".".join(str(p) for p in e["loc"] if p != "body") + f": {e['msg']}"
            for e in exc.errors()
        ]
        body = {
            "error": "RequestError",
            "message": "invalid request body: " + "; ".join(fields),
            "hint": 'send JSON like {"records": [{...}]} or {"entities": ["id"]}',
        }
        return JSONResponse(body, status_code=422)

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok", "version": __version__}

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        checks: dict[str, Any] = {}
        ok = True
        try:
            project.store.open()
            checks["store"] = "ok"
        except CycleMLError as exc:
            checks["store"] = exc.message
            ok = False
        for problem in project.spec.problems:
            try:
                checks[f"model:{problem}"] = project.model_cache.get(problem).version.name
            except CycleMLError as exc:
                checks[f"model:{problem}"] = exc.message
                ok = False
        return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503)

    @app.post("/v1/models/{problem}/predict")
    def predict(problem: str, body: PredictRequest) -> dict:
        items = body.records if body.records is not None else body.entities
        if items is not None and len(items) > MAX_ITEMS:
            raise PayloadTooLargeError(
                f"{len(items)} items in one request; the limit is {MAX_ITEMS}",
                hint="split the batch, or use `cycleml predict --batch` for bulk scoring",
            )
        return project.predict(problem, records=body.records, entities=body.entities)

    return app


def is_loopback(host: str) -> bool:
    import ipaddress

    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
