"""`cycleml.Client` against a real `cycleml serve` (uvicorn in a subprocess on 127.0.0.1, with an
API token): predict, track, feedback, and error answers raised as cycleml errors."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx
import pandas as pd
import pytest

import cycleml
from cycleml import Client, Project
from cycleml.errors import (
    CycleMLError,
    InvalidRecordsError,
    NotFoundError,
    PayloadTooLargeError,
    RequestError,
)

TOKEN = "client-test-token"
EVENTS_LINE = "  events: {path: data/events.parquet, entity: user_id, time: ts}"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server(trained_copy: Path, tmp_path: Path):
    """(base url, project path): `cycleml serve` on 127.0.0.1 with an admin token and a small
    item limit; the demo's events source collects."""
    spec = trained_copy / "cycleml.yaml"
    spec.write_text(spec.read_text().replace(EVENTS_LINE, EVENTS_LINE[:-1] + ", collect: true}"))
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k != "CYCLEML_API_TOKENS"}
    env.update(CYCLEML_API_TOKEN=TOKEN, CYCLEML_MAX_ITEMS="5", OMP_WAIT_POLICY="PASSIVE")
    log_path = tmp_path / "serve.log"
    command = [sys.executable, "-m", "cycleml", "serve", "--port", str(port)]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            command + ["--project", str(trained_copy)], stdout=log, stderr=log, env=env
        )
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    pytest.fail(f"server exited early:\n{log_path.read_text()}")
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            else:
                pytest.fail(f"no /healthz within 30 s:\n{log_path.read_text()}")
            yield base, trained_copy
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def test_client_end_to_end(server) -> None:
    base, root = server
    assert cycleml.Client is Client
    with Client(base, token=TOKEN, timeout=30) as client:
        assert client.health()["status"] == "ok"
        info = client.model("churn")
        assert info["model_version"] == "churn-v1"

        by_entity = client.predict("churn", entities=["u000008"], as_of=datetime(2026, 6, 1))
        item = by_entity["predictions"][0]
        assert item["entity"] == "u000008" and 0 <= item["score"] <= 1

        project = Project(root)
        try:
            in_process = project.predict("churn", entities=["u000008"], as_of=datetime(2026, 6, 1))
            _, bundle = project.load_model("churn")
            with project.features("churn") as fs:
                row = fs.compute(["u000008"], datetime(2026, 6, 1)).iloc[0]
        finally:
            project.close()
        assert item["score"] == in_process["predictions"][0]["score"]
        record = {n: (None if pd.isna(row[n]) else row[n]) for n in bundle.feature_names}
        record = {k: (v.item() if hasattr(v, "item") else v) for k, v in record.items()}
        by_record = client.predict("churn", records=[{**record, "id": "r-1"}])
        assert by_record["predictions"][0]["id"] == "r-1"
        assert by_record["predictions"][0]["score"] == pytest.approx(item["score"], abs=1e-12)

        tracked = client.track(
            "events",
            [
                {"event_id": "c-1", "user_id": "u000008", "ts": "2026-06-02T09:00:00Z"},
                {"event_id": "c-1", "user_id": "u000008", "ts": "2026-06-02T09:00:00Z"},
            ],
        )
        assert tracked == {"source": "events", "received": 2, "new": 1, "duplicates": 1}
        one = client.track("events", {"user_id": "u000030", "ts": "2026-06-02", "value": 2.5})
        assert one["new"] == 1

        stored = client.feedback(
            "churn", 1, request_id=by_entity["request_id"], id="u000008", feedback_id="fb-1"
        )
        assert stored == {"problem": "churn", "received": 1, "new": 1, "duplicates": 0}
        several = client.feedback("churn", items=[{"entity": "u000008", "label": 0}])
        assert several["new"] == 1

        with pytest.raises(NotFoundError) as missing:
            client.predict("nope", entities=["u1"])
        assert missing.value.status_code == 404 and missing.value.hint
        with pytest.raises(InvalidRecordsError, match=r"events\[0\].colour is not a column"):
            client.track("events", {"user_id": "u1", "ts": "2026-06-02", "colour": "red"})
        with pytest.raises(InvalidRecordsError, match="not in the churn prediction log"):
            client.feedback("churn", 1, request_id="f" * 32)
        with pytest.raises(PayloadTooLargeError, match="limit is 5"):
            client.predict("churn", entities=[f"u{i}" for i in range(6)])
        with pytest.raises(RequestError, match="exactly one"):
            client.predict("churn")

    project = Project(root)
    try:
        counts = project.counts()
    finally:
        project.close()
    assert counts["prediction_log"] == 3  # the client's two predictions + the in-process one

    with Client(base, timeout=10) as anonymous:  # no token
        with pytest.raises(RequestError) as denied:
            anonymous.track("events", {"user_id": "u1", "ts": "2026-06-02"})
        assert denied.value.status_code == 401
        assert "AuthenticationError" in denied.value.message
        assert anonymous.health()["status"] == "ok"  # probes stay open


def test_client_reports_an_unreachable_server() -> None:
    port = _free_port()  # nothing listens there
    client = Client(f"http://127.0.0.1:{port}", timeout=2)
    try:
        with pytest.raises(CycleMLError, match="cannot reach the cycleml server"):
            client.health()
    finally:
        client.close()
