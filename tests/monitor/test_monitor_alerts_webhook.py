"""Alerts sent to a webhook: a real HTTP receiver on 127.0.0.1 (a ThreadingHTTPServer in the test
process, stopped by each test). Signed JSON per alert, marked delivered once; a receiver that
sleeps past the timeout or answers 500 leaves the alert stored and pending, retried on the next
monitor run or by `cycleml monitor alerts --retry`, never sent twice once delivered; no secret
or URL credential in the logs."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from cycleml import Project
from cycleml.cli import app
from cycleml.store.tables import alerts

runner = CliRunner()
SECRET = "s3cr3t-signing-key"


class Receiver:
    """Records each POST (headers, JSON body); ``delay`` seconds before answering ``status``."""

    def __init__(self) -> None:
        self.posts: list[tuple[dict, bytes]] = []
        self.delay = 0.0
        self.status = 200
        self.stopping = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.posts.append((dict(self.headers), body))
                if receiver.delay:  # answers late (the sender has given up by then)
                    receiver.stopping.wait(receiver.delay)
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def bodies(self) -> list[dict]:
        return [json.loads(body) for _, body in self.posts]

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    try:
        yield server
    finally:
        server.stop()


def _configure(root: Path, url: str, extra: str = "") -> None:
    spec = root / "cycleml.yaml"
    spec.write_text(
        spec.read_text() + "monitoring:\n  domain_classifier: false\n  rules:\n"
        "    age_moves: {metric: features.age.statistic, above: -1, severity: critical}\n"
        "    findings: {metric: quality.count, above: -1}\n"
        f"  webhook: {{url: '{url}'{extra}}}\n",
        encoding="utf-8",
    )


def _rows(project: Project) -> dict[int, dict]:
    with project.store.connect() as conn:
        return {r.id: dict(r._mapping) for r in conn.execute(sa.select(alerts))}


def test_each_alert_is_posted_signed_once_and_marked_delivered(
    trained_copy: Path,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("CYCLEML_TEST_HOOK_SECRET", SECRET)
    _configure(trained_copy, receiver.url, ", secret_env: CYCLEML_TEST_HOOK_SECRET")
    caplog.set_level(logging.DEBUG)
    project = Project(trained_copy)
    try:
        result = project.monitor("churn")
        assert len(result["alerts"]) == 2
        assert [a["webhook_status"] for a in result["alerts"]] == ["delivered"] * 2
        bodies = receiver.bodies()
        assert sorted(b["alert_id"] for b in bodies) == sorted(a["id"] for a in result["alerts"])
        rows = _rows(project)
        for (headers, raw), body in zip(receiver.posts, bodies, strict=True):
            row = rows[body["alert_id"]]
            assert (body["rule"], body["problem"], body["severity"]) == (
                row["rule"],
                "churn",
                row["severity"],
            )
            assert body["value"] == pytest.approx(row["value"])
            assert body["monitor_run_id"] == result["id"]
            assert body["project"] == project.spec.name
            want = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
            assert headers["X-CycleML-Signature"] == want
            assert headers["Idempotency-Key"] == body["idempotency_key"]
            assert row["webhook_status"] == "delivered" and row["webhook_attempts"] == 1
            assert row["delivered_at"] is not None and row["webhook_error"] is None
        assert SECRET not in caplog.text
        assert "delivered to http://127.0.0.1" in caplog.text

        # a retry sends nothing that was delivered
        retried = project.retry_alerts()
        assert retried["delivered"] == [] and len(receiver.posts) == 2
    finally:
        project.close()


def test_a_webhook_that_times_out_keeps_the_alert_pending_until_a_retry_delivers_it(
    trained_copy: Path, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    host = receiver.url.removeprefix("http://")
    url = f"http://hookuser:pa55word@{host}?token=t0ken"
    _configure(trained_copy, url, ", timeout_s: 0.3")
    receiver.delay = 3.0
    caplog.set_level(logging.DEBUG)
    project = Project(trained_copy)
    try:
        first = project.monitor("churn")
        rows = _rows(project)
        assert len(rows) == 2  # stored although the webhook timed out
        tried = [r for r in rows.values() if r["webhook_attempts"] == 1]
        assert len(tried) == 1  # the first failure stops the round: the rest is not tried
        assert tried[0]["webhook_error"] == "timed out after 0.3 s"
        assert {r["webhook_status"] for r in rows.values()} == {"pending"}
        assert [a["webhook_status"] for a in first["alerts"]] == ["pending", "pending"]
        for secret in ("pa55word", "t0ken", "hookuser"):
            assert secret not in caplog.text
        assert f"not delivered to http://{host}" in caplog.text

        # the next monitor run sends the two pending alerts and its own two
        receiver.delay = 0.0
        receiver.posts.clear()
        second = project.monitor("churn")
        rows = _rows(project)
        assert {r["webhook_status"] for r in rows.values()} == {"delivered"}
        assert sorted(b["alert_id"] for b in receiver.bodies()) == sorted(rows)
        assert [a["webhook_status"] for a in second["alerts"]] == ["delivered"] * 2
        assert rows[tried[0]["id"]]["webhook_attempts"] == 2
    finally:
        project.close()
    # delivered means never again
    again = runner.invoke(app, ["monitor", "alerts", "--retry", "-p", str(trained_copy)])
    assert again.exit_code == 0, again.output
    assert "0 delivered" in again.output and len(receiver.posts) == 4


def test_failed_deliveries_stop_at_max_attempts_and_the_cli_retry_sends_them(
    trained_copy: Path, receiver: Receiver
) -> None:
    _configure(trained_copy, receiver.url, ", max_attempts: 2")
    receiver.status = 500
    project = Project(trained_copy)
    try:
        project.monitor("churn")
        project.retry_alerts()  # second attempt of the first alert: failed for good
        rows = sorted(_rows(project).values(), key=lambda r: r["id"])
        assert [r["webhook_status"] for r in rows] == ["failed", "pending"]
        assert [r["webhook_attempts"] for r in rows] == [2, 0]
        assert rows[0]["webhook_error"] == "HTTP 500 from the receiver"
    finally:
        project.close()
    receiver.status = 204
    receiver.posts.clear()
    sent = runner.invoke(app, ["monitor", "alerts", "--retry", "-p", str(trained_copy), "--json"])
    assert sent.exit_code == 0, sent.output
    body = json.loads(sent.output)
    assert sorted(body["retry"]["delivered"]) == [r["id"] for r in rows]
    assert {a["webhook_status"] for a in body["alerts"]} == {"delivered"}
    assert sorted(b["alert_id"] for b in receiver.bodies()) == [r["id"] for r in rows]
