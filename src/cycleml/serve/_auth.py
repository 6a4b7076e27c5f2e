"""API tokens and their scopes, checked by a pure ASGI middleware before any route runs.

``CYCLEML_API_TOKEN`` is one admin token (every scope). ``CYCLEML_API_TOKENS`` adds scoped tokens:
``token1:predict,track;token2:admin`` (``;`` between tokens, ``:`` before the comma-separated
scopes). Scopes: ``predict``, ``track`` and ``admin`` (everything). Which scope a request needs is
looked up in :data:`ROUTE_SCOPES` by method and path pattern, so routes other modules add are
covered too; a ``/v1`` route missing from the table needs ``admin``. Probes, metrics and the API
docs stay open (:data:`OPEN_PATHS`)."""

from __future__ import annotations

import hmac
import os
import re

from ..errors import RequestError

TOKEN_ENV = "CYCLEML_API_TOKEN"
TOKENS_ENV = "CYCLEML_API_TOKENS"
SCOPES = ("predict", "track", "admin")

OPEN_PATHS = frozenset(
    {"/healthz", "/readyz", "/metrics", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
)

# (methods, path pattern, scope): the first match decides. Patterns match the whole path.
ROUTE_SCOPES: list[tuple[frozenset[str], re.Pattern[str], str]] = [
    (frozenset({"POST"}), re.compile(r"/v1/models/[^/]+/(predict|rank)"), "predict"),
    (frozenset({"GET", "HEAD"}), re.compile(r"/v1/models(/[^/]+)?"), "predict"),
    (
        frozenset({"GET", "POST"}),
        re.compile(r"/v1/experiments/[^/]+/assign(ment)?s?(/.*)?"),
        "predict",
    ),
    (frozenset({"POST"}), re.compile(r"/v1/events"), "track"),
    (frozenset({"POST"}), re.compile(r"/v1/feedback"), "track"),
]


# -- the web dashboard (cycleml.dashboard) --
# Its pages and assets (GET/HEAD) need no token here: browsers cannot send one when they
# navigate. When tokens are set, the dashboard answers only loopback clients itself (see
# docs/dashboard.md). Its actions are /v1 POST routes: they need `admin` like any other.
DASHBOARD_PAGES = re.compile(
    r"/(data|models|predictions|experiments|monitoring|favicon\.ico)?|/problems/[^/]+"
    r"|/static/[A-Za-z0-9_.-]+"
)
# -- end of the dashboard block --


def required_scope(method: str, path: str) -> str | None:
    """The scope ``method path`` needs; None for an open path."""
    if path in OPEN_PATHS:
        return None
    if method in ("GET", "HEAD") and DASHBOARD_PAGES.fullmatch(path):
        return None
    for methods, pattern, scope in ROUTE_SCOPES:
        if method in methods and pattern.fullmatch(path):
            return scope
    return "admin"


def parse_tokens(admin: str | None, scoped: str | None) -> dict[str, frozenset[str]]:
    """``{token: scopes}`` from the admin token and a ``CYCLEML_API_TOKENS`` value."""
    tokens: dict[str, frozenset[str]] = {}
    if admin:
        tokens[admin] = frozenset(SCOPES)
    for part in (scoped or "").split(";"):
        part = part.strip()
        if not part:
            continue
        token, sep, names = part.rpartition(":")
        scopes = frozenset(s.strip() for s in names.split(",") if s.strip())
        unknown = sorted(scopes - set(SCOPES))
        if not sep or not token or not scopes or unknown:
            raise RequestError(
                f"{TOKENS_ENV} has a malformed entry"
                + (f" (unknown scope {', '.join(unknown)})" if unknown else ""),
                hint=f"write `token1:predict,track;token2:admin`; scopes: {', '.join(SCOPES)}",
            )
        tokens[token] = tokens.get(token, frozenset()) | (
            frozenset(SCOPES) if "admin" in scopes else scopes
        )
    return tokens


def tokens_from_env(token: str | None = None) -> dict[str, frozenset[str]]:
    """The tokens the server accepts: ``token`` (default ``$CYCLEML_API_TOKEN``; an empty string
    means none) as admin, plus ``$CYCLEML_API_TOKENS``."""
    admin = token if token is not None else os.environ.get(TOKEN_ENV)
    return parse_tokens(admin, os.environ.get(TOKENS_ENV))


def _json(status: int, message: str, hint: str, **headers: str):
    from fastapi.responses import JSONResponse

    error = "AuthenticationError" if status == 401 else "PermissionError"
    body = {"error": error, "message": message, "hint": hint}
    return JSONResponse(body, status_code=status, headers=headers or None)


class TokenAuth:
    """Pure ASGI middleware: 401 without a known bearer token, 403 when its scopes lack the
    route's scope; JSON bodies either way."""

    def __init__(self, app, tokens: dict[str, frozenset[str]]) -> None:
        self.app = app
        self.tokens = [(t.encode(), scopes) for t, scopes in tokens.items()]

    def scopes_of(self, credential: bytes) -> frozenset[str] | None:
        found = None
        for token, scopes in self.tokens:  # compare with every token: no early exit timing
            if hmac.compare_digest(credential, token):
                found = scopes
        return found

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        needed = required_scope(scope["method"], scope["path"])
        if needed is None:
            await self.app(scope, receive, send)
            return
        header = b""
        for key, value in scope["headers"]:
            if key == b"authorization":
                header = value
                break
        kind, _, credential = header.partition(b" ")
        scopes = self.scopes_of(credential.strip()) if kind.lower() == b"bearer" else None
        if scopes is None:
            response = _json(
                401,
                "missing or wrong API token" if header else "this route needs an API token",
                "send `Authorization: Bearer <token>` with a token the server knows "
                f"({TOKEN_ENV} or {TOKENS_ENV})",
                **{"WWW-Authenticate": "Bearer"},
            )
        elif needed not in scopes:
            response = _json(
                403,
                f"this token lacks the {needed!r} scope {scope['method']} {scope['path']} needs",
                f"use a token with the {needed!r} (or 'admin') scope",
            )
        else:
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)
