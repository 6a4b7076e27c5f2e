"""`cycleml schedule run --catch-up` as a real process: runs what is due at start, keeps
scheduling, and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa

from cycleml import Project
from cycleml.store import tables as t


def test_catch_up_runs_what_is_due_then_sigterm_stops_cleanly(trained_copy: Path) -> None:
    spec = trained_copy / "cycleml.yaml"
    spec.write_text(
        spec.read_text(encoding="utf-8")
        + '\nschedules:\n  drift: {cron: "0 0 * * *", job: monitor, problem: churn}\n',
        encoding="utf-8",
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cycleml", "schedule", "run", "--catch-up", "-p", str(trained_copy)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    project = Project(trained_copy)
    try:
        deadline = time.monotonic() + 90
        runs: list = []
        while time.monotonic() < deadline and proc.poll() is None:
            with project.store.connect() as conn:
                runs = conn.execute(sa.select(t.job_runs)).mappings().all()
            if runs and runs[0]["status"] == "done":
                break
            time.sleep(0.3)
    finally:
        project.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            _stdout, stderr = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            _stdout, stderr = proc.communicate()
    assert proc.returncode == 0, stderr
    assert [(r["job"], r["status"]) for r in runs] == [("drift", "done")]
    assert "scheduling 1 job(s) of demo_shop" in stderr
    assert "drift: next run" in stderr
    assert "done drift (due " in stderr and "monitored churn" in stderr
    assert stderr.rstrip().endswith("scheduler stopped")
