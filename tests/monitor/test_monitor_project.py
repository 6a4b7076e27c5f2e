"""`Project.monitor` / `Project.drift` / `cycleml monitor` on the trained demo: a row per feature
with the automatic methods, prediction drift, a stored run with lineage, the prediction log in
daily chunks finding the day a shift starts, ad hoc checks of sources and files, clear errors."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from scipy import stats
from typer.testing import CliRunner

from cycleml import Project
from cycleml.batch import latest_run
from cycleml.cli import app
from cycleml.errors import NotFoundError
from cycleml.features import get_dataset, load_dataset
from cycleml.monitor import auto_method
from cycleml.store.tables import monitor_runs, prediction_log, prediction_runs, predictions

runner = CliRunner()


def test_monitor_returns_a_row_per_feature_and_stores_lineage(trained_copy: Path) -> None:
    project = Project(trained_copy)
    try:
        result = project.monitor("churn", html=trained_copy / "drift.html")
        mv, bundle = project.load_model("churn")
        run = latest_run(project.store, "churn")
        assert [r["feature"] for r in result["features"]] == bundle.feature_names
        for row in result["features"]:
            kind = row.get("compared_as") or row["kind"]
            rows = min(row["reference_rows"], row["current_rows"])
            assert row["method"] == auto_method(kind, rows).name
            assert row["drifted"] == (row["p_value"] is not None and row["p_value"] < 0.05)
        assert result["model"] == mv.name
        assert result["current"]["source"] == "batch"
        assert result["current"]["prediction_run"] == run["id"]
        assert result["current"]["rows"] == run["rows"]
        assert result["drifted"] == [r["feature"] for r in result["features"] if r["drifted"]]
        tested = [r for r in result["features"] if r["statistic"] is not None]
        assert result["drift_share"] == pytest.approx(len(result["drifted"]) / len(tested))

        # one feature and the prediction recomputed by hand from the same data
        dataset_id = result["reference"]["dataset_version"]
        assert dataset_id == mv.dataset_version_id
        reference = load_dataset(get_dataset(project.store, dataset_id), project.artifacts)
        current = pd.read_parquet(project.artifacts.verified_path(run["features_sha256"]))
        counted = next(r for r in result["features"] if r["feature"] == "activity_count_30d")
        want = stats.ks_2samp(
            reference["activity_count_30d"].dropna().to_numpy(float),
            current["activity_count_30d"].dropna().to_numpy(float),
        )
        assert counted["p_value"] == pytest.approx(want.pvalue, rel=1e-9)
        with project.store.connect() as conn:
            scores = conn.execute(
                sa.select(predictions.c.score).where(predictions.c.run_id == run["id"])
            ).scalars()
            scored = np.array(list(scores))
        want = stats.ks_2samp(bundle.outputs(reference[bundle.feature_names])[0], scored)
        assert result["prediction"]["method"] == "ks"
        assert result["prediction"]["p_value"] == pytest.approx(want.pvalue, rel=1e-9)
        assert result["target"]["skipped"] == "not known in the current data"
        assert result["domain_classifier"]["rows"]["current"] == run["rows"]
        assert "Drift per feature" in (trained_copy / "drift.html").read_text()

        with project.store.connect() as conn:
            rows = conn.execute(sa.select(monitor_runs)).all()
        assert len(rows) == 1
        stored = rows[0]._mapping
        assert stored["id"] == result["id"]
        assert stored["problem"] == "churn"
        assert stored["model_version_id"] == mv.id
        assert stored["reference_dataset_id"] == dataset_id
        assert stored["prediction_run_id"] == run["id"]
        assert stored["drifted"] == len(result["drifted"])
        assert stored["drift_share"] == pytest.approx(result["drift_share"])
        assert stored["result"]["features"][0]["feature"] == bundle.feature_names[0]
        assert stored["result"]["quality"] == json.loads(json.dumps(result["quality"]))
    finally:
        project.close()


def test_monitoring_settings_of_the_spec_apply(trained_copy: Path) -> None:
    spec = trained_copy / "cycleml.yaml"
    spec.write_text(
        spec.read_text()
        + "monitoring:\n  methods: {age: psi, plan: kl}\n  thresholds: {age: 0.5, kl: 0.4}\n"
        "  domain_classifier: false\n",
        encoding="utf-8",
    )
    project = Project(trained_copy)
    try:
        result = project.monitor("churn")
        rows = {r["feature"]: r for r in result["features"]}
        assert (rows["age"]["method"], rows["age"]["threshold"]) == ("psi", 0.5)
        assert (rows["plan"]["method"], rows["plan"]["threshold"]) == ("kl", 0.4)
        assert rows["age"]["drifted"] == (rows["age"]["statistic"] >= 0.5)
        assert "domain_classifier" not in result
    finally:
        project.close()


def test_monitor_without_anything_scored_hints_predict_batch(trained_copy: Path) -> None:
    project = Project(trained_copy)
    try:
        with project.store.begin() as conn:  # back to "trained, nothing scored yet"
            conn.execute(predictions.delete())
            conn.execute(prediction_runs.delete())
        for current in ("auto", "batch", "log"):
            with pytest.raises(NotFoundError) as exc:
                project.monitor("churn", current=current)
            assert "predict churn --batch" in exc.value.hint
        assert project.counts()["monitor_runs"] == 0
    finally:
        project.close()


def test_the_prediction_log_in_daily_chunks_finds_the_day_a_shift_starts(
    trained_copy: Path,
) -> None:
    project = Project(trained_copy)
    try:
        mv, bundle = project.load_model("churn")
        run = latest_run(project.store, "churn")
        features = pd.read_parquet(project.artifacts.verified_path(run["features_sha256"]))
        features = features[bundle.feature_names]
        rng = np.random.default_rng(0)
        start = datetime(2025, 1, 6)
        rows = []
        for day in range(6):
            sample = features.sample(150, replace=True, random_state=day).copy()
            if day >= 4:  # from the fifth day on, users are much older
                sample["age"] = sample["age"] + 25
            scores = bundle.outputs(sample)[0]
            for i, (record, score) in enumerate(
                zip(sample.to_dict("records"), scores, strict=True)
            ):
                inputs = {k: (None if pd.isna(v) else v) for k, v in record.items()}
                rows.append(
                    {
                        "request_id": uuid.uuid4().hex,
                        "problem": "churn",
                        "model_version_id": mv.id,
                        "inputs": json.loads(json.dumps(inputs, default=float)),
                        "score": float(score),
                        "created_at": start + timedelta(days=day, minutes=int(rng.integers(600))),
                        "item_id": str(i),
                    }
                )
        with project.store.begin() as conn:
            conn.execute(prediction_log.insert(), rows)
        result = project.monitor("churn", current="log", chunk="day")
        assert result["current"]["source"] == "prediction_log"
        assert result["current"]["rows"] == len(rows)
        chunks = result["chunks"]
        assert [c["chunk"] for c in chunks] == [f"2025-01-{6 + d:02d}" for d in range(6)]
        assert [("age" in c["drifted"]) for c in chunks] == [False] * 4 + [True] * 2
        age = next(r for r in result["features"] if r["feature"] == "age")
        assert age["drifted"] is True
        assert any(q["check"] == "out_of_range" and q["column"] == "age" for q in result["quality"])
        # since: only the shifted days
        later = project.monitor("churn", current="log", since=start + timedelta(days=4))
        assert later["current"]["rows"] == 300
        with project.store.connect() as conn:
            stored = conn.execute(
                sa.select(monitor_runs.c.prediction_run_id).order_by(monitor_runs.c.id)
            ).scalars()
            assert list(stored) == [None, None]
    finally:
        project.close()


def test_project_drift_compares_spec_sources_and_files(trained_copy: Path, tmp_path) -> None:
    project = Project(trained_copy)
    try:
        same = project.drift("users", "users", exclude=["user_id"])
        assert same["drifted"] == [] and same["reference"]["source"] == "users"
        assert same["tested"] > 0
        with project.open_sources() as sources:
            users = sources.con.sql(f"SELECT * FROM {sources.view('users')}").df()
        shifted = users.assign(age=users["age"] * 1.5)
        shifted.to_parquet(tmp_path / "users.parquet")
        moved = project.drift("users", tmp_path / "users.parquet", exclude=["user_id"])
        assert "age" in moved["drifted"]
        assert moved["current"]["path"] == str(tmp_path / "users.parquet")
    finally:
        project.close()


def test_cli_monitor_problem_and_ad_hoc(trained_copy: Path, tmp_path) -> None:
    result = runner.invoke(app, ["monitor", "churn", "--project", str(trained_copy), "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["problem"] == "churn" and body["id"] >= 1

    rng = np.random.default_rng(1)
    pd.DataFrame({"x": rng.normal(0, 1, 500), "k": rng.choice(["a", "b"], 500)}).to_parquet(
        tmp_path / "a.parquet"
    )
    pd.DataFrame({"x": rng.normal(1, 1, 400), "k": rng.choice(["a", "b"], 400)}).to_csv(
        tmp_path / "b.csv", index=False
    )
    args = ["monitor", "--reference", str(tmp_path / "a.parquet"), "--current"]
    result = runner.invoke(
        app, [*args, str(tmp_path / "b.csv"), "--project", str(tmp_path), "--method", "x=psi",
              "--json"]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["drifted"] == ["x"]
    assert [r["method"] for r in body["features"]] == ["psi", "z"]
    text = runner.invoke(app, [*args, str(tmp_path / "b.csv"), "--project", str(tmp_path)])
    assert text.exit_code == 0 and "drift share 50%" in text.output

    bad = runner.invoke(app, ["monitor", "--reference", "a.parquet", "--project", str(tmp_path)])
    assert bad.exit_code != 0 and "needs both --reference and --current" in bad.output
    both = runner.invoke(
        app, ["monitor", "churn", *args[1:], "b.csv", "--project", str(trained_copy)]
    )
    assert both.exit_code != 0 and "not both" in both.output
    unknown = runner.invoke(
        app, [*args, str(tmp_path / "b.csv"), "--project", str(tmp_path), "--method", "x=t"]
    )
    assert unknown.exit_code != 0 and "unknown drift method 't'" in unknown.output
