"""The foreground scheduler through the Python API: jobs run when their cron fires, a failing
job is recorded failed at every fire time and does not stop the others."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import sqlalchemy as sa

from cycleml import Project
from cycleml.store import tables as t


def test_a_failing_job_does_not_stop_the_foreground_scheduler(trained_copy: Path) -> None:
    spec = trained_copy / "cycleml.yaml"
    spec.write_text(
        spec.read_text(encoding="utf-8") + "\nschedules:\n"
        # the Parquet target folder is a file: every predict run fails with TargetError
        '  scores: {cron: "*/2 * * * * *", job: predict, problem: churn, to: s.parquet}\n'
        '  drift: {cron: "*/2 * * * * *", job: monitor, problem: churn}\n',
        encoding="utf-8",
    )
    (trained_copy / "s.parquet").write_text("not a folder", encoding="utf-8")
    stop = threading.Event()
    seen: list = []
    project = Project(trained_copy)
    worker = threading.Thread(
        target=lambda: seen.extend(project.run_schedules(once=False, stop=stop)), daemon=True
    )
    worker.start()
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            finished = [r for r in _job_runs(project) if r["status"] != "running"]
            if all(sum(r["job"] == j for r in finished) >= 2 for j in ("scores", "drift")):
                break
            time.sleep(0.3)
    finally:
        stop.set()
        worker.join(timeout=60)
    try:
        assert not worker.is_alive()
        recorded = _job_runs(project)
    finally:
        project.close()
    scores = [r for r in recorded if r["job"] == "scores"]
    assert len(scores) >= 2  # it kept firing after the first failure
    assert {r["status"] for r in scores} == {"failed"}
    assert all(r["message"].startswith("TargetError: ") for r in scores)
    drift = [r for r in recorded if r["job"] == "drift"]
    assert len(drift) >= 2
    assert {r["status"] for r in drift} == {"done"}
    assert {(r.job, r.due_at, r.status) for r in seen} == {
        (r["job"], r["due_at"], r["status"]) for r in recorded
    }
    assert len({r["due_at"] for r in scores}) == len(scores)


def _job_runs(project: Project) -> list[dict]:
    with project.store.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(t.job_runs)).mappings()]
