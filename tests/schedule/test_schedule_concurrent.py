"""Two schedulers (two real processes) on one store never run the same job twice: SQLite and
PostgreSQL, with --once and in the foreground; SIGTERM stops the foreground cleanly."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from cycleml import Project
from cycleml.store import tables as t

JOBS = 6


def add_schedules(root: Path, block: str) -> None:
    spec = root / "cycleml.yaml"
    spec.write_text(spec.read_text(encoding="utf-8") + "\nschedules:\n" + block, encoding="utf-8")


def monitor_jobs(cron: str, n: int = JOBS) -> str:
    return "".join(
        f'  drift_{i}: {{cron: "{cron}", job: monitor, problem: churn}}\n' for i in range(n)
    )


def count(root: Path, table: sa.Table) -> int:
    project = Project(root)
    try:
        with project.store.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
    finally:
        project.close()


def job_runs(root: Path) -> list[dict]:
    project = Project(root)
    try:
        with project.store.connect() as conn:
            return [dict(r) for r in conn.execute(sa.select(t.job_runs)).mappings()]
    finally:
        project.close()


def start(root: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    return subprocess.Popen(
        [sys.executable, "-m", "cycleml", "schedule", "run", *args, "--json", "-p", str(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def finish(procs: list[subprocess.Popen], timeout: float = 240) -> list[tuple[int, str, str]]:
    out = []
    for proc in procs:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        out.append((proc.returncode, stdout, stderr))
    return out


def two_once_schedulers_run_each_job_once(root: Path) -> None:
    add_schedules(root, monitor_jobs("0 0 * * *"))
    before = count(root, t.monitor_runs)
    results = finish([start(root, "--once"), start(root, "--once")])
    bodies = []
    for code, stdout, stderr in results:
        assert code == 0, stderr
        bodies.append(json.loads(stdout))
    ran = [{r["job"] for r in body["runs"] if r["status"] == "done"} for body in bodies]
    assert not ran[0] & ran[1]  # no job ran in both processes
    assert ran[0] | ran[1] == {f"drift_{i}" for i in range(JOBS)}
    assert all(r["status"] in ("done", "skipped") for body in bodies for r in body["runs"])
    # the effect happened once per job, and the store has one finished run per job
    assert count(root, t.monitor_runs) == before + JOBS
    recorded = job_runs(root)
    assert len(recorded) == JOBS
    assert {r["status"] for r in recorded} == {"done"}
    assert len({r["due_at"] for r in recorded}) == 1


def test_two_once_schedulers_on_sqlite_run_each_job_once(trained_copy: Path) -> None:
    two_once_schedulers_run_each_job_once(trained_copy)


@pytest.mark.postgres
def test_two_once_schedulers_on_postgres_run_each_job_once(
    demo_project: Path, pg_database: str
) -> None:
    spec = demo_project / "cycleml.yaml"
    text, n = re.subn(r"(?m)^store:.*$", f"store: {pg_database}", spec.read_text("utf-8"))
    assert n == 1
    spec.write_text(text, encoding="utf-8")
    project = Project(demo_project)
    try:
        assert project.store.dialect == "postgresql"
        project.train("churn", budget=5)
        project.predict_batch("churn", as_of=datetime(2026, 6, 1))
    finally:
        project.close()
    two_once_schedulers_run_each_job_once(demo_project)


def test_two_foreground_schedulers_never_run_a_due_time_twice(trained_copy: Path) -> None:
    # a six-field cron: every 2 seconds, so the test sees several fire times quickly
    add_schedules(trained_copy, '  drift: {cron: "*/2 * * * * *", job: monitor, problem: churn}\n')
    before = count(trained_copy, t.monitor_runs)
    procs = [start(trained_copy), start(trained_copy)]
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            done = [r for r in job_runs(trained_copy) if r["status"] == "done"]
            if len(done) >= 3 or any(p.poll() is not None for p in procs):
                break
            time.sleep(0.5)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
    results = finish(procs, timeout=120)
    lines = []
    for code, stdout, stderr in results:
        assert code == 0, stderr  # SIGTERM is a clean shutdown
        assert "Traceback" not in stderr
        lines.append([json.loads(line) for line in stdout.splitlines() if line.strip()])
    recorded = job_runs(trained_copy)
    assert len(recorded) >= 3
    # graceful stop: nothing is left running, and every due time ran exactly once
    assert {r["status"] for r in recorded} == {"done"}
    assert count(trained_copy, t.monitor_runs) == before + len(recorded)
    done = [[(r["job"], r["due_at"]) for r in proc if r["status"] == "done"] for proc in lines]
    assert not set(done[0]) & set(done[1])
    assert len(done[0]) + len(done[1]) == len(recorded)
    assert sorted(done[0] + done[1]) == sorted(
        (r["job"], r["due_at"].isoformat()) for r in recorded
    )
    # both fired at the same times, so the lock in the store did turn one of them away
    assert any(r["status"] == "skipped" for proc in lines for r in proc)
