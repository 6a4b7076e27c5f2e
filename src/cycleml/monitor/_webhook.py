"""Webhook delivery of alerts: one JSON POST per alert, signed when ``secret_env`` is set.

An alert is stored before it is sent. Delivery claims the row (its attempt count moves up by one
only if nobody else moved it first), posts, then marks it ``delivered``, or leaves it ``pending``
with the error until ``max_attempts`` is reached (then ``failed``). Each POST carries an
``Idempotency-Key`` so a receiver can drop a repeat. Neither the secret nor the URL's credentials
or query string ever reach a log line or the store."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
from typing import Any
from urllib.parse import urlsplit

import httpx
import sqlalchemy as sa

from .._version import __version__
from ..store import Store, utcnow
from ..store.tables import alerts

log = logging.getLogger("cycleml.monitor.alerts")

SIGNATURE_HEADER = "X-CycleML-Signature"
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


def safe_url(url: str) -> str:
    """``scheme://host[:port]/path``: the URL without user, password, query or fragment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


def sign(body: bytes, secret: str) -> str:
    """The ``X-CycleML-Signature`` value: ``sha256=`` + HMAC-SHA256 of the body, hex."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post_alert(webhook: Any, payload: dict) -> str | None:
    """POST ``payload`` to ``webhook.url``; None when the receiver answered 2xx, else what went
    wrong (never the secret or the URL's credentials)."""
    body = json.dumps(payload, sort_keys=True, default=str).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"cycleml/{__version__}",
        "Idempotency-Key": str(payload.get("idempotency_key", "")),
    }
    if webhook.secret_env:
        secret = os.environ.get(webhook.secret_env)
        if not secret:
            return (
                f"the environment variable {webhook.secret_env} (monitoring.webhook.secret_env) "
                "is not set, so the alert was not sent unsigned"
            )
        headers[SIGNATURE_HEADER] = sign(body, secret)
    try:
        response = httpx.post(webhook.url, content=body, headers=headers, timeout=webhook.timeout_s)
    except httpx.TimeoutException:
        return f"timed out after {webhook.timeout_s:g} s"
    except httpx.HTTPError as exc:
        text = str(exc).replace(webhook.url, safe_url(webhook.url))
        return f"{type(exc).__name__}: {text}"[:500]
    if 200 <= response.status_code < 300:
        return None
    return f"HTTP {response.status_code} from the receiver"


def payload_of(row: Any, project_name: str) -> dict:
    """The JSON body of an alert row."""
    m = row._mapping
    return {
        "source": "cycleml",
        "project": project_name,
        "alert_id": m["id"],
        "idempotency_key": f"cycleml:{project_name}:alert:{m['id']}",
        "problem": m["problem"],
        "rule": m["rule"],
        "metric": m["metric"],
        "value": m["value"],
        "threshold": m["threshold"],
        "severity": m["severity"],
        "message": m["message"],
        "monitor_run_id": m["monitor_run_id"],
        "created_at": m["created_at"].isoformat(),
        "details": m["details"],
    }


def deliver(
    store: Store,
    webhook: Any,
    project_name: str,
    *,
    problem: str | None = None,
    include_failed: bool = False,
) -> dict[str, list[int]]:
    """Send every ``pending`` alert (and ``failed`` ones with ``include_failed``), oldest first,
    optionally of one problem. Stops at the first failure: the receiver is likely down, and the
    rest are not tried (no attempt counted). Returns the ids by outcome."""
    statuses = [PENDING, FAILED] if include_failed else [PENDING]
    query = sa.select(alerts).where(alerts.c.webhook_status.in_(statuses))
    if problem is not None:
        query = query.where(alerts.c.problem == problem)
    with store.connect() as conn:
        rows = conn.execute(query.order_by(alerts.c.id)).all()
    out: dict[str, list[int]] = {DELIVERED: [], PENDING: [], FAILED: [], "not_tried": []}
    where = safe_url(webhook.url)
    for i, row in enumerate(rows):
        m = row._mapping
        with store.begin() as conn:  # claim it: another sender that got here first wins
            claimed = conn.execute(
                alerts.update()
                .where(
                    alerts.c.id == m["id"],
                    alerts.c.webhook_status == m["webhook_status"],
                    alerts.c.webhook_attempts == m["webhook_attempts"],
                )
                .values(webhook_attempts=m["webhook_attempts"] + 1)
            ).rowcount
        if claimed != 1:
            continue  # another sender has it
        error = post_alert(webhook, payload_of(row, project_name))
        attempts = m["webhook_attempts"] + 1
        if error is None:
            status = DELIVERED
            values: dict[str, Any] = {"delivered_at": utcnow(), "webhook_error": None}
            log.info("alert %s (%s) delivered to %s", m["id"], m["rule"], where)
        else:
            status = FAILED if attempts >= webhook.max_attempts else PENDING
            values = {"webhook_error": error}
            log.warning(
                "alert %s (%s) not delivered to %s (attempt %d of %d): %s",
                m["id"],
                m["rule"],
                where,
                attempts,
                webhook.max_attempts,
                error,
            )
        with store.begin() as conn:
            conn.execute(
                alerts.update()
                .where(alerts.c.id == m["id"])
                .values(webhook_status=status, **values)
            )
        out[status].append(m["id"])
        if error is not None:
            out["not_tried"] = [r._mapping["id"] for r in rows[i + 1 :]]
            break
    return out
