"""`cycleml schedule run --once` and `schedule list`: due jobs run exactly once, failures are
recorded, and the jobs call the Python API with the due time."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from typer.testing import CliRunner

from cycleml import Project
from cycleml.cli import app
from cycleml.store import tables as t

DUE = datetime(2026, 6, 1, 3, 0)  # the demo data ends 2026-06-01
NOW = datetime(2026, 6, 1, 4, 0)


def add_schedules(root: Path, block: str) -> None:
    spec = root / "cycleml.yaml"
    spec.write_text(spec.read_text(encoding="utf-8") + "\nschedules:\n" + block, encoding="utf-8")


def rows(root: Path, table: sa.Table) -> list[dict]:
    project = Project(root)
    try:
        with project.store.connect() as conn:
            return [dict(r) for r in conn.execute(sa.select(table)).mappings()]
    finally:
        project.close()


def test_once_runs_each_due_job_once_and_a_second_once_runs_nothing(trained_copy: Path) -> None:
    add_schedules(
        trained_copy,
        '  scores: {cron: "0 3 * * *", job: predict, problem: churn}\n'
        '  drift: {cron: "30 2 * * *", job: monitor, problem: churn}\n'
        '  later: {cron: "0 5 * * *", job: monitor, problem: churn}\n',
    )
    runs_before = len(rows(trained_copy, t.prediction_runs))
    monitors_before = len(rows(trained_copy, t.monitor_runs))
    project = Project(trained_copy)
    try:
        first = project.run_schedules(now=NOW)
        second = project.run_schedules(now=NOW)
    finally:
        project.close()
    assert [(r.job, r.due_at, r.status) for r in first] == [
        ("scores", DUE, "done"),
        ("drift", datetime(2026, 6, 1, 2, 30), "done"),
        ("later", datetime(2026, 5, 31, 5, 0), "done"),  # missed yesterday: runs too
    ]
    assert second == []
    # the effects happened once per job: one prediction run as of the due time, two monitors
    predictions = rows(trained_copy, t.prediction_runs)
    assert len(predictions) == runs_before + 1
    assert predictions[-1]["as_of"] == DUE
    assert len(rows(trained_copy, t.monitor_runs)) == monitors_before + 2
    recorded = rows(trained_copy, t.job_runs)
    assert sorted((r["job"], r["due_at"], r["status"]) for r in recorded) == sorted(
        (r.job, r.due_at, "done") for r in first
    )
    assert all(r["finished_at"] >= r["started_at"] for r in recorded)
    assert "scored" in next(r["message"] for r in recorded if r["job"] == "scores")


def test_the_next_fire_time_runs_again(trained_copy: Path) -> None:
    add_schedules(trained_copy, '  drift: {cron: "0 3 * * *", job: monitor, problem: churn}\n')
    project = Project(trained_copy)
    try:
        first = project.run_schedules(now=NOW)
        same_day = project.run_schedules(now=datetime(2026, 6, 1, 23, 0))
        next_day = project.run_schedules(now=datetime(2026, 6, 2, 3, 0))
    finally:
        project.close()
    assert [r.due_at for r in first] == [DUE]
    assert same_day == []
    assert [r.due_at for r in next_day] == [datetime(2026, 6, 2, 3, 0)]


def test_a_failing_job_is_recorded_failed_and_the_others_still_run(trained_copy: Path) -> None:
    add_schedules(
        trained_copy,
        # as of 2020 no user is eligible yet: predict_batch raises DataError
        '  scores: {cron: "0 3 * * *", job: predict, problem: churn}\n'
        '  drift: {cron: "0 3 * * *", job: monitor, problem: churn}\n',
    )
    monitors_before = len(rows(trained_copy, t.monitor_runs))
    project = Project(trained_copy)
    try:
        runs = project.run_schedules(now=datetime(2020, 1, 1, 4, 0))
        again = project.run_schedules(now=datetime(2020, 1, 1, 4, 0))
    finally:
        project.close()
    status = {r.job: r for r in runs}
    assert status["scores"].status == "failed"
    assert status["scores"].message.startswith("DataError: ")
    assert status["drift"].status == "done"
    assert again == []  # a failed due time is not retried: it waits for the next fire time
    recorded = {r["job"]: r for r in rows(trained_copy, t.job_runs)}
    assert recorded["scores"]["status"] == "failed"
    assert recorded["scores"]["message"] == status["scores"].message
    assert recorded["scores"]["finished_at"] is not None
    assert recorded["drift"]["status"] == "done"
    assert len(rows(trained_copy, t.monitor_runs)) == monitors_before + 1


def test_a_predict_job_writes_to_its_target(trained_copy: Path, tmp_path: Path) -> None:
    target = tmp_path / "scores.db"
    add_schedules(
        trained_copy,
        f'  scores: {{cron: "0 3 * * *", job: predict, problem: churn, '
        f'to: "sqlite:///{target}#scores"}}\n',
    )
    project = Project(trained_copy)
    try:
        [run] = project.run_schedules(now=NOW)
    finally:
        project.close()
    assert run.status == "done", run.message
    engine = sa.create_engine(f"sqlite:///{target}")
    try:
        with engine.connect() as conn:
            written = conn.execute(sa.text("SELECT COUNT(*), MIN(as_of) FROM scores")).one()
    finally:
        engine.dispose()
    assert written[0] > 0
    assert str(written[1]).startswith("2026-06-01 03:00")


def test_cli_once_json_then_nothing_due_and_list(trained_copy: Path) -> None:
    add_schedules(
        trained_copy,
        '  drift: {cron: "0 3 * * *", job: monitor, problem: churn}\n'
        '  drift_weekly: {cron: "0 4 * * 1", job: monitor, problem: churn, timezone: '
        "Europe/Paris}\n",
    )
    runner = CliRunner()
    args = ["schedule", "run", "--once", "--json", "--project", str(trained_copy)]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    body = json.loads(first.stdout)
    assert (body["done"], body["failed"], body["skipped"]) == (2, 0, 0)
    assert {r["job"] for r in body["runs"]} == {"drift", "drift_weekly"}
    second = runner.invoke(app, args)
    assert second.exit_code == 0
    assert json.loads(second.stdout) == {"runs": [], "done": 0, "failed": 0, "skipped": 0}

    listed = runner.invoke(app, ["schedule", "list", "--json", "--project", str(trained_copy)])
    assert listed.exit_code == 0, listed.output
    jobs = {j["job"]: j for j in json.loads(listed.stdout)["schedules"]}
    due = {r["job"]: r["due_at"] for r in body["runs"]}
    for name in ("drift", "drift_weekly"):
        assert jobs[name]["last_run"]["status"] == "done"
        assert jobs[name]["last_run"]["due_at"] == due[name]
        assert jobs[name]["next_run"] > due[name]
        assert jobs[name]["due_now"] is False
    table = runner.invoke(app, ["schedule", "list", "--project", str(trained_copy)])
    assert table.exit_code == 0
    assert "drift_weekly" in table.stdout and "done" in table.stdout


def test_cli_once_exits_1_when_a_job_failed(trained_copy: Path) -> None:
    add_schedules(
        trained_copy,
        '  scores: {cron: "0 3 * * *", job: predict, problem: churn}\n',
    )
    # the production model's artifact is gone: loading it fails, the job is recorded failed
    for path in (trained_copy / ".cycleml" / "artifacts").rglob("*"):
        if path.is_file() and path.suffix not in (".parquet",):
            path.write_bytes(b"tampered")
    result = CliRunner().invoke(app, ["schedule", "run", "--once", "--project", str(trained_copy)])
    assert result.exit_code == 1
    assert "failed scores" in result.stderr
    [recorded] = rows(trained_copy, t.job_runs)
    assert recorded["status"] == "failed"
    assert "IntegrityError" in recorded["message"]


def test_cli_says_clearly_when_the_spec_has_no_schedules(demo_project: Path) -> None:
    runner = CliRunner()
    for args in (["schedule", "run", "--once"], ["schedule", "run"], ["schedule", "list"]):
        result = runner.invoke(app, [*args, "--project", str(demo_project)])
        assert result.exit_code == 2, (args, result.output)
        assert "has no `schedules:`, so there is nothing to run" in result.stderr
        assert "hint:" in result.stderr
        assert "Traceback" not in result.output


def test_a_materialize_job_fills_the_online_store_as_of_its_due_time(trained_copy: Path) -> None:
    add_schedules(
        trained_copy, '  features: {cron: "0 3 * * *", job: materialize, problem: churn}\n'
    )
    project = Project(trained_copy)
    try:
        [run] = project.run_schedules(now=NOW)
    finally:
        project.close()
    assert run.status == "done", run.message
    from cycleml.serve._online_store import SCHEMA_KEY  # the row holding the columns' types

    stored = [
        r
        for r in rows(trained_copy, t.online_features)
        if r["problem"] == "churn" and r["entity"] != SCHEMA_KEY
    ]
    assert len(stored) > 0
    assert {r["as_of"] for r in stored} == {DUE}
    assert run.message.startswith(f"materialized {len(stored)} entities x ")
    [recorded] = rows(trained_copy, t.job_runs)
    assert (recorded["job"], recorded["due_at"], recorded["status"]) == ("features", DUE, "done")
