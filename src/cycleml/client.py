"""A small Python client of a cycleml server (``cycleml serve``), on httpx.

>>> from cycleml import Client
>>> with Client("http://127.0.0.1:8000", token=None) as client:
...     answer = client.predict("churn", entities=["u000008"])

An error answer raises the :mod:`cycleml.errors` class the server named in its JSON body
(``{"error", "message", "hint"}``), or the class matching the HTTP status; the exception also
carries ``status_code``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx

from . import errors
from .errors import CycleMLError

_BY_NAME: dict[str, type[CycleMLError]] = {
    name: cls
    for name in errors.__all__
    if isinstance(cls := getattr(errors, name), type) and issubclass(cls, CycleMLError)
}
_BY_STATUS: dict[int, type[CycleMLError]] = {
    400: errors.RequestError,
    401: errors.RequestError,  # AuthenticationError: a missing or wrong token
    403: errors.RequestError,  # PermissionError: the token lacks the route's scope
    404: errors.NotFoundError,
    413: errors.PayloadTooLargeError,
    422: errors.InvalidRecordsError,
    500: errors.ModelError,
    503: errors.StoreError,
}


class Client:
    """Calls a cycleml server: :meth:`predict`, :meth:`rank`, :meth:`track`, :meth:`feedback`.

    ``token`` is sent as ``Authorization: Bearer <token>``; ``timeout`` (seconds) bounds each
    request. Use it in a ``with`` block, or call :meth:`close`."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:8000",
        token: str | None = None,
        timeout: float = 10.0,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout, transport=transport
        )

    # -- calls ---------------------------------------------------------------------------------

    def predict(
        self,
        problem: str,
        *,
        records: list[dict] | None = None,
        entities: list[str] | None = None,
        as_of: datetime | str | None = None,
    ) -> dict:
        """Score ``records`` (feature values) or ``entities`` with the production model."""
        if (records is None) == (entities is None):
            raise errors.RequestError("pass exactly one of records= or entities=")
        body: dict[str, Any] = (
            {"records": records} if records is not None else {"entities": entities}
        )
        if as_of is not None:
            body["as_of"] = as_of.isoformat() if isinstance(as_of, datetime) else as_of
        return self._post(f"/v1/models/{problem}/predict", body)

    def rank(
        self,
        problem: str,
        entity: str,
        items: list[str] | list[dict],
        *,
        as_of: datetime | str | None = None,
    ) -> dict:
        """Order candidate ``items`` for ``entity`` by the ranking model's score."""
        body: dict[str, Any] = {"entity": entity, "items": items}
        if as_of is not None:
            body["as_of"] = as_of.isoformat() if isinstance(as_of, datetime) else as_of
        return self._post(f"/v1/models/{problem}/rank", body)

    def track(self, source: str, events: list[dict] | dict) -> dict:
        """Collect events into a ``collect: true`` source; answers how many were new and how
        many repeated an ``event_id`` already stored."""
        items = [events] if isinstance(events, dict) else list(events)
        return self._post("/v1/events", {"source": source, "events": items})

    def feedback(
        self,
        problem: str,
        label: float | None = None,
        *,
        request_id: str | None = None,
        id: str | None = None,  # noqa: A002 - the API's field name
        entity: str | None = None,
        feedback_id: str | None = None,
        items: list[dict] | None = None,
    ) -> dict:
        """The ground truth ``label`` of a logged prediction, named by ``request_id`` (and the
        item's ``id``) or by ``entity``; or several at once as ``items``."""
        if items is not None:
            return self._post("/v1/feedback", {"problem": problem, "feedback": items})
        item = {
            "request_id": request_id,
            "id": id,
            "entity": entity,
            "feedback_id": feedback_id,
            "label": label,
        }
        body = {"problem": problem, **{k: v for k, v in item.items() if v is not None}}
        return self._post("/v1/feedback", body)

    def model(self, problem: str) -> dict:
        """The production model of ``problem``: version, task, threshold, features."""
        return self._request("GET", f"/v1/models/{problem}")

    def health(self) -> dict:
        return self._request("GET", "/healthz")

    # -- plumbing ------------------------------------------------------------------------------

    def _post(self, path: str, body: dict) -> dict:
        return self._request("POST", path, body)

    def _request(self, method: str, path: str, body: dict | None = None) -> dict:
        try:
            response = self._http.request(method, path, json=body)
        except httpx.TimeoutException:
            raise CycleMLError(
                f"{method} {self.url}{path} timed out",
                hint="the server is busy or the request too large; raise timeout= or retry",
            ) from None
        except httpx.TransportError as exc:
            raise CycleMLError(
                f"cannot reach the cycleml server at {self.url}: {type(exc).__name__}: {exc}",
                hint="check the URL and that `cycleml serve` is running",
            ) from None
        if response.status_code >= 400:
            raise _error(response)
        return response.json()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _error(response: httpx.Response) -> CycleMLError:
    """The cycleml error an error answer stands for."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {"message": response.text[:500] or response.reason_phrase}
    name = str(body.get("error") or "")
    status = response.status_code
    cls = (
        _BY_NAME.get(name)
        or _BY_STATUS.get(status)
        or (errors.RequestError if status < 500 else CycleMLError)
    )
    message = str(body.get("message") or f"HTTP {status}")
    if name and name not in _BY_NAME:
        message = f"{name}: {message}"
    exc = cls(message, hint=body.get("hint"))
    if isinstance(exc, errors.SpecError) and body.get("issues"):
        exc.issues = [
            errors.SpecIssue(i.get("path", ""), i.get("message", ""), i.get("hint"), i.get("line"))
            for i in body["issues"]
            if isinstance(i, dict)
        ]
    exc.status_code = status  # type: ignore[attr-defined]
    exc.body = body  # type: ignore[attr-defined]
    return exc


__all__ = ["Client"]
