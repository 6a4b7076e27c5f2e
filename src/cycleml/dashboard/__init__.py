"""The web dashboard ``cycleml serve`` serves at ``/``: server-side pages (Jinja2) over the
Python API and the stored results, Plotly charts drawn by the package's own Plotly JS, and two
admin actions (promote a model version, apply a cleaning suggestion). See docs/dashboard.md."""

from __future__ import annotations

import gzip
import hashlib
import ipaddress
import threading
from importlib import resources
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response

from ..errors import CycleMLError, NotFoundError
from . import _data, _experiments, _models, _monitoring, _overview, _predictions, _problem
from ._actions import add_actions
from ._common import forbidden, not_found, render

if TYPE_CHECKING:
    from ..project import Project
    from ..serve._state import ServingState

LONG_CACHE = "public, max-age=31536000, immutable"
PLOTLY = ("static", "plotly-basic.min.js")  # MIT licence beside it
FAVICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">'
    '<circle cx="8" cy="8" r="7" fill="#1f5fa8"/>'
    '<path d="M4 8a4 4 0 1 1 4 4" stroke="#fff" stroke-width="2" fill="none"/></svg>'
)


class Assets:
    """The static files, read once and kept in memory (Plotly's JS also gzipped once)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._files: dict[str, tuple[bytes, bytes | None, str]] = {}

    def get(self, name: str) -> tuple[bytes, bytes | None, str] | None:
        with self._lock:
            if name in self._files:
                return self._files[name]
        if name == "plotly.min.js":
            # Plotly's "basic" bundle (scatter, bar, pie), vendored from plotly.js-basic-dist-min
            # at the version the plotly package bundles: 1.2 MB, which a cold page load spends
            # most of its time evaluating (the cartesian bundle, 1.5 MB, took ~1.6x as long).
            body = resources.files("cycleml.dashboard").joinpath(*PLOTLY).read_bytes()
            media = "text/javascript; charset=utf-8"
        elif name in ("dashboard.css", "dashboard.js"):
            body = resources.files("cycleml.dashboard").joinpath("static", name).read_bytes()
            media = ("text/css" if name.endswith(".css") else "text/javascript") + "; charset=utf-8"
        else:
            return None
        packed = gzip.compress(body, compresslevel=6, mtime=0) if len(body) > 1024 else None
        with self._lock:
            self._files[name] = (body, packed, media)
        return self._files[name]

    def version(self, name: str) -> str:
        found = self.get(name)
        return hashlib.sha256(found[0]).hexdigest()[:12] if found else ""


def _loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _compressed(request: Request, response: Response) -> Response:
    """``response`` gzipped when the client accepts it and the body is worth it (a page with
    its charts' JSON is 5-60 kB, a sixth of that gzipped)."""
    body = bytes(response.body)
    if len(body) < 1400 or "gzip" not in request.headers.get("accept-encoding", ""):
        return response
    packed = gzip.compress(body, compresslevel=5, mtime=0)
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
    headers.update({"Content-Encoding": "gzip", "Vary": "Accept-Encoding"})
    return Response(
        packed, status_code=response.status_code, headers=headers, media_type=response.media_type
    )


def make_router(project: Project, state: ServingState) -> APIRouter:
    """The dashboard's routes: the seven pages, ``/static/*``, ``/favicon.ico`` and the two
    admin actions (see :mod:`cycleml.dashboard._actions`)."""
    router = APIRouter()
    assets = Assets()
    suggestions = _data.SuggestionCache()
    balances = _problem.BalanceCache()
    versions: dict[str, str] = {}

    def asset_urls() -> dict[str, str]:
        if not versions:
            for name in ("plotly.min.js", "dashboard.css", "dashboard.js"):
                versions[name] = f"/static/{name}?v={assets.version(name)}"
        return versions

    async def page(request: Request, template: str, current: str, build, *args, **kwargs):
        """Render ``template`` with ``build(project, ...)``'s context, in a worker thread (the
        store and file reads block). Unknown names answer the 404 page."""
        if getattr(request.app.state, "auth", False) and not _loopback(request):
            return forbidden(project)
        urls = await run_in_threadpool(asset_urls)

        def work() -> HTMLResponse:
            try:
                context = build(project, *args, **kwargs)
            except NotFoundError as exc:
                return not_found(project, exc.message, exc.hint)
            except CycleMLError as exc:
                return render(
                    project,
                    "message.html",
                    current,
                    status=exc.http_status,
                    title="Cannot show this page",
                    message=exc.message,
                    hint=exc.hint,
                    assets=urls,
                )
            return render(project, template, current, assets=urls, **context)

        response = await run_in_threadpool(work)
        return _compressed(request, response)

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def overview(request: Request):
        return await page(request, "overview.html", "/", _overview.context)

    @router.get("/data", response_class=HTMLResponse, include_in_schema=False)
    async def data(request: Request):
        return await page(request, "data.html", "/data", _data.context, suggestions)

    @router.get("/problems/{name}", response_class=HTMLResponse, include_in_schema=False)
    async def problem(request: Request, name: str):
        def build(project: Project, name: str, balances) -> dict:
            project._problem(name)  # NotFoundError: the 404 page
            return _problem.context(project, name, balances)

        return await page(request, "problem.html", f"/problems/{name}", build, name, balances)

    @router.get("/models", response_class=HTMLResponse, include_in_schema=False)
    async def models(request: Request, problem: str | None = None, version: int | None = None):
        return await page(request, "models.html", "/models", _models.context, problem, version)

    @router.get("/predictions", response_class=HTMLResponse, include_in_schema=False)
    async def predictions(
        request: Request,
        problem: str | None = None,
        entity: str | None = None,
        version: str | None = None,
        kind: str = "all",
        limit: int = 50,
    ):
        number = int(version) if version and version.strip().isdigit() else None
        return await page(
            request,
            "predictions.html",
            "/predictions",
            _predictions.context,
            problem=problem,
            entity=entity,
            version=number,
            kind=kind,
            limit=limit,
        )

    @router.get("/experiments", response_class=HTMLResponse, include_in_schema=False)
    async def experiments(request: Request):
        return await page(request, "experiments.html", "/experiments", _experiments.context)

    @router.get("/monitoring", response_class=HTMLResponse, include_in_schema=False)
    async def monitoring(request: Request):
        return await page(request, "monitoring.html", "/monitoring", _monitoring.context)

    @router.get("/static/{name}", include_in_schema=False)
    async def static(request: Request, name: str):
        found = await run_in_threadpool(assets.get, name)
        if found is None:
            return not_found(project, f"no static file {name!r}")
        body, packed, media = found
        headers = {"Cache-Control": LONG_CACHE, "Vary": "Accept-Encoding"}
        if packed is not None and "gzip" in request.headers.get("accept-encoding", ""):
            headers["Content-Encoding"] = "gzip"
            body = packed
        return Response(body, media_type=media, headers=headers)

    @router.get("/favicon.ico", include_in_schema=False)
    async def favicon():
        return Response(FAVICON, media_type="image/svg+xml", headers={"Cache-Control": LONG_CACHE})

    add_actions(router, project, state)
    return router


__all__ = ["make_router"]
