"""What `?experiment=NAME` adds to a predict request, in process (the app through httpx's ASGI
transport, no network): the same one-record request with and without the experiment, in
alternating blocks, median and mean latency of each; then the assignment and exposure hand-off
alone (hash, variant, seen-set, queue).

Usage: python benchmarks/experiments/bench_assignment.py [--requests N] [--users N]
Builds a small demo project (churn, logistic regression) in a temporary folder."""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import orjson
import yaml

from cycleml import Project
from cycleml._init import init_project

URL = "/v1/models/churn/predict"
WITH_EXPERIMENT = URL + "?experiment=bench"  # both URLs are strings: the client's cost is equal


def make_project(root: Path, users: int) -> Project:
    init_project(root, demo=True, n_users=users, seed=7)
    path = root / "cycleml.yaml"
    spec = yaml.safe_load(path.read_text())
    spec["training"]["algorithms"] = ["logistic"]
    spec["sources"]["exp_events"] = {
        "collect": True,
        "entity": "user_id",
        "time": "ts",
        "columns": {"user_id": "string", "ts": "timestamp", "event_type": "string"},
    }
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    project = Project(root)
    project.train("churn", budget=2)
    project.close()
    # both variants serve production: what is timed is the assignment, not a second model
    spec["experiments"] = {
        "bench": {
            "problem": "churn",
            "variants": {
                "control": {"weight": 0.5, "model": "production"},
                "treatment": {"weight": 0.5, "model": "production"},
            },
            "control": "control",
            "events": "exp_events",
            "metrics": {"c": {"type": "conversion", "event": "purchase", "days": 7}},
        }
    }
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return Project(root)


async def timed(client: httpx.AsyncClient, bodies: list[dict], url: str) -> list[float]:
    out = []
    for body in bodies:
        started = time.perf_counter()
        r = await client.post(url, json=body)
        out.append((time.perf_counter() - started) * 1000)
        assert r.status_code == 200, r.text
    return out


async def run(app, record: dict, requests: int, new_units: bool) -> tuple[list, list]:
    transport = httpx.ASGITransport(app=app)
    plain, with_exp = [], []
    block = 200
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        warm = [{"records": [record | {"id": "w"}]}] * 300
        await timed(client, warm, URL)
        await timed(client, warm, WITH_EXPERIMENT)
        n = 0
        while n < requests:
            ids = [
                f"{'n' if new_units else 'u'}{n + i if new_units else i % 100}"
                for i in range(block)
            ]
            bodies = [{"records": [record | {"id": i}]} for i in ids]
            plain += await timed(client, bodies, URL)
            with_exp += await timed(client, bodies, WITH_EXPERIMENT)
            n += block
    return plain, with_exp


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--users", type=int, default=400)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = make_project(Path(tmp) / "demo", args.users)
        _, bundle = project.load_model("churn")
        record = {c.name: (1.0 if c.kind == "number" else "free") for c in bundle.columns}
        app = project.app(token="")
        state = app.state.serving
        state.start()
        try:
            print(f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
            for label, new in (("returning units", False), ("a new unit every request", True)):
                plain, with_exp = asyncio.run(run(app, record, args.requests, new))
                p50, e50 = statistics.median(plain), statistics.median(with_exp)
                pm, em = statistics.fmean(plain), statistics.fmean(with_exp)
                print(
                    f"{label}: predict p50 {p50:.3f} ms, with experiment= p50 {e50:.3f} ms "
                    f"(+{e50 - p50:.3f} ms, ratio {e50 / p50:.3f}); means {pm:.3f} / {em:.3f} ms "
                    f"(+{em - pm:.3f} ms); {len(plain)} requests each"
                )
            from cycleml.serve._experiments import _assign, _predict, service_of

            # the handler's work alone: the same parsed one-record body, scored without and with
            # the experiment (assignment, grouping, answer, exposure hand-off)
            loaded = state.model("churn")
            schema = loaded.extra["schema"]

            def handler(use: bool, i: int) -> float:
                raw = orjson.dumps({"records": [record | {"id": f"u{i % 100}"}]})
                body = schema.parse_predict(raw)
                started = time.perf_counter()
                if use:
                    _predict(state, "churn", "bench", raw, loaded, body, started)
                else:
                    state.score_records("churn", loaded, body.records, started)
                return (time.perf_counter() - started) * 1e6

            for _ in range(3):
                plain = [handler(False, i) for i in range(args.requests)]
                with_exp = [handler(True, i) for i in range(args.requests)]
                p50, e50 = statistics.median(plain), statistics.median(with_exp)
                print(
                    f"handler alone: p50 {p50:.1f} us, with experiment= {e50:.1f} us "
                    f"(+{e50 - p50:.1f} us, ratio {e50 / p50:.3f})"
                )

            service = service_of(state)
            exp = service.experiment("bench", "churn")
            models = {"control": None, "treatment": None}
            n = 100_000
            started = time.perf_counter()
            for i in range(n):
                _, variants = _assign(exp, "bench", [f"x{i}"])
                service.expose("bench", {f"x{i}": variants[0]}, models, None)
            alone = (time.perf_counter() - started) / n * 1e6
            print(f"assignment + exposure hand-off alone (new unit): {alone:.1f} us per unit")
            service.exposures.flush(60)
        finally:
            state.stop()
            service = state.__dict__.get("experiments")
            if service is not None:
                service.close()
            project.close()


if __name__ == "__main__":
    main()
