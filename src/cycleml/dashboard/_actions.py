"""The dashboard's two actions, JSON endpoints usable from ``curl`` too:

- ``POST /v1/models/{problem}/versions/{version}/promote`` (body optional ``{"force": true}``):
  :meth:`Project.promote` to production; the running service's model cache is refreshed at once.
- ``POST /v1/sources/{source}/cleaning/{step_id}/apply`` (body optional ``{"fingerprint"}``):
  :meth:`Project.apply_cleaning`, which records the step in cycleml.yaml.

Both need the ``admin`` scope (``serve/_auth.py``: 401 without a token, 403 without the scope).
A server started without any token refuses them too (401): a page on another site could
otherwise make the browser post to a loopback server (cross-site request forgery); a bearer
token in a header is something such a page cannot send."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from ..errors import NotFoundError, RequestError
from ..serve._auth import TOKEN_ENV, TOKENS_ENV

if TYPE_CHECKING:
    from ..project import Project
    from ..serve._state import ServingState

log = logging.getLogger("cycleml.dashboard")


class PromoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    force: bool = False


class ApplyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fingerprint: str | None = None


def _no_tokens() -> JSONResponse:
    return JSONResponse(
        {
            "error": "AuthenticationError",
            "message": "this server has no API token, so its admin actions are turned off",
            "hint": f"restart `cycleml serve` with {TOKEN_ENV} (or an admin token in "
            f"{TOKENS_ENV}) and send it as `Authorization: Bearer <token>`",
        },
        status_code=401,
        headers={"WWW-Authenticate": "Bearer"},
    )


def add_actions(router: APIRouter, project: Project, state: ServingState) -> None:
    @router.post(
        "/v1/models/{problem}/versions/{version}/promote",
        summary="Promote a model version to production (admin)",
        tags=["dashboard"],
    )
    async def promote(
        problem: str, version: int, request: Request, body: PromoteBody | None = None
    ):
        if not getattr(request.app.state, "auth", False):
            return _no_tokens()
        force = body.force if body is not None else False
        mv = await run_in_threadpool(project.promote, problem, version, "production", force=force)
        try:  # the service answers with the new version from the next request on
            await run_in_threadpool(state.cache.refresh, [problem])
        except Exception as exc:  # noqa: BLE001 - promoted all the same; the refresher retries
            log.warning("promoted %s, but reloading it failed: %s", mv.name, exc)
        log.info("promoted %s to production from the dashboard API", mv.name)
        return {
            "problem": problem,
            "version": mv.version,
            "model": mv.name,
            "stage": mv.stage,
            "message": f"{mv.name} is now the production model of {problem}",
        }

    @router.post(
        "/v1/sources/{source}/cleaning/{step_id}/apply",
        summary="Record a cleaning suggestion's step in cycleml.yaml (admin)",
        tags=["dashboard"],
    )
    async def apply_cleaning(
        source: str, step_id: str, request: Request, body: ApplyBody | None = None
    ):
        if not getattr(request.app.state, "auth", False):
            return _no_tokens()
        if source not in project.spec.sources:
            raise NotFoundError(
                f"unknown source {source!r}",
                hint=f"sources in cycleml.yaml: {', '.join(project.spec.sources) or '(none)'}",
            )
        if step_id.partition(".")[0] != source:
            raise RequestError(
                f"suggestion {step_id!r} does not belong to source {source!r}",
                hint=f"its id starts with its source: {source}.<rule>...",
            )
        fingerprint = body.fingerprint if body is not None else None
        result = await run_in_threadpool(project.apply_cleaning, step_id, fingerprint)
        log.info("cleaning step %s: %s", step_id, result["message"])
        return result
