"""Online serving speed (issue 6): the same LightGBM model (40 numeric features) served five
ways in one run, each loaded with wrk on 127.0.0.1 at concurrency 1 and 16.

1. Builds a synthetic project under benchmarks/data/serve/: one table of entities with 40 numbers
   and a 0/1 column, a ``column`` label, ``cycleml train`` restricted to LightGBM with a small
   budget, ``cycleml models promote``, ``cycleml models export --format mlflow``.
2. Times the in-process calls on one record (``Project.predict``, the bundle's ``outputs``, the
   pipeline's ``predict_proba``, the LightGBM booster itself): p50/p99 per call.
3. Serves the model, one worker each, every server a subprocess in its own process group stopped
   by its PID at the end (also on Ctrl-C): ``cycleml serve`` (prediction logging on, as
   shipped); ``mlflow models serve --env-manager local -w 1`` twice: of the same fitted
   scikit-learn pipeline saved the standard MLflow way (``mlflow.sklearn.save_model``, the
   issue's anchor, "mlflow-sklearn") and of cycleml's own pyfunc export (``cycleml models
   export --format mlflow``, which scores through cycleml's compiled scorer, "mlflow"); and the
   minimal FastAPI endpoint of ``minimal_app.py``. wrk: a warm-up, then a fixed-duration run with
   ``--latency`` per concurrency; req/s, p50, p99 and non-2xx answers parsed from its output;
   the servers' CPU seconds and OS threads read from /proc.
4. With ``cycleml features materialize`` available, predictions by entity from the online store
   (random entity per request, ``entities.lua``).
5. Prints a table and the ratios against the targets; writes JSON to
   benchmarks/data/serve/results.json.

Checks, so that a fast wrong answer cannot pass: every server's score for the request record
must equal the in-process score (1e-9), and so must an entity lookup of that record's entity; a
wrk run with any non-2xx answer or socket error is reported but counts as not measured; after
``cycleml serve`` stops, the prediction log must hold one row per answered request (plus at most
the requests wrk left in flight at the end of each run).

Every server runs with OMP_NUM_THREADS=1 and the model was trained with ``threads: 1``.
Run it in the benchmark venv (``bash benchmarks/run.sh serve``), which has mlflow; wrk is the
Debian package ``wrk``. Usage: python benchmarks/serve/bench_serve.py [--duration 10]
[--warmup 2] [--ways cycleml,mlflow,minimal,inprocess] [--rows 20000]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

SERVER_ENV = {
    "OMP_NUM_THREADS": "1",
    "OMP_WAIT_POLICY": "PASSIVE",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "PYTHONUNBUFFERED": "1",
}
if __name__ == "__main__":  # this process too (before numpy loads): in-process timings, 1 thread
    os.environ.update(SERVER_ENV)

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DATA = ROOT / "benchmarks" / "data" / "serve"
BIN = Path(sys.executable).parent
PROBLEM = "target"
N_FEATURES = 40
FEATURES = [f"f{i:02d}" for i in range(N_FEATURES)]
CONCURRENCY = (1, 16)
WRK_THREADS = 1
TARGETS = {
    "p50_ms_c1": 2.0,
    "p99_ms_c1": 5.0,
    "vs_mlflow_c16": 10.0,
    "vs_minimal_c16": 2 / 3,
    "entity_p99_ms": 8.0,
}


def say(message: str) -> None:
    print(message, flush=True)


# -- the project ----------------------------------------------------------------------------------


def write_project(root: Path, rows: int, seed: int = 0) -> None:
    """A fresh project at ``root``: the synthetic table and cycleml.yaml."""
    import pandas as pd

    if root.exists():
        shutil.rmtree(root)
    (root / "data").mkdir(parents=True)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, N_FEATURES))
    weights = np.zeros(N_FEATURES)
    weights[:12] = rng.normal(scale=0.8, size=12)
    logit = x @ weights + 0.5 * x[:, 0] * x[:, 1] - 0.3
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    frame = pd.DataFrame(x, columns=FEATURES)
    frame.insert(0, "id", [f"e{i:06d}" for i in range(rows)])
    frame["label"] = y
    frame.to_parquet(root / "data" / "entities.parquet", index=False)
    columns = ", ".join(FEATURES)
    (root / "cycleml.yaml").write_text(
        f"""\
spec_version: 1
name: servebench
sources:
  entities: {{path: data/entities.parquet, entity: id}}
problems:
  {PROBLEM}:
    entity: id
    task: binary
    label: {{kind: column, source: entities, column: label}}
    metric: {{name: roc_auc}}
    features: [numbers]
features:
  numbers: {{source: entities, columns: [{columns}]}}
training:
  split: stratified
  threads: 1
  algorithms: [lightgbm]
  tune: {{top: 0}}
""",
        encoding="utf-8",
    )


def sample_records(root: Path, n: int = 50, seed: int = 0) -> tuple[list[str], list[dict]]:
    """A few entities of the project's table and their records (feature values), to send."""
    import pandas as pd

    frame = pd.read_parquet(root / "data" / "entities.parquet", columns=["id", *FEATURES])
    sample = frame.sample(n, random_state=seed)
    records = [{k: float(v) for k, v in r.items()} for r in sample[FEATURES].to_dict("records")]
    return list(sample["id"]), records


def cli(*args: str, timeout: float = 900) -> dict | None:
    """Run ``cycleml ARGS --json`` in this venv; its JSON answer."""
    cmd = [str(BIN / "cycleml"), *args, "--json"]
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **SERVER_ENV}
    )
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout) if done.stdout.strip() else None


def reuse(root: Path) -> dict:
    """The model of a project an earlier run built (``--reuse``, for working on the harness)."""
    from cycleml import Project

    project = Project(root)
    try:
        mv = project.model(PROBLEM)
    finally:
        project.close()
    say(f"== reusing {root} ({mv.name}, {mv.algorithm})")
    return {
        "name": mv.name,
        "algorithm": mv.algorithm,
        "test_roc_auc": (mv.metrics or {}).get("roc_auc"),
        "train_seconds": None,
        "mlflow_export": str(DATA / "mlflow-model"),
        "reused": True,
    }


def build(root: Path, rows: int, budget: float) -> dict:
    say(f"== building the project in {root} ({rows:,} entities x {N_FEATURES} numbers)")
    write_project(root, rows)
    p = str(root)
    t0 = time.perf_counter()
    trained = cli("train", PROBLEM, "--budget", str(budget), "--project", p)
    train_s = time.perf_counter() - t0
    listed = cli("models", "list", PROBLEM, "--project", p)
    versions = listed if isinstance(listed, list) else listed.get("models", listed)
    version = max(int(v["version"]) for v in versions)
    cli("models", "promote", PROBLEM, str(version), "--project", p)
    export = DATA / "mlflow-model"
    if export.exists():
        shutil.rmtree(export)
    cli(
        "models",
        "export",
        PROBLEM,
        str(version),
        "--format",
        "mlflow",
        "--to",
        str(export),
        "--project",
        p,
    )
    model = {
        "name": trained["model"],
        "algorithm": trained["algorithm"],
        "test_roc_auc": (trained.get("metrics") or {}).get("roc_auc"),
        "train_seconds": round(train_s, 1),
        "mlflow_export": str(export),
    }
    say(f"   trained {model['name']} ({model['algorithm']}) in {train_s:.0f} s; export {export}")
    if model["algorithm"] != "lightgbm":
        raise SystemExit(f"expected a LightGBM model, got {model['algorithm']}")
    return model


def export_sklearn_flavour(root: Path, record: dict) -> str:
    """The same fitted scikit-learn pipeline saved the standard MLflow way
    (``mlflow.sklearn.save_model``, ``pyfunc_predict_fn="predict_proba"``, with the signature
    inferred from one record), for ``mlflow models serve``. Rewritten on every run (the model
    may have been retrained)."""
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature

    from cycleml import Project

    project = Project(root)
    try:
        _mv, bundle = project.load_model(PROBLEM)
    finally:
        project.close()
    names = bundle.feature_names
    x = pd.DataFrame([[record[n] for n in names]], columns=names, dtype="float64")
    out = DATA / "mlflow-sklearn-model"
    if out.exists():
        shutil.rmtree(out)
    # MLflow 3 saves with skops by default, which refuses types it was not told to trust: the
    # pipeline is our own, so trust what it holds (LightGBM's classes, numpy dtypes...)
    import skops.io

    trusted = skops.io.get_untrusted_types(data=skops.io.dumps(bundle.pipeline))
    mlflow.sklearn.save_model(
        bundle.pipeline,
        str(out),
        signature=infer_signature(x, bundle.pipeline.predict_proba(x)),
        pyfunc_predict_fn="predict_proba",
        skops_trusted_types=trusted,
    )
    say(f"== MLflow sklearn flavour of the same pipeline: {out}")
    return str(out)


def materialize_available() -> bool:
    done = subprocess.run(
        [str(BIN / "cycleml"), "features", "--help"], capture_output=True, text=True, timeout=120
    )
    return done.returncode == 0 and "materialize" in done.stdout


# -- in-process -----------------------------------------------------------------------------------


def _percentiles(seconds: list[float], cpu_seconds: float) -> dict:
    ms = np.asarray(seconds) * 1000
    return {
        "calls": len(ms),
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
        "cpu_ms_per_call": cpu_seconds * 1000 / len(ms),  # all threads of this process
    }


def _time_calls(fn, max_calls: int, max_seconds: float, warm: int = 20) -> dict:
    for _ in range(warm):
        fn()
    times = []
    stop = time.perf_counter() + max_seconds
    cpu0 = time.process_time()
    while len(times) < max_calls and time.perf_counter() < stop:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return _percentiles(times, time.process_time() - cpu0)


def in_process(root: Path, record: dict, max_calls: int, max_seconds: float) -> dict:
    """p50/p99 per call of the in-process ways to score one record."""
    import pandas as pd

    from cycleml import Project

    project = Project(root)
    _mv, bundle = project.load_model(PROBLEM)
    frame = pd.DataFrame([record])
    pipeline = bundle.pipeline
    x = pd.DataFrame([[record[n] for n in bundle.feature_names]], columns=bundle.feature_names)
    booster = pipeline[-1].booster_
    transformed = np.asarray(pipeline[:-1].transform(x), dtype="float64")
    calls = {
        "Project.predict (validate, score, log)": lambda: project.predict(
            PROBLEM, records=[record]
        ),
        "ModelBundle.outputs (1-row frame)": lambda: bundle.outputs(frame),
        "pipeline.predict_proba (1-row frame)": lambda: pipeline.predict_proba(x),
        "LightGBM booster.predict (1 row)": lambda: booster.predict(transformed),
    }
    out = {}
    for name, fn in calls.items():
        out[name] = _time_calls(fn, max_calls, max_seconds)
        r = out[name]
        say(
            f"   {name:<40} p50 {r['p50_ms']:8.3f} ms  p99 {r['p99_ms']:8.3f} ms  "
            f"cpu/call {r['cpu_ms_per_call']:8.3f} ms  ({r['calls']} calls)"
        )
    project.close()
    return out


# -- servers --------------------------------------------------------------------------------------


def _server_env() -> dict:
    """This environment with one thread per library, and the venv's bin first on PATH (``mlflow
    models serve`` starts ``uvicorn`` from PATH)."""
    path = os.pathsep.join([str(BIN), os.environ.get("PATH", "")])
    return {**os.environ, **SERVER_ENV, "PATH": path}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server subprocess in its own process group (its PID is the group id)."""

    def __init__(self, name: str, argv: list[str], health: str, log: Path) -> None:
        self.name, self.argv, self.health, self.log = name, argv, health, log
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 180) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log, "wb")  # noqa: SIM115 - closed in stop()
        self._out = out
        self.proc = subprocess.Popen(
            self.argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=_server_env(),
            start_new_session=True,
            cwd=ROOT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}); see {self.log}")
            with contextlib.suppress(OSError), urllib.request.urlopen(self.health, timeout=2) as a:
                if a.status == 200:
                    return
            time.sleep(0.3)
        raise RuntimeError(f"{self.name} did not answer {self.health} in {timeout:.0f} s")

    def processes(self) -> list[int]:
        """PIDs of the processes of this server's group (the server and its children)."""
        if self.proc is None:
            return []
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, IndexError):
                    stat = (entry / "stat").read_text()
                    fields = stat[stat.rindex(")") + 2 :].split()
                    if int(fields[2]) == self.proc.pid:  # pgrp
                        pids.append(int(entry.name))
        return pids

    def usage(self) -> tuple[float, int]:
        """(CPU seconds so far, OS threads now) summed over the group's processes."""
        tick = os.sysconf("SC_CLK_TCK")
        cpu, threads = 0.0, 0
        for pid in self.processes():
            with contextlib.suppress(OSError, IndexError):
                stat = Path(f"/proc/{pid}/stat").read_text()
                fields = stat[stat.rindex(")") + 2 :].split()
                cpu += (int(fields[11]) + int(fields[12])) / tick
                threads += int(fields[17])
        return cpu, threads

    def settle(self, timeout: float = 60) -> None:
        """Wait until the server is idle (no CPU used for 0.5 s): requests a finished wrk run
        left in flight must not weigh on the next run."""
        deadline = time.monotonic() + timeout
        last, _ = self.usage()
        while time.monotonic() < deadline:
            time.sleep(0.5)
            now, _ = self.usage()
            if now - last < 0.02:
                return
            last = now

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        # children that outlived the leader (same group) get the same treatment
        for pid in self.processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self._out.close()
        self.proc = None


def post(url: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


# -- wrk ------------------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not m:
        raise ValueError(f"cannot read the latency {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(output: str) -> dict:
    """req/s, p50, p99 (ms), requests, non-2xx answers and socket errors from wrk's output."""
    out: dict = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", output)
    out["rps"] = float(m.group(1)) if m else None
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", output, re.M)
        out[f"p{pct}_ms"] = _ms(m.group(1)) if m else None
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", output)
    out["requests"] = int(m.group(1)) if m else None
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    out["non_2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    out["socket_errors"] = sum(int(g) for g in m.groups()) if m else 0
    return out


def run_wrk(url: str, concurrency: int, seconds: float, script: Path, env: dict) -> dict:
    cmd = [
        "wrk",
        f"-t{min(WRK_THREADS, concurrency)}",
        f"-c{concurrency}",
        f"-d{seconds:g}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=seconds + 60, env={**os.environ, **env}
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    script_error = re.search(rf"{re.escape(script.name)}: .*", done.stdout + done.stderr)
    if script_error:  # wrk then sends its default request: the run would measure errors
        raise RuntimeError(f"wrk script error: {script_error.group(0)}")
    result = parse_wrk(done.stdout)
    result["raw"] = done.stdout
    return result


def load(server: Server, url: str, script: Path, env: dict, args) -> dict:
    """wrk at each concurrency: a warm-up, then the measured run (server CPU and threads too)."""
    out = {}
    for c in CONCURRENCY:
        warm = run_wrk(url, c, args.warmup, script, env)
        server.settle()
        cpu0, _ = server.usage()
        load0 = os.getloadavg()[0]
        r = run_wrk(url, c, args.duration, script, env)
        cpu1, threads = server.usage()
        r["server_cpu_s"] = round(cpu1 - cpu0, 2)
        r["server_cpu_ms_per_request"] = (
            (cpu1 - cpu0) * 1000 / r["requests"] if r["requests"] else None
        )
        r["server_os_threads"] = threads
        r["warmup_requests"] = warm["requests"] or 0
        r["loadavg_1m"] = [round(load0, 2), round(os.getloadavg()[0], 2)]
        server.settle()
        out[f"c{c}"] = r
        bad = r["non_2xx"] + r["socket_errors"]
        say(
            f"   c={c:<3} {r['rps']:9.1f} req/s  p50 {r['p50_ms']:8.2f} ms  p99 "
            f"{r['p99_ms']:8.2f} ms  cpu/req {r['server_cpu_ms_per_request'] or 0:.2f} ms  "
            f"threads {threads}  errors {bad}  load {r['loadavg_1m']}"
        )
    return out


# -- the run --------------------------------------------------------------------------------------


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("cycleml", "mlflow", "fastapi", "uvicorn", "starlette", "pydantic", "lightgbm",
                 "scikit-learn", "pandas", "numpy"):  # fmt: skip
        with contextlib.suppress(PackageNotFoundError):
            out[name] = version(name)
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
    out["wrk"] = (wrk.stdout or wrk.stderr).splitlines()[0] if (wrk.stdout or wrk.stderr) else "?"
    return out


def _machine() -> dict:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    serve = sorted((ROOT / "src" / "cycleml" / "serve").glob("*.py"))
    import hashlib

    digest = hashlib.sha256(b"".join(p.read_bytes() for p in serve)).hexdigest()[:12]
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "git_head": head.stdout.strip(),
        "src_cycleml_serve_sha256": digest,
    }


def _score_of(way: str, answer: dict) -> float:
    if way == "cycleml":
        return float(answer["predictions"][0]["score"])
    if way == "mlflow-sklearn":  # predict_proba of one row: [[p0, p1]]
        return float(answer["predictions"][0][1])
    if way == "mlflow":
        value = answer["predictions"][0]
        return float(value if not isinstance(value, dict | list) else next(iter(value.values())))
    return float(answer["score"])


def serve_all(root: Path, records: list[dict], args, results: dict) -> None:
    record = records[0]
    bodies = {
        "cycleml": {"records": [record]},
        "minimal": {"records": [record]},
        "mlflow": {"dataframe_records": [record]},
        "mlflow-sklearn": {"dataframe_records": [record]},
    }
    expected = results["in_process_score"]
    for way in ("cycleml", "mlflow-sklearn", "mlflow", "minimal"):
        if way.split("-")[0] not in args.ways:
            continue
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        if way == "cycleml":
            argv = _cycleml_serve_argv(root, port)
            url, health = f"{base}/v1/models/{PROBLEM}/predict", f"{base}/healthz"
        elif way.startswith("mlflow"):
            mlflow = BIN / "mlflow"
            if not mlflow.exists():
                raise SystemExit(f"{mlflow} missing: run this in the benchmark venv (run.sh serve)")
            if way == "mlflow":  # cycleml's own pyfunc export (calls the compiled scorer)
                model_dir = results["model"]["mlflow_export"]
            else:  # the same fitted pipeline, MLflow's sklearn flavour
                try:
                    model_dir = export_sklearn_flavour(root, record)
                except Exception as exc:  # noqa: BLE001 - reported; the other ways still run
                    results["servers"][way] = {"error": f"export failed: {exc}"}
                    say(f"   FAILED: {way} export: {exc}")
                    continue
                results["model"]["mlflow_sklearn_export"] = model_dir
            argv = [str(mlflow), "models", "serve", "-m", model_dir, "--env-manager", "local"]
            argv += ["-h", "127.0.0.1", "-p", str(port), "-w", "1"]
            url, health = f"{base}/invocations", f"{base}/ping"
        else:
            argv = [sys.executable, str(HERE / "minimal_app.py"), "--project", str(root)]
            argv += ["--problem", PROBLEM, "--port", str(port)]
            url, health = f"{base}/predict", f"{base}/healthz"
        server = Server(way, argv, health, DATA / "logs" / f"{way}.log")
        say(f"== {way}: {' '.join(argv[1:3])} ... on port {port} (log {server.log})")
        body_file = DATA / f"body-{way}.json"
        body_file.write_text(json.dumps(bodies[way]), encoding="utf-8")
        logged_before = _logged(root) if way == "cycleml" else None
        entry: dict = {"argv": argv}
        started = time.monotonic()
        results["servers"][way] = entry
        try:
            server.start()
            entry["startup_s"] = round(time.monotonic() - started, 1)
            status, answer = post(url, body_file.read_bytes())
            if status != 200:
                raise RuntimeError(f"{way} answered {status}: {answer}")
            score = _score_of(way, answer)
            entry["score"] = score
            if abs(score - expected) > 1e-9:
                raise RuntimeError(f"{way} scored {score}, the in-process call {expected}")
            body_env = {"WRK_BODY_FILE": str(body_file)}
            entry["load"] = load(server, url, HERE / "post.lua", body_env, args)
            if way == "cycleml" and results.get("entity_lookup", {}).get("ids_file"):
                say("   entity lookup (online store)")
                check = {"entities": [results["entity_lookup"]["check_entity"]]}
                status, answer = post(url, json.dumps(check).encode())
                if status != 200:
                    raise RuntimeError(f"entity lookup answered {status}: {answer}")
                score = float(answer["predictions"][0]["score"])
                if abs(score - expected) > 1e-9:  # the same entity's record, scored in-process
                    raise RuntimeError(f"entity lookup scored {score}, its record {expected}")
                results["entity_lookup"]["answer_features"] = answer.get("features")
                ids = {"WRK_IDS_FILE": results["entity_lookup"]["ids_file"]}
                results["entity_lookup"]["load"] = load(
                    server, url, HERE / "entities.lua", ids, args
                )
        except RuntimeError as exc:  # a server that fails is reported, the others still run
            entry["error"] = str(exc)
            say(f"   FAILED: {exc}")
            continue
        finally:
            server.stop()
        if way == "cycleml":
            # every answered request is one row; requests in flight when a wrk run ends are
            # answered (and logged) but not counted by wrk: at most c per run more rows
            runs = [*entry["load"].values(), *(results["entity_lookup"].get("load") or {}).values()]
            checks = 1 + ("answer_features" in results["entity_lookup"])  # the check requests
            answered = checks + sum((r["requests"] or 0) + r["warmup_requests"] for r in runs)
            slack = 2 * sum(CONCURRENCY) * (len(runs) // len(CONCURRENCY))
            rows = _logged(root) - logged_before
            entry["prediction_log"] = {
                "rows_added": rows,
                "requests_answered": answered,
                "in_flight_allowance": slack,
                "consistent": answered <= rows <= answered + slack,
            }
            say(
                f"   prediction log: {rows:,} rows added for {answered:,} requests answered "
                f"(+ up to {slack} in flight at the ends of the wrk runs): "
                + ("consistent" if entry["prediction_log"]["consistent"] else "ROWS LOST OR EXTRA")
            )


def _logged(root: Path) -> int:
    from cycleml import Project

    project = Project(root)
    try:
        return int(project.counts()["prediction_log"])
    finally:
        project.close()


def _ratio(a, b):
    return None if a is None or b in (None, 0) else a / b


def verdicts(results: dict) -> list[dict]:
    s = results["servers"]

    def get(way, c, key):
        """A figure of a run; None when the run did not happen or had any error answer."""
        run = ((s.get(way) or {}).get("load") or {}).get(f"c{c}", {})
        return run.get(key) if run and _clean(run) else None

    ent = ((results.get("entity_lookup") or {}).get("load") or {}).get("c1", {})
    ent = ent if ent and _clean(ent) else {}
    rows = [
        ("cycleml p50 at c=1 (ms)", get("cycleml", 1, "p50_ms"), "<", TARGETS["p50_ms_c1"]),
        ("cycleml p99 at c=1 (ms)", get("cycleml", 1, "p99_ms"), "<", TARGETS["p99_ms_c1"]),
        (
            "cycleml / MLflow (sklearn flavour) req/s at c=16",
            _ratio(get("cycleml", 16, "rps"), get("mlflow-sklearn", 16, "rps")),
            ">=",
            TARGETS["vs_mlflow_c16"],
        ),
        (
            "cycleml / MLflow (cycleml pyfunc export) req/s at c=16",
            _ratio(get("cycleml", 16, "rps"), get("mlflow", 16, "rps")),
            ">=",
            TARGETS["vs_mlflow_c16"],
        ),
        (
            "cycleml / minimal FastAPI req/s at c=16",
            _ratio(get("cycleml", 16, "rps"), get("minimal", 16, "rps")),
            ">=",
            TARGETS["vs_minimal_c16"],
        ),
        ("entity lookup p99 at c=1 (ms)", ent.get("p99_ms"), "<", TARGETS["entity_p99_ms"]),
    ]
    out = []
    for name, value, op, target in rows:
        met = None if value is None else (value < target if op == "<" else value >= target)
        out.append({"target": name, "value": value, "op": op, "goal": target, "met": met})
    return out


def _clean(run: dict) -> bool:
    return run.get("non_2xx", 0) + run.get("socket_errors", 0) == 0


def cpu_ratios(results: dict) -> dict:
    """Throughput ratios at c=16 from the servers' CPU per request instead of wall-clock req/s:
    on a machine loaded by other work, what one core would give each side."""
    s = results["servers"]

    def cpu(way):
        run = ((s.get(way) or {}).get("load") or {}).get("c16", {})
        return run.get("server_cpu_ms_per_request") if run and _clean(run) else None

    mine = cpu("cycleml")
    return {
        "cycleml / MLflow sklearn flavour (by CPU per request)": _ratio(
            cpu("mlflow-sklearn"), mine
        ),
        "cycleml / MLflow cycleml pyfunc (by CPU per request)": _ratio(cpu("mlflow"), mine),
        "cycleml / minimal FastAPI (by CPU per request)": _ratio(cpu("minimal"), mine),
    }


def print_report(results: dict) -> None:
    say("")
    say("| way | c | req/s | p50 ms | p99 ms | server CPU ms/req | OS threads | errors |")
    say("|---|---:|---:|---:|---:|---:|---:|---:|")
    for way, entry in results["servers"].items():
        for c, r in (entry.get("load") or {}).items():
            say(
                f"| {way} | {c[1:]} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                f"{r['server_cpu_ms_per_request'] or 0:.2f} | {r['server_os_threads']} | "
                f"{r['non_2xx'] + r['socket_errors']} |"
            )
    for c, r in ((results.get("entity_lookup") or {}).get("load") or {}).items():
        say(
            f"| cycleml entities | {c[1:]} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | "
            f"{r['p99_ms']:.2f} | {r['server_cpu_ms_per_request'] or 0:.2f} | "
            f"{r['server_os_threads']} | {r['non_2xx'] + r['socket_errors']} |"
        )
    for name, r in (results.get("in_process") or {}).items():
        say(
            f"| in-process: {name} | 1 | - | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} | "
            f"{r['cpu_ms_per_call']:.3f} | - | 0 |"
        )
    say("")
    for v in results["verdicts"]:
        value = "not measured" if v["value"] is None else f"{v['value']:.2f}"
        # (a run with any non-2xx answer or socket error counts as not measured)
        met = {None: "NOT MEASURED", True: "met", False: "MISSED"}[v["met"]]
        say(f"  {v['target']:<56} {value:>12}  (target {v['op']} {v['goal']:.3g})  {met}")
    for name, value in results["cpu_ratios"].items():
        shown = "not measured" if value is None else f"{value:.2f}"
        say(f"  {name:<56} {shown:>6}  (information: one core per side)")
    el = results.get("entity_lookup") or {}
    if el.get("note"):
        say(f"  entity lookup: {el['note']}")


def _interrupt(_signum, _frame) -> None:
    raise KeyboardInterrupt("SIGTERM")


def _cycleml_serve_argv(root: Path, port: int) -> list[str]:
    argv = [str(BIN / "cycleml"), "serve", "--project", str(root), "--port", str(port)]
    done = subprocess.run(argv[:2] + ["--help"], capture_output=True, text=True, timeout=120)
    if "--workers" in done.stdout:  # one worker, said explicitly where the option exists
        argv += ["--workers", "1"]
    return argv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds per measured run")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of warm-up before each")
    parser.add_argument("--rows", type=int, default=20_000, help="entities in the synthetic table")
    parser.add_argument("--budget", type=float, default=10, help="cycleml train --budget")
    parser.add_argument("--ways", default="cycleml,mlflow,minimal,inprocess")
    parser.add_argument("--calls", type=int, default=2000, help="in-process calls per way")
    parser.add_argument(
        "--reuse", action="store_true", help="reuse the project and model of an earlier run"
    )
    args = parser.parse_args()
    args.ways = set(args.ways.split(","))
    if shutil.which("wrk") is None and args.ways - {"inprocess"}:
        raise SystemExit("wrk is not installed: apt-get install -y wrk (run.sh serve does it)")
    # Ctrl-C and SIGTERM both unwind through the finally blocks that stop the servers
    signal.signal(signal.SIGTERM, _interrupt)

    DATA.mkdir(parents=True, exist_ok=True)
    root = DATA / "project"
    started = datetime.now(UTC)
    results: dict = {
        "date_utc": started.strftime("%Y-%m-%d %H:%M"),
        "machine": _machine(),
        "versions": _versions(),
        "loadavg_at_start": [round(v, 2) for v in os.getloadavg()],
        "threads": {
            "servers": "one uvicorn worker each; OMP_NUM_THREADS=1; LightGBM n_jobs=1 "
            "(training.threads: 1)",
            "wrk": f"-t{WRK_THREADS}",
            "in_process": "this process, OMP_NUM_THREADS=1",
        },
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "servers": {},
    }
    say(
        f"serving benchmark: nproc {os.cpu_count()}, load {results['loadavg_at_start']}, "
        f"wrk -t{WRK_THREADS}, {args.warmup:g} s warm-up + {args.duration:g} s per run"
    )
    if args.reuse and (root / "cycleml.yaml").exists() and (DATA / "mlflow-model").exists():
        results["model"] = reuse(root)
    else:
        results["model"] = build(root, args.rows, args.budget)
    entities, records = sample_records(root)

    from cycleml import Project

    project = Project(root)
    _mv, bundle = project.load_model(PROBLEM)
    import pandas as pd

    results["in_process_score"] = float(bundle.outputs(pd.DataFrame([records[0]]))[0][0])
    project.close()

    if materialize_available():
        say("== cycleml features materialize")
        cli("features", "materialize", PROBLEM, "--project", str(root))
        ids_file = DATA / "entity-ids.txt"
        ids = pd.read_parquet(root / "data" / "entities.parquet", columns=["id"])["id"]
        ids_file.write_text("\n".join(ids.sample(2000, random_state=0)) + "\n", encoding="utf-8")
        results["entity_lookup"] = {"ids_file": str(ids_file), "check_entity": entities[0]}
    else:
        note = "not measured: `cycleml features materialize` does not exist yet"
        results["entity_lookup"] = {"note": note}
        say(f"== entity lookup {note}")

    if "inprocess" in args.ways:
        say("== in-process, one record per call")
        results["in_process"] = in_process(root, records[0], args.calls, 20.0)
    try:
        serve_all(root, records, args, results)
    except KeyboardInterrupt:
        say("interrupted: servers stopped")
        raise
    results["verdicts"] = verdicts(results)
    results["cpu_ratios"] = cpu_ratios(results)
    results["loadavg_at_end"] = [round(v, 2) for v in os.getloadavg()]
    print_report(results)
    if not os.environ.get("BENCH_KEEP_RAW"):  # wrk's own output, kept on request
        for entry in [*results["servers"].values(), results.get("entity_lookup") or {}]:
            for r in (entry.get("load") or {}).values():
                r.pop("raw", None)
    out = DATA / "results.json"
    text = json.dumps(results, indent=2, default=str)
    out.write_text(text, encoding="utf-8")
    (DATA / f"results-{started.strftime('%Y%m%dT%H%M')}.json").write_text(text, encoding="utf-8")
    say(f"\nresults: {out} (and a dated copy beside it)")


if __name__ == "__main__":
    main()
