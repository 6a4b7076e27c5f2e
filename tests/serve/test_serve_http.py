"""`cycleml serve` for real: uvicorn in a subprocess on 127.0.0.1; the token for other hosts."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest
from typer.testing import CliRunner

from cycleml import Project
from cycleml.batch import latest_run


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _batch_row(root: Path) -> tuple[dict, str, float]:
    project = Project(root)
    try:
        run = latest_run(project.store, "churn")
        batch = pd.read_parquet(project.artifacts.verified_path(run["features_sha256"]))
        _, bundle = project.load_model("churn")
    finally:
        project.close()
    row = batch.iloc[len(batch) // 3]
    record = {}
    for name in bundle.feature_names:
        value = row[name]
        value = None if pd.isna(value) else value
        record[name] = value.item() if hasattr(value, "item") else value
    return record, str(row["user_id"]), float(row["__score"])


def test_serve_over_real_http_on_loopback(trained_copy: Path, tmp_path: Path) -> None:
    record, user, batch_score = _batch_row(trained_copy)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k != "CYCLEML_API_TOKEN"}
    env["OMP_WAIT_POLICY"] = "PASSIVE"
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cycleml",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--project",
                str(trained_copy),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            with httpx.Client(base_url=base, timeout=5.0) as client:
                deadline = time.monotonic() + 20
                healthy = False
                while time.monotonic() < deadline:
                    if proc.poll() is not None:
                        pytest.fail(f"server exited early:\n{log_path.read_text()}")
                    try:
                        healthy = client.get("/healthz").status_code == 200
                    except httpx.TransportError:
                        healthy = False
                    if healthy:
                        break
                    time.sleep(0.1)
                assert healthy, f"no /healthz within 20 s:\n{log_path.read_text()}"

                ready = client.get("/readyz")
                assert ready.status_code == 200 and ready.json()["checks"]["model:churn"]
                response = client.post(
                    "/v1/models/churn/predict", json={"records": [{**record, "id": user}]}
                )
                assert response.status_code == 200, response.text
                body = response.json()
                assert body["model_version"] == "churn-v1"
                assert body["predictions"][0]["id"] == user
                assert abs(body["predictions"][0]["score"] - batch_score) < 1e-9
                bad = client.post(
                    "/v1/models/churn/predict",
                    content=b"{not json",
                    headers={"content-type": "application/json"},
                )
                assert 400 <= bad.status_code < 500 and bad.json()["error"]
                assert client.get("/healthz").status_code == 200  # still up after a bad request
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
    project = Project(trained_copy)
    try:
        assert project.counts()["prediction_log"] == 1
    finally:
        project.close()


@pytest.fixture
def no_uvicorn(monkeypatch):
    """Record what `cycleml serve` would run instead of binding anything."""
    import uvicorn

    calls: list[dict] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append({"app": app, **kw}))
    return calls


def test_serve_on_a_public_host_needs_a_token(trained_copy: Path, monkeypatch, no_uvicorn) -> None:
    from cycleml.cli import app

    monkeypatch.delenv("CYCLEML_API_TOKEN", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    result = CliRunner().invoke(
        app, ["serve", "--host", "0.0.0.0", "--port", "1", "--project", str(trained_copy)]
    )
    assert result.exit_code != 0
    assert "CYCLEML_API_TOKEN" in result.output
    assert "error" in result.output
    assert no_uvicorn == []

    monkeypatch.setenv("CYCLEML_API_TOKEN", "t0ken")
    result = CliRunner().invoke(
        app, ["serve", "--host", "0.0.0.0", "--port", "1", "--project", str(trained_copy)]
    )
    assert result.exit_code == 0, result.output
    assert [(c["host"], c["port"]) for c in no_uvicorn] == [("0.0.0.0", 1)]
    assert no_uvicorn[0]["app"].state.auth is True  # the app it serves enforces the token


def test_serve_accepts_scoped_tokens_for_a_public_host_and_refuses_malformed_ones(
    trained_copy: Path, monkeypatch, no_uvicorn
) -> None:
    from cycleml.cli import app

    monkeypatch.delenv("CYCLEML_API_TOKEN", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    args = ["serve", "--host", "0.0.0.0", "--port", "1", "--project", str(trained_copy)]
    monkeypatch.setenv("CYCLEML_API_TOKENS", "reader:predict")
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert no_uvicorn[0]["app"].state.auth is True

    monkeypatch.setenv("CYCLEML_API_TOKENS", "reader:read")
    result = CliRunner().invoke(app, args)
    assert result.exit_code != 0
    assert "CYCLEML_API_TOKENS" in result.output and "read" in result.output
    assert len(no_uvicorn) == 1  # nothing started the second time


def test_serve_with_workers_runs_the_app_factory(trained_copy: Path, monkeypatch, no_uvicorn):
    from cycleml.cli import app
    from cycleml.serve import PROJECT_ENV

    monkeypatch.delenv("CYCLEML_API_TOKEN", raising=False)
    monkeypatch.delenv("CYCLEML_API_TOKENS", raising=False)
    monkeypatch.setenv(PROJECT_ENV, "unset")  # monkeypatch restores it after the test
    result = CliRunner().invoke(
        app, ["serve", "--workers", "3", "--port", "1", "--project", str(trained_copy)]
    )
    assert result.exit_code == 0, result.output
    (call,) = no_uvicorn
    assert call["app"] == "cycleml.serve:app_from_env" and call["factory"] is True
    assert call["workers"] == 3
    assert os.environ[PROJECT_ENV] == str(trained_copy.resolve())
