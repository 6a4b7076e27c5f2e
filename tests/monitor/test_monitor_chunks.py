"""The prediction log read in bulk and cut into chunks: each day's drift equals the methods run on
that day's rows by hand, a shift injected after a date is found on that date, weeks start on
Monday, small chunks are skipped with the reason, and the log reads the same from PostgreSQL."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cycleml import Project
from cycleml.batch import latest_run
from cycleml.cli import app
from cycleml.features import get_dataset, load_dataset
from cycleml.features._groups import FeatureColumn
from cycleml.monitor import DriftOptions, column_drift
from cycleml.monitor._chunks import read_log
from cycleml.store import Store, utcnow
from cycleml.store.tables import artifacts, dataset_versions, model_versions, prediction_log

SHIFT = datetime(2026, 6, 7)


def _records(project: Project, days: list[tuple[datetime, int]], shift_from: datetime | None):
    """(log rows, the same inputs as a frame with their day): batch features resampled and
    scored; from ``shift_from`` on, users are 25 years older."""
    mv, bundle = project.load_model("churn")
    run = latest_run(project.store, "churn")
    features = pd.read_parquet(project.artifacts.verified_path(run["features_sha256"]))
    features = features[bundle.feature_names]
    rows, frames = [], []
    for n, (day, count) in enumerate(days):
        sample = features.sample(count, replace=True, random_state=n).copy()
        if shift_from is not None and day >= shift_from:
            sample["age"] = sample["age"] + 25
        scores = bundle.outputs(sample)[0]
        sample["prediction"] = scores
        sample["day"] = day
        frames.append(sample)
        for i, record in enumerate(sample[bundle.feature_names].to_dict("records")):
            inputs = {k: (None if pd.isna(v) else v) for k, v in record.items()}
            rows.append(
                {
                    "request_id": uuid.uuid4().hex,
                    "problem": "churn",
                    "model_version_id": mv.id,
                    "inputs": json.loads(json.dumps(inputs, default=float)),
                    "score": float(scores[i]),
                    "created_at": day + timedelta(minutes=3 * i),
                }
            )
    return rows, pd.concat(frames, ignore_index=True)


def test_daily_chunks_find_the_shift_date_and_equal_the_methods_on_each_day(
    trained_copy: Path,
) -> None:
    project = Project(trained_copy)
    try:
        days = [(datetime(2026, 6, 2) + timedelta(days=d), 200) for d in range(8)]
        rows, current = _records(project, days, SHIFT)
        with project.store.begin() as conn:
            conn.execute(prediction_log.insert(), rows)
        result = project.monitor("churn", current="log", chunk="day")
        over = result["drift_over_time"]
        labels = [f"2026-06-{d:02d}" for d in range(2, 10)]
        assert over["chunks"] == labels
        assert over["rows"] == [200] * 8
        age = over["features"].index("age")
        # the shift is found on the day it starts, and not before
        found = [d for d, drifted in zip(labels, over["drifted"][age], strict=True) if drifted]
        assert found[0] == "2026-06-07" and found == labels[5:]
        assert over["drift_share"] == [c["drift_share"] for c in result["chunks"]]

        # each day's statistics equal the methods run by hand on that day's rows
        mv, bundle = project.load_model("churn")
        reference = load_dataset(
            get_dataset(project.store, mv.dataset_version_id), project.artifacts
        )
        reference["prediction"] = bundle.outputs(reference[bundle.feature_names])[0]
        options = DriftOptions(domain_classifier=False)
        kinds = {c.name: c.kind for c in bundle.columns}
        for n, (day, _) in enumerate(days):
            part = current[current["day"] == day]
            chunk = result["chunks"][n]
            assert chunk["chunk"] == labels[n] and chunk["rows"] == 200
            assert chunk["start"] == day.isoformat()
            assert chunk["end"] == (day + timedelta(days=1)).isoformat()
            for name in ("age", "plan", "country", "activity_count_30d", "prediction"):
                want = column_drift(name, reference[name], part[name], options, kinds.get(name))
                got = chunk["prediction"] if name == "prediction" else chunk["features"][name]
                assert got["method"] == want["method"], name
                assert got["statistic"] == pytest.approx(want["statistic"], rel=1e-9), name
                assert got["drifted"] == want["drifted"], name
        # the same chunks carry performance (CBPE before labels)
        perf = result["performance"]["chunks"]
        assert [c["chunk"] for c in perf] == labels
        assert all(c["estimated"] is not None and c["realised"] is None for c in perf)
        assert "Drift over time" in _report(project, trained_copy)
    finally:
        project.close()


def _report(project: Project, root: Path) -> str:
    path = root / "over-time.html"
    project.monitor("churn", current="log", chunk="day", html=path)
    return path.read_text()


def test_weekly_chunks_start_on_monday_and_small_chunks_are_skipped(trained_copy: Path) -> None:
    project = Project(trained_copy)
    try:
        # Wednesday 2026-06-03 and Sunday 2026-06-07 are one week (from Monday 06-01); five
        # rows on Tuesday 06-09 make a week too small to test
        days = [(datetime(2026, 6, 3), 150), (datetime(2026, 6, 7), 150), (datetime(2026, 6, 9), 5)]
        rows, _ = _records(project, days, None)
        with project.store.begin() as conn:
            conn.execute(prediction_log.insert(), rows)
        result = project.monitor("churn", current="log", chunk="week")
        chunks = result["chunks"]
        assert [(c["chunk"], c["rows"]) for c in chunks] == [("2026-06-01", 300), ("2026-06-08", 5)]
        assert chunks[1]["skipped"] == "too few rows in this chunk: 5, the tests need 30"
        assert "features" not in chunks[1]
        over = result["drift_over_time"]
        assert over["skipped"] == [None, chunks[1]["skipped"]]
        assert all(row[1] is None for row in over["drifted"])
        assert result["current"]["chunk"] == "week"
        # every N rows, in the order they were logged (the CLI passes the number as text)
        by_rows = project.monitor("churn", current="log", chunk="100")
        assert [c["rows"] for c in by_rows["chunks"]] == [100, 100, 100, 5]
        assert by_rows["chunks"][0]["chunk"] == "2026-06-03T00:00:00"
        assert by_rows["chunks"][3]["skipped"].startswith("too few rows in this chunk: 5")
        perf = by_rows["performance"]["chunks"]
        assert [c["n"] for c in perf] == [100, 100, 100, 5]
        assert [c["chunk"] for c in perf] == by_rows["drift_over_time"]["chunks"]
        # since: only the small week is left
        later = project.monitor("churn", current="log", chunk="week", since=datetime(2026, 6, 8))
        assert later["current"]["rows"] == 5
    finally:
        project.close()
    args = ["monitor", "churn", "--from", "log", "--chunk", "week", "--project", str(trained_copy)]
    shown = CliRunner().invoke(app, args)
    assert shown.exit_code == 0, shown.output
    assert "performance (training roc_auc 0.7" in shown.output
    assert "estimated: estimated" in shown.output
    assert "chunk 2026-06-08: too few rows in this chunk: 5" in shown.output
    bad = CliRunner().invoke(app, [*args[:-4], "--chunk", "fortnight", *args[-2:]])
    assert bad.exit_code != 0 and "unknown chunk 'fortnight'" in bad.output


@pytest.mark.postgres
def test_the_log_reads_the_same_from_postgresql(pg_database: str, tmp_path: Path) -> None:
    columns = [
        FeatureColumn("plan", "profile", "category"),
        FeatureColumn("age", "profile", "number"),
        FeatureColumn("clicks", "activity", "number"),
    ]
    rng = np.random.default_rng(2)
    start = datetime(2026, 3, 1)
    logged = [
        {
            "request_id": f"r{i}",
            "problem": "p",
            "model_version_id": 1,
            "inputs": {
                "plan": ["free", "pro", None][i % 3],
                "age": float(rng.normal(40, 9)),
                "clicks": int(rng.integers(0, 20)) if i % 7 else None,
                "ignored": "x",
            },
            "score": float(rng.random()),
            "created_at": start + timedelta(hours=5 * i),
        }
        for i in range(60)
    ]
    frames = {}
    for name, url in (("sqlite", f"sqlite:///{tmp_path / 'store.db'}"), ("pg", pg_database)):
        store = Store(url).open()
        try:
            _model_version(store)
            with store.begin() as conn:
                conn.execute(prediction_log.insert(), logged)
            project = SimpleNamespace(store=store, path=tmp_path)
            log = read_log(project, "p", 1, columns, since=start + timedelta(days=1), chunk="day")
            assert log is not None
            frames[name] = log
        finally:
            store.dispose()
    lite, pg = frames["sqlite"], frames["pg"]
    want = [r for r in logged if r["created_at"] >= start + timedelta(days=1)]
    assert len(pg.frame) == len(lite.frame) == len(want)
    for frame in (lite.frame, pg.frame):
        assert frame["age"].tolist() == [r["inputs"]["age"] for r in want]
        assert frame["plan"].astype(object).where(frame["plan"].notna(), None).tolist() == [
            r["inputs"]["plan"] for r in want
        ]
        clicks = [r["inputs"]["clicks"] for r in want]
        assert [None if np.isnan(v) else v for v in frame["clicks"]] == clicks
        assert frame["prediction"].tolist() == pytest.approx([r["score"] for r in want])
    assert lite.starts == pg.starts
    assert [len(r) for r in lite.rows] == [len(r) for r in pg.rows]
    assert sum(len(r) for r in pg.rows) == len(want)


def _model_version(store: Store) -> None:
    """The rows a prediction-log row points at (artifact, dataset version, model version 1)."""
    now = utcnow()
    with store.begin() as conn:
        conn.execute(
            artifacts.insert().values(
                sha256="0" * 64, path="x", size=1, kind="model", created_at=now
            )
        )
        conn.execute(
            dataset_versions.insert().values(
                id="d1", problem="p", spec_hash="h", data_fingerprint="f", path="x",
                artifact_sha256="0" * 64, rows=1, cutoffs=1, label_balance={}, features=[],
                notes=[], build_seconds=0.0, created_at=now,
            )
        )  # fmt: skip
        conn.execute(
            model_versions.insert().values(
                id=1, problem="p", version=1, dataset_version_id="d1", algorithm="a", params={},
                metrics={}, leaderboard=[], features=[], artifact_sha256="0" * 64,
                code_version="0", stage="production", training_seconds=0.0, created_at=now,
            )
        )  # fmt: skip
