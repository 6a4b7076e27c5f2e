"""`Project.monitor` on the trained demo: one row per feature, a stored run with lineage."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from scipy import stats

from cycleml import Project
from cycleml.batch import latest_run
from cycleml.errors import NotFoundError
from cycleml.features import get_dataset, load_dataset
from cycleml.store.tables import monitor_runs, prediction_runs, predictions


def test_monitor_returns_a_row_per_feature_and_stores_lineage(trained_copy: Path) -> None:
    project = Project(trained_copy)
    try:
        result = project.monitor("churn")
        mv, bundle = project.load_model("churn")
        run = latest_run(project.store, "churn")
        assert [r["feature"] for r in result["features"]] == bundle.feature_names
        kinds = {c.name: c.kind for c in bundle.columns}
        for row in result["features"]:
            assert row["method"] == ("ks" if kinds[row["feature"]] == "number" else "chi2")
            assert row["drifted"] == (row["p_value"] is not None and row["p_value"] < 0.05)
        assert result["model"] == mv.name
        assert result["current"]["prediction_run"] == run["id"]
        assert result["current"]["rows"] == run["rows"]
        assert result["drifted"] == [r["feature"] for r in result["features"] if r["drifted"]]
        tested = [r for r in result["features"] if r["p_value"] is not None]
        assert result["drift_share"] == pytest.approx(len(result["drifted"]) / len(tested))

        # one feature recomputed by hand from the same reference and current data
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
    finally:
        project.close()


def test_monitor_without_batch_predictions_hints_predict_batch(trained_copy: Path) -> None:
    project = Project(trained_copy)
    try:
        with project.store.begin() as conn:  # back to "trained, nothing scored yet"
            conn.execute(predictions.delete())
            conn.execute(prediction_runs.delete())
        with pytest.raises(NotFoundError) as exc:
            project.monitor("churn")
        assert "predict churn --batch" in exc.value.hint
        assert project.counts()["monitor_runs"] == 0
    finally:
        project.close()
