"""`cycleml serve` under load, for real (uvicorn on 127.0.0.1 in a subprocess): a burst of
concurrent requests leaves exactly one log row per prediction after SIGTERM, and promoting a
new version while requests run fails none of them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from cycleml import Project
from cycleml.store.tables import model_versions, prediction_log

URL = "/v1/models/churn/predict"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`python -m cycleml serve` on a free loopback port; stopped by PID."""

    def __init__(self, root: Path, log_path: Path, *extra: str) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        env = {k: v for k, v in os.environ.items() if not k.startswith("CYCLEML_API_TOKEN")}
        env["OMP_WAIT_POLICY"] = "PASSIVE"
        env["OMP_NUM_THREADS"] = "1"
        self._log = log_path.open("wb")
        args = ["serve", "--host", "127.0.0.1", "--port", str(self.port), "--project", str(root)]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cycleml", *args, *extra],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )

    def wait_ready(self, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        with httpx.Client(base_url=self.base, timeout=5.0) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    pytest.fail(f"server exited early:\n{self.log_path.read_text()}")
                try:
                    if client.get("/readyz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
        pytest.fail(f"not ready within {seconds} s:\n{self.log_path.read_text()}")

    def sigterm(self, timeout: float = 60) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self.stop()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._log.close()


@pytest.fixture
def record(trained_copy: Path) -> dict:
    project = Project(trained_copy)
    try:
        _, bundle = project.load_model("churn")
    finally:
        project.close()
    return {c.name: (2.0 if c.kind == "number" else "free") for c in bundle.columns}


def _log_rows(root: Path) -> list[dict]:
    project = Project(root)
    try:
        with project.store.connect() as conn:
            rows = conn.execute(sa.select(prediction_log)).all()
    finally:
        project.close()
    return [dict(r._mapping) for r in rows]


def test_a_burst_then_sigterm_leaves_one_log_row_per_prediction(
    trained_copy: Path, record: dict, tmp_path: Path
) -> None:
    server = Server(trained_copy, tmp_path / "serve.log")
    try:
        server.wait_ready()
        sizes = [1 + i % 3 for i in range(200)]  # 1, 2 or 3 records per request

        def post(size: int) -> tuple[int, str, int]:
            with httpx.Client(base_url=server.base, timeout=60.0) as client:
                records = [{**record, "id": f"r{size}-{j}"} for j in range(size)]
                r = client.post(URL, json={"records": records})
                body = r.json()
                return r.status_code, body.get("request_id"), len(body.get("predictions", []))

        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(post, sizes))
        assert [s for s, _, _ in results] == [200] * 200
        assert [n for _, _, n in results] == sizes
        with httpx.Client(base_url=server.base) as client:
            metrics = client.get("/metrics").text
        assert 'cycleml_requests_total{method="POST",route="/v1/models/{problem}/predict"' in (
            metrics.replace(',status="200"', "")
        )
        # uvicorn shuts down gracefully, then re-raises the signal it caught
        assert server.sigterm() in (0, -signal.SIGTERM)
    finally:
        server.stop()
    log = (tmp_path / "serve.log").read_text()
    assert "Application shutdown complete" in log  # the lifespan ran: the log was flushed
    rows = _log_rows(trained_copy)
    assert len(rows) == sum(sizes)  # exactly one row per prediction: none lost, none twice
    per_request = Counter(r["request_id"] for r in rows)
    assert per_request == {rid: n for _, rid, n in results}
    assert {r["item_id"] for r in rows} >= {"r1-0", "r3-2"}
    assert all(r["entity"] is None and r["latency_ms"] > 0 for r in rows)


def _add_version(root: Path) -> int:
    """Register churn v2 (the same artifact as v1, in staging): a new version to promote."""
    project = Project(root)
    try:
        with project.store.begin() as conn:
            v1 = conn.execute(
                sa.select(model_versions).where(
                    model_versions.c.problem == "churn", model_versions.c.version == 1
                )
            ).one()
            values = {k: v for k, v in v1._mapping.items() if k != "id"}
            values.update(version=2, stage="staging")
            conn.execute(model_versions.insert().values(**values))
    finally:
        project.close()
    return 2


def test_promoting_under_load_fails_no_request_and_the_new_version_serves(
    trained_copy: Path, record: dict, tmp_path: Path
) -> None:
    _add_version(trained_copy)
    server = Server(trained_copy, tmp_path / "serve.log")
    seen: list[tuple[float, int, str | None]] = []
    stop = threading.Event()
    try:
        server.wait_ready()

        def load() -> None:
            with httpx.Client(base_url=server.base, timeout=60.0) as client:
                for _ in range(2000):  # bounded
                    if stop.is_set():
                        return
                    r = client.post(URL, json={"records": [record]})
                    version = r.json().get("model_version") if r.status_code == 200 else None
                    seen.append((time.monotonic(), r.status_code, version))

        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        project = Project(trained_copy)
        try:
            project.promote("churn", 2, force=True)
        finally:
            project.close()
        promoted = time.monotonic()
        deadline = promoted + 30
        while time.monotonic() < deadline:
            if any(v == "churn-v2" for _, _, v in list(seen)):
                break
            time.sleep(0.2)
        time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join(60)
        assert server.sigterm() in (0, -signal.SIGTERM)
    finally:
        stop.set()
        server.stop()
    statuses = Counter(s for _, s, _ in seen)
    assert statuses == {200: len(seen)}, statuses  # no failed request
    versions = [v for _, _, v in seen]
    assert "churn-v1" in versions and "churn-v2" in versions
    first_v2 = next(t for t, _, v in seen if v == "churn-v2")
    assert first_v2 - promoted < 10  # picked up without a restart (refresh every 2 s)
    assert all(v == "churn-v2" for t, _, v in seen if t > first_v2 + 1)  # and it stays
    rows = _log_rows(trained_copy)
    assert len(rows) == len(seen)
    ids = {r["model_version_id"] for r in rows}
    assert len(ids) == 2


def test_workers_serve_through_the_app_factory_and_flush_on_sigterm(
    trained_copy: Path, record: dict, tmp_path: Path
) -> None:
    server = Server(trained_copy, tmp_path / "serve.log", "--workers", "2")
    try:
        server.wait_ready(seconds=120)
        with httpx.Client(base_url=server.base, timeout=60.0) as client:
            answers = [client.post(URL, json={"records": [record]}) for _ in range(10)]
        assert [r.status_code for r in answers] == [200] * 10
        assert server.sigterm() in (0, -signal.SIGTERM)
    finally:
        server.stop()
    log = (tmp_path / "serve.log").read_text()
    assert "with 2 workers" in log
    assert log.count("Application shutdown complete") == 2  # each worker ran its shutdown
    assert len(_log_rows(trained_copy)) == 10
