"""Alert rules on monitor runs: alerts stored, logged and in the result (and the stored run and
the HTML report); windows over daily chunks and over runs; metrics with no value yet give a
note, not an alert; unknown metrics are spec errors listing the valid ones; `cycleml monitor
alerts`."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from pydantic import ValidationError
from typer.testing import CliRunner

from cycleml import Project
from cycleml.batch import latest_run
from cycleml.cli import app
from cycleml.errors import SpecError
from cycleml.monitor import ALERT_METRICS
from cycleml.monitor._alerts import chunk_readings, parse_metric, run_reading
from cycleml.spec._models import MonitoringSpec
from cycleml.spec._schedules import ScheduleSpec
from cycleml.store.tables import alerts, feedback, monitor_runs, prediction_log

runner = CliRunner()


def _with_monitoring(root: Path, block: str) -> None:
    spec = root / "cycleml.yaml"
    spec.write_text(spec.read_text() + "monitoring:\n" + block, encoding="utf-8")


def _alert_rows(project: Project) -> list[dict]:
    with project.store.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(alerts).order_by(alerts.c.id))]


def test_breached_rules_are_stored_logged_reported_and_in_the_result(
    trained_copy: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _with_monitoring(
        trained_copy,
        "  rules:\n"
        "    age_moves: {metric: features.age.statistic, above: -1, severity: critical}\n"
        "    never: {metric: drift_share, below: -1}\n"
        "    findings: {metric: quality.count, above: -1}\n"
        "    other_problem: {metric: drift_share, above: -1, problems: [nothing_here]}\n",
    )
    project = Project(trained_copy)
    caplog.set_level(logging.INFO, logger="cycleml.monitor.alerts")
    try:
        result = project.monitor("churn", html=trained_copy / "drift.html")
        age = next(r for r in result["features"] if r["feature"] == "age")
        raised = {a["rule"]: a for a in result["alerts"]}
        assert set(raised) == {"age_moves", "findings"}  # `never` cannot breach; other problem
        assert [c["rule"] for c in result["rules"]] == ["age_moves", "never", "findings"]
        assert raised["age_moves"]["value"] == pytest.approx(age["statistic"])
        assert raised["age_moves"]["threshold"] == -1
        assert raised["findings"]["value"] == len(result["quality"])

        stored = _alert_rows(project)
        assert [r["id"] for r in stored] == sorted(a["id"] for a in result["alerts"])
        for row in stored:
            alert = raised[row["rule"]]
            assert row["problem"] == "churn"
            assert row["monitor_run_id"] == result["id"]
            assert row["value"] == pytest.approx(alert["value"])
            assert row["severity"] == ("critical" if row["rule"] == "age_moves" else "warning")
            assert row["webhook_status"] is None and row["webhook_attempts"] == 0
            assert row["details"]["model"] == result["model"]
        assert stored[0]["metric"] == "features.age.statistic"

        records = [r for r in caplog.records if r.name == "cycleml.monitor.alerts"]
        assert sorted(r.levelno for r in records) == [logging.WARNING, logging.CRITICAL]
        assert any("age_moves" in r.getMessage() for r in records)

        with project.store.connect() as conn:
            run = conn.execute(
                sa.select(monitor_runs.c.result).where(monitor_runs.c.id == result["id"])
            ).scalar_one()
        assert sorted(run["alerts"]) == sorted(a["id"] for a in result["alerts"])
        assert [c["rule"] for c in run["rules"]] == ["age_moves", "never", "findings"]
        html = (trained_copy / "drift.html").read_text()
        assert "<h2>Alerts</h2>" in html and "age_moves" in html and "never" in html
    finally:
        project.close()

    listed = runner.invoke(app, ["monitor", "alerts", "churn", "-p", str(trained_copy), "--json"])
    assert listed.exit_code == 0, listed.output
    body = json.loads(listed.output)
    assert [a["id"] for a in body["alerts"]] == sorted((r["id"] for r in stored), reverse=True)
    text = runner.invoke(app, ["monitor", "alerts", "-p", str(trained_copy)])
    assert text.exit_code == 0 and "age_moves" in text.output
    none = runner.invoke(app, ["monitor", "decisions", "-p", str(trained_copy)])
    assert none.exit_code == 0 and "no retrain decisions stored yet" in none.output


def test_unknown_metrics_are_spec_errors_listing_the_valid_ones(trained_copy: Path) -> None:
    for metric, listed in (
        ("drift_shares", "drift_share"),
        ("features.age.median", "features.<column>.statistic"),
        ("features.no_such_column.statistic", "activity_count_30d"),
    ):
        spec = trained_copy / "cycleml.yaml"
        original = spec.read_text()
        _with_monitoring(trained_copy, f"  rules:\n    r: {{metric: {metric}, above: 0.1}}\n")
        project = Project(trained_copy)
        try:
            with pytest.raises(SpecError) as exc:
                project.monitor("churn")
            assert metric.split(".")[1 if metric.startswith("features.no") else 0] in str(exc.value)
            assert listed in exc.value.hint
            assert _alert_rows(project) == []
        finally:
            project.close()
            spec.write_text(original)
    with pytest.raises(SpecError) as exc:
        parse_metric("volume.rows")
    assert all(m in exc.value.hint for m in ALERT_METRICS)


def test_metrics_without_a_value_yet_give_a_note_not_an_alert(trained_copy: Path) -> None:
    """The batch is scored as of the data's end: its labels are not known yet."""
    _with_monitoring(
        trained_copy,
        "  domain_classifier: false\n"
        "  rules:\n"
        "    realised: {metric: performance.roc_auc, below: 2}\n"
        "    realised_window: {metric: performance.roc_auc, below: 2, window: 3}\n"
        "    domain: {metric: domain_auc, above: 0}\n",
    )
    project = Project(trained_copy)
    try:
        result = project.monitor("churn")
        assert result["alerts"] == [] and _alert_rows(project) == []
        perf = result["performance"]
        assert perf["n_labelled"] == 0  # what makes the rules below unanswerable
        why = [c.get("realised_note") for c in perf["chunks"]] or [perf["realised_status"]]
        notes = {c["rule"]: c["note"] for c in result["rules"]}
        for rule in ("realised", "realised_window"):
            assert notes[rule].startswith("not available") and why[-1] in notes[rule]
        assert notes["domain"] == "not available: the domain classifier did not run"
    finally:
        project.close()


def test_performance_paths_read_the_latest_chunk_that_has_a_value() -> None:
    chunks = [("2025-01-06", 0.81, 0.8), ("2025-01-07", 0.64, 0.7), ("2025-01-08", None, 0.55)]
    result = {
        "performance": {
            "chunks": [
                {"start": f"{day}T00:00:00", "estimated": {"roc_auc": est, "rows": 50},
                 "realised": None if real is None else {"roc_auc": real, "confusion": {"tp": 1}},
                 **({"realised_note": "no labels yet"} if real is None else {})}
                for day, real, est in chunks
            ]
        },
        "current": {"rows": 10},
    }  # fmt: skip
    realised = run_reading(result, parse_metric("performance.roc_auc"))
    assert (realised.value, realised.where) == (0.64, "chunk 2025-01-07")
    estimated = run_reading(result, parse_metric("estimated.roc_auc"))
    assert (estimated.value, estimated.where) == (0.55, "chunk 2025-01-08")
    with pytest.raises(SpecError) as exc:
        run_reading(result, parse_metric("performance.rmse"))
    assert exc.value.hint == "realised metrics here: performance.roc_auc"
    latest = chunk_readings(result, parse_metric("performance.roc_auc"))[-1]
    assert (latest.value, latest.note) == (None, "no labels yet")


def test_a_window_over_daily_chunks_needs_enough_breaching_days(trained_copy: Path) -> None:
    """Six days of logged predictions; users are 25 years older from the fifth day on: "2 of 3"
    alerts, "3 of 3" does not; a volume rule reads rows per day; realised accuracy (feedback
    labels) per day."""
    _with_monitoring(
        trained_copy,
        "  rules:\n"
        "    two_of_three: {metric: features.age.statistic, above: 0.5, window: '2 of 3'}\n"
        "    three_of_three: {metric: features.age.statistic, above: 0.5, window: 3}\n"
        "    busy_day: {metric: volume, above: 149, window: 6}\n"
        "    wrong_lately: {metric: performance.accuracy, below: 0.5, window: '2 of 3'}\n"
        "    wrong_today: {metric: performance.accuracy, below: 0.5}\n",
    )
    project = Project(trained_copy)
    try:
        mv, bundle = project.load_model("churn")
        run = latest_run(project.store, "churn")
        features = pd.read_parquet(project.artifacts.verified_path(run["features_sha256"]))
        features = features[bundle.feature_names]
        start = datetime(2025, 1, 6)
        rows = []
        for day in range(6):
            sample = features.sample(100 + 20 * day, replace=True, random_state=day).copy()
            if day >= 4:
                sample["age"] = sample["age"] + 25
            for i, record in enumerate(sample.to_dict("records")):
                inputs = {k: (None if pd.isna(v) else v) for k, v in record.items()}
                rows.append(
                    {
                        "request_id": uuid.uuid4().hex,
                        "problem": "churn",
                        "model_version_id": mv.id,
                        "inputs": json.loads(json.dumps(inputs, default=float)),
                        "score": 0.5,
                        "created_at": start + timedelta(days=day, minutes=i % 600),
                        "item_id": str(i),
                    }
                )
        # feedback labels every row: all positive (what a 0.5 score predicts) for four days,
        # then all negative, so the realised accuracy falls from 1 to 0 on the fifth day
        labels = [
            {
                "problem": "churn",
                "request_id": row["request_id"],
                "label": float(row["created_at"] < start + timedelta(days=4)),
                "created_at": row["created_at"] + timedelta(hours=1),
            }
            for row in rows
        ]
        with project.store.begin() as conn:
            conn.execute(prediction_log.insert(), rows)
            conn.execute(feedback.insert(), labels)
        result = project.monitor("churn", current="log", chunk="day")
        ages = [c["features"]["age"]["statistic"] for c in result["chunks"]]
        checks = {c["rule"]: c for c in result["rules"]}
        assert [v["value"] for v in checks["two_of_three"]["values"]] == pytest.approx(ages[-3:])
        assert checks["two_of_three"]["breaches"] == sum(a > 0.5 for a in ages[-3:]) == 2
        assert checks["two_of_three"]["alert"] and not checks["three_of_three"]["alert"]
        per_day = [c["rows"] for c in result["chunks"]]
        assert [v["value"] for v in checks["busy_day"]["values"]] == per_day
        assert checks["busy_day"]["breaches"] == sum(n > 149 for n in per_day) == 3
        assert not checks["busy_day"]["alert"]  # 3 busy days of 6, the window needs all 6
        accuracy = [c["realised"]["accuracy"] for c in result["performance"]["chunks"]]
        assert accuracy == [1.0] * 4 + [0.0] * 2
        assert [v["value"] for v in checks["wrong_lately"]["values"]] == accuracy[-3:]
        assert checks["wrong_today"]["values"][0]["value"] == accuracy[-1]
        raised = [a["rule"] for a in result["alerts"]]
        assert raised == ["two_of_three", "wrong_lately", "wrong_today"]
        assert "in 2 of the latest 3" in result["alerts"][0]["message"]
    finally:
        project.close()


def test_a_window_over_runs_alerts_once_enough_runs_breach(trained_copy: Path) -> None:
    _with_monitoring(
        trained_copy,
        "  domain_classifier: false\n"
        "  rules:\n    twice: {metric: drift_share, above: -1, window: '2 of 2'}\n",
    )
    project = Project(trained_copy)
    try:
        first = project.monitor("churn")
        assert first["alerts"] == []
        assert "1 value(s) so far" in first["rules"][0]["note"]
        second = project.monitor("churn")
        check = second["rules"][0]
        assert [v["where"] for v in check["values"]] == [f"monitor run {first['id']}", "this run"]
        assert [a["rule"] for a in second["alerts"]] == ["twice"]
        assert [r["monitor_run_id"] for r in _alert_rows(project)] == [second["id"]]
    finally:
        project.close()


def test_rule_settings_are_checked_when_the_spec_loads() -> None:
    rules = MonitoringSpec.model_validate(
        {
            "rules": {
                "a": {"metric": "drift_share", "above": 0.3, "window": "2 of 3"},
                "b": {"metric": "volume", "below": 10, "above": 100, "window": 4},
            }
        }
    ).rules
    assert (rules["a"].window.breaches, rules["a"].window.chunks) == (2, 3)
    assert (rules["b"].window.needed, rules["b"].window.chunks) == (4, 4)
    bad = [
        ({"metric": "drift_share"}, "needs `above:` or `below:`"),
        ({"metric": "drift_share", "above": 1, "window": "4 of 3"}, "cannot be more than 3"),
        ({"metric": "drift_share", "above": 1, "window": "two of 3"}, "is not 'N of M'"),
        ({"metric": "drift_share", "above": 1, "below": 2}, "every value would alert"),
        ({"metric": "drift_share", "above": 1, "severity": "fatal"}, "severity"),
        ({"metric": "drift_share", "above": 1, "when": "now"}, "when"),
    ]
    for rule, message in bad:
        with pytest.raises(ValidationError) as exc:
            MonitoringSpec.model_validate({"rules": {"r": rule}})
        assert message in str(exc.value)
    with pytest.raises(ValidationError):
        MonitoringSpec.model_validate({"webhook": {"url": "ftp://example.org/hook"}})
    with pytest.raises(ValidationError) as exc:
        ScheduleSpec.model_validate(
            {"cron": "@daily", "job": "predict", "problem": "churn", "retrain": True}
        )
    assert "only go with `job: monitor`" in str(exc.value)
    assert ScheduleSpec.model_validate(
        {"cron": "@daily", "job": "monitor", "problem": "churn", "retrain": True, "budget": 5}
    ).retrain


def test_cli_alerts_arguments_are_checked(trained_copy: Path) -> None:
    no_hook = runner.invoke(app, ["monitor", "alerts", "--retry", "-p", str(trained_copy)])
    assert no_hook.exit_code != 0 and "no webhook" in no_hook.output
    stray = runner.invoke(app, ["monitor", "churn", "extra", "-p", str(trained_copy)])
    assert stray.exit_code != 0 and "unexpected 'extra'" in stray.output
    force = runner.invoke(app, ["monitor", "churn", "--force", "-p", str(trained_copy)])
    assert force.exit_code != 0 and "go with --retrain" in force.output
    unknown = runner.invoke(app, ["monitor", "alerts", "nope", "-p", str(trained_copy)])
    assert unknown.exit_code != 0 and "unknown problem 'nope'" in unknown.output
    quiet = runner.invoke(app, ["monitor", "churn", "--retrain", "-p", str(trained_copy)])
    assert quiet.exit_code == 0, quiet.output
    assert "retrain: not retrained: the run raised no alert" in " ".join(quiet.output.split())
    project = Project(trained_copy)
    try:
        assert len(project.models("churn")) == 1 and project.retrain_decisions() == []
    finally:
        project.close()
