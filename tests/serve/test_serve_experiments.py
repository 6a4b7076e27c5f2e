"""Served experiments over HTTP: the assignment route, `?experiment=` on predict (each unit gets
its variant's model, or no model for `baseline`), exposures logged once per unit (in process and
under concurrent requests to a real uvicorn server with two workers), and the bad inputs."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
import yaml

from cycleml import Project
from cycleml.experiments._served import variant_of
from cycleml.store.tables import exposures, prediction_log

URL = "/v1/models/churn/predict"
AS_OF = datetime(2026, 6, 1)
EVENTS = {
    "collect": True,
    "entity": "user_id",
    "time": "ts",
    "columns": {"user_id": "string", "ts": "timestamp", "event_type": "string", "value": "number"},
}


def _experiment(control: object, treatment: object, **extra) -> dict:
    return {
        "problem": "churn",
        "variants": {
            "control": {"weight": 0.5, "model": control},
            "treatment": {"weight": 0.5, "model": treatment},
        },
        "control": "control",
        "events": "exp_events",
        "metrics": {"converted": {"type": "conversion", "event": "purchase", "days": 7}},
        **extra,
    }


EXPERIMENTS = {
    "scores": _experiment("production", 2),
    "nomodel": _experiment("baseline", "production", surface="emails"),
    "future": _experiment("production", 2, surface="later", start="2999-01-01"),
    "missing": _experiment("production", 99, surface="missing"),
    "offline": {
        "source": "users",
        "unit": "user_id",
        "variant": "plan",
        "control": "free",
        "metrics": {"age": {"type": "mean", "column": "age"}},
    },
}


@pytest.fixture(scope="module")
def exp_template(trained_demo: Path, tmp_path_factory) -> Path:
    """The trained demo (churn v1 in production) plus churn v2 (logistic regression, staging),
    a collect-only events source and the experiments above. Read-only: copy it."""
    root = tmp_path_factory.mktemp("served") / "demo"
    shutil.copytree(trained_demo, root)
    path = root / "cycleml.yaml"
    spec = yaml.safe_load(path.read_text())
    spec["training"]["algorithms"] = ["logistic"]
    spec["sources"]["exp_events"] = EVENTS
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    project = Project(root)
    try:
        project.train("churn", budget=3)
    finally:
        project.close()
    spec["experiments"] = EXPERIMENTS
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return root


@pytest.fixture
def served(exp_template: Path, tmp_path: Path):
    root = tmp_path / "served"
    shutil.copytree(exp_template, root)
    project = Project(root)
    app = project.app(token="")
    yield project, app
    app.state.serving.stop()
    project.close()


def _send(app, *requests: tuple) -> list[httpx.Response]:
    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://cycleml.test") as c:
            return [await c.request(method, url, **kw) for method, url, kw in requests]

    return asyncio.run(run())


def _exposures(project: Project, app=None) -> list:
    if app is not None:
        service = app.state.serving.__dict__.get("experiments")
        if service is not None:
            assert service.exposures.flush()
    with project.store.connect() as conn:
        return conn.execute(sa.select(exposures).order_by(exposures.c.unit)).all()


def _record(project: Project, i: int) -> dict:
    _, bundle = project.load_model("churn")
    return {c.name: (float(i % 7) if c.kind == "number" else "free") for c in bundle.columns}


def test_the_assignment_route_answers_the_variant_and_logs_the_first_exposure(served) -> None:
    project, app = served
    units = [f"u{i}" for i in range(30)]
    asks = [("GET", "/v1/experiments/scores/assignment", {"params": {"unit": u}}) for u in units]
    first = _send(app, *asks)
    again = _send(app, *asks)
    exp = project.spec.experiments["scores"]
    for unit, r, r2 in zip(units, first, again, strict=True):
        assert r.status_code == 200, r.text
        body = r.json()
        variant = variant_of(exp, "scores", unit)
        assert body == {
            "experiment": "scores",
            "unit": unit,
            "variant": variant,
            "model_version": "churn-v1" if variant == "control" else "churn-v2",
            "active": True,
        }
        assert r2.json() == body  # sticky
    rows = _exposures(project, app)
    assert [r.unit for r in rows] == sorted(units)  # once per unit, though asked twice
    versions = {v.version: v.id for v in project.registry.list("churn")}
    for row in rows:
        assert row.variant == variant_of(exp, "scores", row.unit)
        assert row.model_version_id == versions[1 if row.variant == "control" else 2]

    waiting, unknown, no_unit, missing, offline = _send(
        app,
        ("GET", "/v1/experiments/future/assignment", {"params": {"unit": "u1"}}),
        ("GET", "/v1/experiments/nope/assignment", {"params": {"unit": "u1"}}),
        ("GET", "/v1/experiments/scores/assignment", {}),
        ("GET", "/v1/experiments/missing/assignment", {"params": {"unit": "u1"}}),
        ("GET", "/v1/experiments/offline/assignment", {"params": {"unit": "u1"}}),
    )
    assert waiting.status_code == 200
    assert waiting.json() | {"model_version": None} == {
        "experiment": "future",
        "unit": "u1",
        "variant": "control",
        "model_version": None,
        "active": False,
    }
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "NotFoundError" and "'nope'" in unknown.json()["message"]
    assert "scores" in unknown.json()["hint"]
    assert no_unit.status_code == 422 and no_unit.json()["error"] == "RequestError"
    # the treatment of `missing` names version 99: 404 naming it and listing 1, 2 (when a unit
    # lands in the treatment; the control serves production)
    treated = next(
        f"m{i}"
        for i in range(100)
        if variant_of(project.spec.experiments["missing"], "missing", f"m{i}") == "treatment"
    )
    (missing,) = _send(
        app, ("GET", "/v1/experiments/missing/assignment", {"params": {"unit": treated}})
    )
    assert missing.status_code == 404
    assert "names model version 99 of problem 'churn'" in missing.json()["message"]
    assert "existing versions of 'churn': 1, 2" in missing.json()["hint"]
    assert offline.status_code == 400 and "not served" in offline.json()["message"]
    assert {r.experiment for r in _exposures(project, app)} == {"scores"}  # none for `future`


def test_predict_with_an_experiment_scores_each_unit_with_its_variants_model(served) -> None:
    project, app = served
    v1 = project.registry.load(project.registry.get("churn", 1))
    v2 = project.registry.load(project.registry.get("churn", 2))
    records = [_record(project, i) | {"id": f"u{i}"} for i in range(12)]
    inputs = [{k: v for k, v in r.items() if k != "id"} for r in records]
    s1 = v1.outputs_records(inputs)[0].tolist()
    s2 = v2.outputs_records(inputs)[0].tolist()
    assert any(abs(a - b) > 1e-6 for a, b in zip(s1, s2, strict=True))  # two different models
    (r,) = _send(
        app, ("POST", URL, {"params": {"experiment": "scores"}, "json": {"records": records}})
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["experiment"] == "scores" and body["active"] is True
    exp = project.spec.experiments["scores"]
    variants = [variant_of(exp, "scores", f"u{i}") for i in range(12)]
    assert {"control", "treatment"} == set(variants)
    for i, item in enumerate(body["predictions"]):
        assert item["id"] == f"u{i}" and item["variant"] == variants[i]
        expected = s1[i] if variants[i] == "control" else s2[i]
        assert abs(item["score"] - expected) < 1e-12
        assert item["model_version"] == ("churn-v1" if variants[i] == "control" else "churn-v2")
    assert app.state.serving.logger.flush()
    with project.store.connect() as conn:
        logged = conn.execute(
            sa.select(prediction_log).where(prediction_log.c.request_id == body["request_id"])
        ).all()
    ids = {v.version: v.id for v in project.registry.list("churn")}
    assert sorted(r.item_id for r in logged) == sorted(f"u{i}" for i in range(12))
    for row in logged:
        variant = variants[int(row.item_id[1:])]
        assert row.model_version_id == ids[1 if variant == "control" else 2]
    rows = _exposures(project, app)
    assert [(r.unit, r.variant) for r in rows] == sorted(
        (f"u{i}", v) for i, v in enumerate(variants)
    )
    assert {r.request_id for r in rows} == {body["request_id"]}

    # baseline: the control answers no score (the caller keeps its behaviour without a model)
    (r,) = _send(
        app, ("POST", URL, {"params": {"experiment": "nomodel"}, "json": {"records": records}})
    )
    assert r.status_code == 200, r.text
    exp = project.spec.experiments["nomodel"]
    for i, item in enumerate(r.json()["predictions"]):
        if variant_of(exp, "nomodel", f"u{i}") == "control":
            assert item["score"] is None and item["model_version"] is None
            assert item["variant"] == "control"
        else:
            assert abs(item["score"] - s1[i]) < 1e-12 and item["model_version"] == "churn-v1"

    # outside its dates every unit gets the control and no exposure is logged
    (r,) = _send(
        app, ("POST", URL, {"params": {"experiment": "future"}, "json": {"records": records}})
    )
    assert r.status_code == 200 and r.json()["active"] is False
    assert [p["score"] for p in r.json()["predictions"]] == pytest.approx(s1, abs=1e-12)
    assert {p["variant"] for p in r.json()["predictions"]} == {"control"}
    assert "future" not in {row.experiment for row in _exposures(project, app)}


def test_predict_entities_with_an_experiment(served) -> None:
    project, app = served
    users = [f"u{i:06d}" for i in range(1, 9)]
    body = {"entities": users, "as_of": AS_OF.isoformat()}
    (plain, split) = _send(
        app,
        ("POST", URL, {"json": body}),
        ("POST", URL, {"params": {"experiment": "scores"}, "json": body}),
    )
    assert plain.status_code == split.status_code == 200, split.text
    v2 = project.registry.load(project.registry.get("churn", 2))
    with project.features("churn") as fs:
        frame = fs.compute(users, AS_OF)
    frame[fs.entity] = frame[fs.entity].astype(str)
    by_user = dict(zip(frame[fs.entity], v2.outputs(frame)[0].tolist(), strict=True))
    exp = project.spec.experiments["scores"]
    base = {p["entity"]: p["score"] for p in plain.json()["predictions"]}
    for item in split.json()["predictions"]:
        user = item["entity"]
        assert item["score"] is not None and base[user] is not None
        assert item["variant"] == variant_of(exp, "scores", user)
        if item["variant"] == "control":
            assert item["score"] == pytest.approx(base[user], abs=1e-12)
        else:
            assert item["score"] == pytest.approx(by_user[user], abs=1e-9)
    assert sorted(r.unit for r in _exposures(project, app)) == sorted(users)


def test_bad_experiment_requests_answer_json(served) -> None:
    project, app = served
    record = _record(project, 1)
    no_id, unknown, offline, missing = _send(
        app,
        ("POST", URL, {"params": {"experiment": "scores"}, "json": {"records": [record]}}),
        (
            "POST",
            URL,
            {"params": {"experiment": "nope"}, "json": {"records": [record | {"id": "a"}]}},
        ),
        (
            "POST",
            URL,
            {"params": {"experiment": "offline"}, "json": {"records": [record | {"id": "a"}]}},
        ),
        (
            "POST",
            URL,
            {
                "params": {"experiment": "missing"},
                "json": {"records": [record | {"id": f"m{i}"} for i in range(40)]},
            },
        ),
    )
    assert no_id.status_code == 422 and "records[0] has no `id`" in no_id.json()["message"]
    assert unknown.status_code == 404 and unknown.json()["error"] == "NotFoundError"
    assert offline.status_code == 400 and "is not served" in offline.json()["message"]
    assert missing.status_code == 404 and "model version 99" in missing.json()["message"]
    assert _exposures(project, app) == []  # nothing logged by a refused request


# -- a real server ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_exposures_are_logged_once_per_unit_under_concurrent_requests(
    exp_template: Path, tmp_path: Path
) -> None:
    root = tmp_path / "live"
    shutil.copytree(exp_template, root)
    project = Project(root)
    try:
        record = _record(project, 3)
        exp = project.spec.experiments["nomodel"]
    finally:
        project.close()
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CYCLEML_API_TOKEN")}
    env.update(OMP_WAIT_POLICY="PASSIVE", OMP_NUM_THREADS="1")
    log_path = tmp_path / "serve.log"
    args = ["serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cycleml", *args, "--project", str(root)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    base = f"http://127.0.0.1:{port}"
    units = [f"c{i}" for i in range(60)]
    try:
        deadline = time.monotonic() + 90
        with httpx.Client(base_url=base, timeout=5.0) as client:
            while True:
                assert proc.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, log_path.read_text()
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.2)

        def burst(k: int) -> list[tuple[str, str]]:
            got = []
            with httpx.Client(base_url=base, timeout=60.0) as client:
                for j in range(8):  # every unit is asked by many requests at once
                    chosen = [units[(k * 7 + j * 13 + m) % len(units)] for m in range(3)]
                    if j % 2:
                        r = client.get(
                            "/v1/experiments/nomodel/assignment", params={"unit": chosen[0]}
                        )
                        assert r.status_code == 200, r.text
                        got.append((chosen[0], r.json()["variant"]))
                        continue
                    records = [record | {"id": u} for u in chosen]
                    r = client.post(
                        URL, params={"experiment": "nomodel"}, json={"records": records}
                    )
                    assert r.status_code == 200, r.text
                    got += [(p["id"], p["variant"]) for p in r.json()["predictions"]]
            return got

        with ThreadPoolExecutor(12) as pool:
            answers = [a for part in pool.map(burst, range(48)) for a in part]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert "Application shutdown complete" in log_path.read_text()
    asked = {u for u, _ in answers}
    assert {v for u, v in answers} == {"control", "treatment"}
    assert all(v == variant_of(exp, "nomodel", u) for u, v in answers)  # sticky, both workers
    project = Project(root)
    try:
        rows = _exposures(project)
    finally:
        project.close()
    assert sorted(r.unit for r in rows) == sorted(asked)  # exactly one row per unit
    assert all(r.variant == variant_of(exp, "nomodel", r.unit) for r in rows)


def test_the_assignment_route_needs_the_predict_scope(
    exp_template: Path, tmp_path: Path, monkeypatch
) -> None:
    root = tmp_path / "scoped"
    shutil.copytree(exp_template, root)
    monkeypatch.setenv("CYCLEML_API_TOKENS", "reader:predict;collector:track")
    project = Project(root)
    app = project.app(token="")
    try:
        path = "/v1/experiments/scores/assignment"
        params = {"unit": "u1"}
        anonymous, tracker, reader = _send(
            app,
            ("GET", path, {"params": params}),
            ("GET", path, {"params": params, "headers": {"Authorization": "Bearer collector"}}),
            ("GET", path, {"params": params, "headers": {"Authorization": "Bearer reader"}}),
        )
        assert anonymous.status_code == 401
        assert tracker.status_code == 403 and "'predict' scope" in tracker.json()["message"]
        assert reader.status_code == 200 and reader.json()["unit"] == "u1"
    finally:
        app.state.serving.stop()
        project.close()


def test_a_tampered_variant_model_is_never_loaded(exp_template: Path, tmp_path: Path) -> None:
    root = tmp_path / "tampered"
    shutil.copytree(exp_template, root)
    project = Project(root)
    app = project.app(token="")
    try:
        v2 = project.registry.get("churn", 2)
        path = project.artifacts.verified_path(v2.artifact_sha256)
        path.write_bytes(path.read_bytes() + b"tampered")
        exp = project.spec.experiments["scores"]
        treated = next(
            f"t{i}" for i in range(100) if variant_of(exp, "scores", f"t{i}") != "control"
        )
        (r,) = _send(
            app, ("GET", "/v1/experiments/scores/assignment", {"params": {"unit": treated}})
        )
        assert r.status_code == 500 and r.json()["error"] == "IntegrityError"
        assert "will not be loaded" in r.json()["message"]
        assert _exposures(project, app) == []
    finally:
        app.state.serving.stop()
        project.close()
