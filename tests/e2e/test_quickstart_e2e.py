"""End to end: `cycleml quickstart` runs every lifecycle stage on the demo product."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

STAGES = ("profile", "dataset", "train", "predict", "serve", "experiment", "monitor")


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "COLUMNS": "120"}
    return subprocess.run(
        [sys.executable, "-m", "cycleml", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_quickstart_json_has_every_stage_and_consistent_lineage(tmp_path: Path) -> None:
    proc = _run(["quickstart", "--dir", "qs", "--users", "900", "--json"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    for stage in STAGES:
        assert isinstance(result[stage], dict) and result[stage], stage

    root = tmp_path / "qs"
    assert (root / "cycleml.yaml").is_file()
    assert Path(result["report"]).is_file()
    assert Path(result["train"]["report"]).is_file()

    # Profile: the four demo tables, with their real row counts.
    rows = result["profile"]["rows"]
    assert set(rows) == {"users", "events", "products", "impressions"}
    assert rows["users"] == 900
    assert rows["events"] == len(pd.read_parquet(root / "data" / "events.parquet"))

    # Dataset: weekly cutoffs, both classes present.
    dataset = result["dataset"]
    assert dataset["cutoffs"] >= 20
    assert 0.02 < dataset["positive_rate"] < 0.8

    # Train: at least two candidates beyond the baseline, the chosen one beats it.
    train = result["train"]
    assert len(train["candidates"]) >= 3 and "baseline" in train["candidates"]
    assert train["roc_auc"] > train["baseline_roc_auc"] + 0.1
    assert train["stage"] == "production"

    # Predict: one row per scored user in the store's predictions table, as of the data end.
    engine = sa.create_engine(f"sqlite:///{root / '.cycleml' / 'store.db'}")
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT count(*) FROM predictions")).scalar()
        model_row = conn.execute(sa.text("SELECT id, dataset_version_id FROM model_versions")).one()
        pred_models = (
            conn.execute(sa.text("SELECT DISTINCT model_version_id FROM predictions"))
            .scalars()
            .all()
        )
        monitor_row = conn.execute(
            sa.text("SELECT model_version_id, reference_dataset_id FROM monitor_runs")
        ).one()
        analyses = conn.execute(sa.text("SELECT count(*) FROM experiment_analyses")).scalar()
    engine.dispose()
    assert stored == result["predict"]["rows"] > 0
    assert model_row.dataset_version_id == dataset["version"]
    assert pred_models == [model_row.id]
    assert tuple(monitor_row) == (model_row.id, dataset["version"])
    assert analyses == 1

    # Serve: the online answer for a record equals the batch score for that user.
    serve = result["serve"]
    assert serve["status"] == 200 and serve["same_as_batch"] is True
    assert serve["model_version"] == train["model"]

    # Experiment: both variants, about half each, and a decision in words.
    experiment = result["experiment"]
    units = experiment["units"]
    assert set(units) == {"control", "treatment"}
    assert abs(units["control"] - units["treatment"]) < 0.25 * sum(units.values())
    assert experiment["decision"]

    # Monitor: one drift test per model feature.
    assert result["monitor"]["features"] == dataset["features"]
    assert 0.0 <= result["monitor"]["drift_share"] <= 1.0


def test_quickstart_prints_a_summary_per_stage(tmp_path: Path) -> None:
    proc = _run(["quickstart", "--dir", "qs", "--users", "500"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    for heading in (
        "1. profile",
        "2. dataset",
        "3. train",
        "4. predict",
        "5. serve",
        "6. experiment",
        "7. monitor",
        "Report:",
    ):
        assert heading in proc.stdout, heading
    assert "Traceback" not in proc.stderr
