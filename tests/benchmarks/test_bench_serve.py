"""Smoke tests of the serving benchmark's harness (benchmarks/serve/bench_serve.py): its wrk
output parser on a real wrk run against a real HTTP server on 127.0.0.1, and its server
start/stop by process group. No figure is asserted: speed belongs to the benchmark itself."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = ROOT / "benchmarks" / "serve"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_serve", HERE / "bench_serve.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# A tiny HTTP server. POST: 400 for a body that is not JSON, 500 for {"records": "fail"}, 404 for
# {"entities": [id]} with an id not starting with "e", else 200.
SERVER = """
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def _answer(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        self._answer(200, b'{"ok": true}')
    def do_POST(self):
        data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(data)
        except ValueError:
            return self._answer(400, b'{"error": "RequestError"}')
        if body.get("records") == "fail":
            return self._answer(500, b'{"error": "InternalError"}')
        if any(not e.startswith("e") for e in body.get("entities", [])):
            return self._answer(404, b'{"error": "NotFoundError"}')
        self._answer(200, b'{"n": %d}' % len(data))
    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


@pytest.fixture
def tiny_server(bench, tmp_path):
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    port = bench.free_port()
    server = bench.Server(
        "tiny",
        [sys.executable, str(script), str(port)],
        f"http://127.0.0.1:{port}/",
        tmp_path / "log",
    )
    server.start(timeout=60)
    try:
        yield server, f"http://127.0.0.1:{port}/predict"
    finally:
        server.stop()


def test_latency_units_are_read_as_milliseconds(bench):
    assert bench._ms("512.00us") == pytest.approx(0.512)
    assert bench._ms("1.20ms") == pytest.approx(1.2)
    assert bench._ms("2.01s") == pytest.approx(2010)
    with pytest.raises(ValueError):
        bench._ms("fast")


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk (Debian package) is not installed")
def test_wrk_run_is_parsed_and_errors_are_counted(bench, tiny_server, tmp_path):
    server, url = tiny_server
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"records": [{"f00": 1.0}]}))
    ok = bench.run_wrk(url, 2, 1, HERE / "post.lua", {"WRK_BODY_FILE": str(good)})
    assert ok["requests"] > 0 and ok["rps"] > 0
    assert 0 < ok["p50_ms"] <= ok["p90_ms"] <= ok["p99_ms"]
    assert ok["non_2xx"] == 0

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"records": "fail"}))
    failing = bench.run_wrk(url, 1, 1, HERE / "post.lua", {"WRK_BODY_FILE": str(bad)})
    assert failing["requests"] > 0
    assert failing["non_2xx"] == failing["requests"]

    cpu, threads = server.usage()
    assert cpu > 0 and threads >= 1


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk (Debian package) is not installed")
def test_entities_script_sends_ids_from_its_file(bench, tiny_server, tmp_path):
    _server, url = tiny_server
    ids = tmp_path / "ids.txt"
    ids.write_text("e1\ne2\ne3\n")
    ok = bench.run_wrk(url, 2, 1, HERE / "entities.lua", {"WRK_IDS_FILE": str(ids)})
    assert ok["requests"] > 0 and ok["non_2xx"] == 0
    ids.write_text("x1\n")  # ids the server does not know: every answer is an error
    unknown = bench.run_wrk(url, 1, 1, HERE / "entities.lua", {"WRK_IDS_FILE": str(ids)})
    assert unknown["requests"] > 0 and unknown["non_2xx"] == unknown["requests"]


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk (Debian package) is not installed")
def test_wrk_script_error_fails_the_run(bench, tiny_server, tmp_path):
    _server, url = tiny_server
    with pytest.raises(RuntimeError, match="wrk script error"):
        bench.run_wrk(url, 1, 1, HERE / "entities.lua", {"WRK_IDS_FILE": str(tmp_path / "no")})


def test_verdicts_ignore_runs_with_errors(bench):
    def run(rps, p50, p99, errors=0):
        return {"rps": rps, "p50_ms": p50, "p99_ms": p99, "non_2xx": errors, "socket_errors": 0}

    results = {
        "servers": {
            "cycleml": {"load": {"c1": run(900, 1.0, 4.0), "c16": run(1500, 9, 20)}},
            "mlflow": {"load": {"c1": run(300, 3, 5), "c16": run(500, 30, 90)}},
            "mlflow-sklearn": {"load": {"c1": run(100, 8, 60), "c16": run(100, 150, 400)}},
            "minimal": {"load": {"c1": run(1800, 0.5, 0.8), "c16": run(2000, 7, 12, errors=3)}},
        },
        "entity_lookup": {"load": {"c1": run(500, 2.0, 9.0)}},
    }
    by_name = {v["target"]: v for v in bench.verdicts(results)}
    assert by_name["cycleml p50 at c=1 (ms)"]["met"] is True
    assert by_name["cycleml p99 at c=1 (ms)"]["met"] is True
    sklearn = by_name["cycleml / MLflow (sklearn flavour) req/s at c=16"]
    assert sklearn["value"] == pytest.approx(15) and sklearn["met"] is True
    export = by_name["cycleml / MLflow (cycleml pyfunc export) req/s at c=16"]
    assert export["value"] == pytest.approx(3) and export["met"] is False
    minimal = by_name["cycleml / minimal FastAPI req/s at c=16"]
    assert minimal["value"] is None and minimal["met"] is None  # its run had errors
    assert by_name["entity lookup p99 at c=1 (ms)"]["met"] is False


def test_server_stop_ends_its_process_group(bench, tmp_path):
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    port = bench.free_port()
    server = bench.Server(
        "tiny",
        [sys.executable, str(script), str(port)],
        f"http://127.0.0.1:{port}/",
        tmp_path / "log",
    )
    server.start(timeout=60)
    pid = server.proc.pid
    assert server.processes() == [pid]
    server.stop()
    assert server.proc is None
    assert not Path(f"/proc/{pid}").exists() or _is_zombie(pid)
    assert os.getpgid(os.getpid()) != pid  # the test process was never in the server's group


def _is_zombie(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2] == "Z"


def test_failing_server_start_is_reported(bench, tmp_path):
    server = bench.Server(
        "broken",
        [sys.executable, "-c", "raise SystemExit(3)"],
        "http://127.0.0.1:9/",
        tmp_path / "l",
    )
    with pytest.raises(RuntimeError, match="exited"):
        server.start(timeout=30)
    server.stop()
