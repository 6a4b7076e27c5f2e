"""Request limits: items per request and body bytes, with the ASGI middleware enforcing bytes.

Defaults come from the environment: ``CYCLEML_MAX_ITEMS`` (1000) and ``CYCLEML_MAX_BODY_BYTES``
(8 MiB)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import PayloadTooLargeError, RequestError

MAX_ITEMS_ENV = "CYCLEML_MAX_ITEMS"
MAX_BODY_ENV = "CYCLEML_MAX_BODY_BYTES"
DEFAULT_MAX_ITEMS = 1000
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise RequestError(
            f"{name}={raw!r} is not a positive integer", hint=f"unset it or set {name}=1000"
        )
    return value


@dataclass(frozen=True)
class Limits:
    """``max_items``: records, entities or ranked items in one request (413 beyond);
    ``max_body_bytes``: request body size (413 before the rest of the body is read)."""

    max_items: int = DEFAULT_MAX_ITEMS
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES

    @classmethod
    def from_env(cls) -> Limits:
        return cls(
            max_items=_env_int(MAX_ITEMS_ENV, DEFAULT_MAX_ITEMS),
            max_body_bytes=_env_int(MAX_BODY_ENV, DEFAULT_MAX_BODY_BYTES),
        )

    def too_many(self, count: int, what: str = "items") -> PayloadTooLargeError:
        return PayloadTooLargeError(
            f"{count} {what} in one request; the limit is {self.max_items}",
            hint="split the request, or use `cycleml predict --batch` for bulk scoring "
            f"(the server's limit is set by {MAX_ITEMS_ENV})",
        )

    def too_big(self, size: int | None) -> PayloadTooLargeError:
        what = f"{size} bytes" if size is not None else "more"
        return PayloadTooLargeError(
            f"the request body has {what}; the limit is {self.max_body_bytes} bytes",
            hint=f"send fewer items per request (the server's limit is set by {MAX_BODY_ENV})",
        )


class BodyLimit:
    """Pure ASGI middleware: 413 when ``Content-Length`` is over the limit (nothing is read), or
    as soon as the streamed body passes it (the rest is never read)."""

    def __init__(self, app, limits: Limits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.max_body_bytes
        for key, value in scope["headers"]:
            if key == b"content-length":
                try:
                    size = int(value)
                except ValueError:
                    size = None
                if size is not None and size > limit:
                    await _reject(scope, receive, send, self.limits.too_big(size))
                    return
                break
        seen = 0

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise self.limits.too_big(None)
            return message

        await self.app(scope, limited_receive, send)


async def _reject(scope, receive, send, exc: PayloadTooLargeError) -> None:
    from fastapi.responses import JSONResponse

    response = JSONResponse(exc.to_dict(), status_code=413, headers={"Connection": "close"})
    await response(scope, receive, send)
