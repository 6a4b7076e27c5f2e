"""Performance over time: realised metrics per chunk from feedback on the prediction log and from
the label definition for batch runs (against training's test metrics, drops flagged), and CBPE
estimates before labels arrive (equal to the realised metrics within simulation error when the
labels follow the scores; blind to a broken relationship; refused for an uncalibrated model)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from cycleml import Project
from cycleml.batch import latest_run
from cycleml.monitor._cbpe import ESTIMATED, estimate, expected_calibration_error
from cycleml.monitor._performance import Chunk, PerformanceOptions, performance
from cycleml.serve._collect import Collector
from cycleml.store.tables import monitor_runs, prediction_log
from cycleml.train._metrics import calibration_bins, classification_metrics

THRESHOLD = 0.3


def _realised(labels: np.ndarray, scores: np.ndarray) -> dict:
    return classification_metrics(labels, scores, THRESHOLD)


def test_cbpe_equals_the_realised_metrics_when_labels_follow_the_scores() -> None:
    rng = np.random.default_rng(11)
    errors = {m: [] for m in ESTIMATED}
    inside = {m: [] for m in ESTIMATED}
    for _ in range(200):
        scores = rng.beta(2, 5, size=int(rng.integers(400, 1200)))
        labels = (rng.random(len(scores)) < scores).astype(int)
        guess = estimate(scores, THRESHOLD)
        real = _realised(labels, scores)
        for m in ESTIMATED:
            errors[m].append(real[m] - guess[m])
            inside[m].append(guess[f"{m}_low"] <= real[m] <= guess[f"{m}_high"])
    for m in ESTIMATED:
        assert np.mean(np.abs(errors[m])) < 0.03, m
        assert abs(np.mean(errors[m])) < 0.006, m  # no bias beyond simulation error
        # the 95% interval holds the realised value at about the nominal rate
        assert 0.90 <= np.mean(inside[m]) <= 0.99, (m, np.mean(inside[m]))


def test_cbpe_expected_confusion_is_the_sum_of_scores() -> None:
    scores = np.array([0.9, 0.8, 0.35, 0.2, 0.1, 0.05])
    guess = estimate(scores, THRESHOLD)
    assert guess["confusion"]["tp"] == pytest.approx(0.9 + 0.8 + 0.35)
    assert guess["confusion"]["fp"] == pytest.approx(0.1 + 0.2 + 0.65)
    assert guess["confusion"]["fn"] == pytest.approx(0.2 + 0.1 + 0.05)
    assert guess["precision"] == pytest.approx(2.05 / 3)
    assert guess["recall"] == pytest.approx(2.05 / 2.4)
    # NannyML's estimated ROC-AUC: pairs (i above j) weighted p_i (1 - p_j) over sum p sum(1-p)
    pairs = sum(
        scores[i] * (1 - scores[j]) for i in range(6) for j in range(6) if scores[i] > scores[j]
    )
    assert guess["roc_auc"] == pytest.approx(pairs / (scores.sum() * (1 - scores).sum()))


def _reference(scores: np.ndarray, labels: np.ndarray) -> dict:
    return classification_metrics(labels, scores, THRESHOLD)


def test_a_broken_relationship_drops_the_realised_metric_but_not_the_estimate() -> None:
    rng = np.random.default_rng(3)
    ref_scores = rng.beta(2, 5, 5000)
    reference = _reference(ref_scores, (rng.random(5000) < ref_scores).astype(int))
    chunks = []
    for day in range(4):
        scores = rng.beta(2, 5, 3000)
        labels = (rng.random(3000) < scores).astype(float)
        if day >= 2:  # concept drift: the labels of a segment flip, the inputs do not move
            segment = np.arange(3000) < 1500
            labels[segment] = 1 - labels[segment]
        chunks.append(Chunk(datetime(2026, 1, 1 + day), datetime(2026, 1, 2 + day), scores, labels))
    result = performance(
        "binary",
        chunks,
        reference,
        THRESHOLD,
        PerformanceOptions(tolerance=0.05),
        source="prediction_log",
        labels_from="feedback",
    )
    assert result["estimated_status"] == "estimated"
    for entry in result["chunks"]:
        auc = entry["drop"]["roc_auc"]
        assert auc["estimated_dropped"] is False
        assert entry["estimated"]["roc_auc"] == pytest.approx(reference["roc_auc"], abs=0.03)
    early, late = result["chunks"][:2], result["chunks"][2:]
    assert all(not e["drop"]["roc_auc"]["dropped"] for e in early)
    assert all(e["drop"]["roc_auc"]["dropped"] for e in late)
    assert all("roc_auc" in e["dropped"] for e in late)
    for entry in late:
        assert entry["realised"]["roc_auc"] < entry["estimated"]["roc_auc_low"]


def test_an_uncalibrated_model_is_not_estimated() -> None:
    rng = np.random.default_rng(5)
    scores = rng.beta(2, 5, 4000)
    labels = (rng.random(4000) < scores**3).astype(int)  # scores far above the positive rate
    reference = _reference(scores, labels)
    ece = expected_calibration_error(calibration_bins(labels, scores))
    assert ece > 0.05
    chunk = Chunk(datetime(2026, 1, 1), datetime(2026, 1, 2), scores[:500], np.full(500, np.nan))
    result = performance(
        "binary",
        [chunk],
        reference,
        THRESHOLD,
        PerformanceOptions(),
        source="prediction_log",
        labels_from="feedback",
    )
    assert result["estimated_status"] == f"not estimated: model not calibrated (ECE {ece:.3f} " + (
        "on its test data, above monitoring.performance.max_ece 0.05)"
    )
    assert result["chunks"][0]["estimated"] is None
    assert result["chunks"][0]["realised"] is None
    assert result["chunks"][0]["realised_note"] == "no labels yet"
    assert result["realised_status"] == "no labels yet"


def _log_rows(project: Project, days: int, per_day: int, start: datetime) -> list[dict]:
    """Log rows of the production model: batch features resampled, scored by the model."""
    mv, bundle = project.load_model("churn")
    run = latest_run(project.store, "churn")
    features = pd.read_parquet(project.artifacts.verified_path(run["features_sha256"]))
    features = features[["user_id", *bundle.feature_names]]
    rows = []
    for day in range(days):
        sample = features.sample(per_day, replace=True, random_state=day)
        scores = bundle.outputs(sample[bundle.feature_names])[0]
        request = uuid.uuid4().hex
        for i, (record, score) in enumerate(zip(sample.to_dict("records"), scores, strict=True)):
            entity = record.pop("user_id")
            inputs = {k: (None if pd.isna(v) else v) for k, v in record.items()}
            rows.append(
                {
                    "request_id": request,
                    "problem": "churn",
                    "model_version_id": mv.id,
                    "entity": entity,
                    "inputs": json.loads(json.dumps(inputs, default=float)),
                    "score": float(score),
                    "created_at": start + timedelta(days=day, minutes=i),
                    "item_id": str(i),
                }
            )
    return rows


def test_realised_performance_from_feedback_on_the_log(trained_copy: Path) -> None:
    project = Project(trained_copy)
    try:
        start = datetime(2026, 6, 2)
        rows = _log_rows(project, 3, 120, start)
        with project.store.begin() as conn:
            conn.execute(prediction_log.insert(), rows)
        rng = np.random.default_rng(0)
        truth = {}
        items = []
        for row in rows[:100]:  # day 1: 100 labels by request and item
            label = int(rng.random() < row["score"])
            truth[(row["request_id"], row["item_id"])] = label
            items.append({"request_id": row["request_id"], "id": row["item_id"], "label": label})
        for row in rows[120:130]:  # day 2: 10 labels, too few
            items.append({"request_id": row["request_id"], "id": row["item_id"], "label": 1})
        # an entity label: it names the entity's latest logged prediction (a day-3 row)
        entity = rows[245]["entity"]
        items.append({"entity": entity, "label": 1})
        Collector(project).record_feedback("churn", items)

        result = project.monitor("churn", current="log", chunk="day")
        perf = result["performance"]
        assert perf["source"] == "prediction_log" and perf["labels_from"] == "feedback"
        mv, _ = project.load_model("churn")
        assert perf["reference"]["roc_auc"] == mv.metrics["roc_auc"]
        chunks = perf["chunks"]
        assert [c["chunk"] for c in chunks] == ["2026-06-02", "2026-06-03", "2026-06-04"]
        assert [c["n"] for c in chunks] == [120, 120, 120]
        assert [c["n_labelled"] for c in chunks] == [100, 10, 1]

        labelled = rows[:100]
        y = np.array([truth[(r["request_id"], r["item_id"])] for r in labelled])
        scores = np.array([r["score"] for r in labelled])
        want = classification_metrics(y, scores, mv.threshold)
        for metric in ("roc_auc", "accuracy", "precision", "recall", "f1", "log_loss", "brier"):
            assert chunks[0]["realised"][metric] == pytest.approx(want[metric], rel=1e-12)
            drop = chunks[0]["drop"][metric]
            assert drop["training"] == mv.metrics[metric]
            assert drop["realised_change"] == pytest.approx(want[metric] - mv.metrics[metric])
        assert chunks[1]["realised"] is None
        assert chunks[1]["realised_note"].startswith("too few labels: 10 labelled rows")
        assert chunks[2]["realised"] is None
        # before labels: CBPE on every chunk (the demo model is calibrated)
        assert perf["estimated_status"] == "estimated"
        for chunk, lo in zip(chunks, (0, 120, 240), strict=True):
            day = np.array([r["score"] for r in rows[lo : lo + 120]])
            assert chunk["estimated"]["roc_auc"] == pytest.approx(
                estimate(day, mv.threshold)["roc_auc"]
            )
        # the labels known also give the target's drift
        assert result["target"]["current_rows"] == len(rows)
        assert result["target"]["statistic"] is not None
        assert result["target"]["current_null_rate"] == pytest.approx(1 - 111 / 360)
        with project.store.connect() as conn:
            stored = conn.execute(
                sa.select(monitor_runs.c.result).where(monitor_runs.c.id == result["id"])
            ).scalar_one()
        assert stored["performance"]["chunks"][0]["n_labelled"] == 100
        assert stored["drift_over_time"]["chunks"] == ["2026-06-02", "2026-06-03", "2026-06-04"]
    finally:
        project.close()


def _churn_labels(root: Path, as_of: datetime, entities: list[str]) -> np.ndarray:
    """The churn label by hand: no event of the user in [as_of, as_of + 30 days)."""
    events = pd.read_parquet(root / "data" / "events.parquet")
    window = events[(events["ts"] >= as_of) & (events["ts"] < as_of + timedelta(days=30))]
    active = set(window["user_id"].astype(str))
    return np.array([0 if e in active else 1 for e in entities])


def test_batch_runs_get_labels_from_the_label_definition_once_the_window_passed(
    trained_copy: Path,
) -> None:
    project = Project(trained_copy)
    try:
        early = datetime(2026, 4, 1)
        project.predict_batch("churn", as_of=early)
        mv, _ = project.load_model("churn")
        result = project.monitor("churn", current="batch")
        perf = result["performance"]
        assert perf["source"] == "batch" and perf["labels_from"] == "label definition"
        runs = perf["chunks"]
        assert [c["start"] for c in runs] == [early.isoformat(), "2026-06-01T00:00:00"]
        first, last = runs
        assert first["n_labelled"] == first["n"] > 0
        from cycleml.store.tables import predictions

        with project.store.connect() as conn:
            scored = pd.DataFrame(
                conn.execute(
                    sa.select(predictions.c.entity, predictions.c.score).where(
                        predictions.c.as_of == early
                    )
                ).all(),
                columns=["entity", "score"],
            )
        y = _churn_labels(trained_copy, early, list(scored["entity"]))
        want = classification_metrics(y, scored["score"].to_numpy(), mv.threshold)
        assert first["realised"]["roc_auc"] == pytest.approx(want["roc_auc"], rel=1e-12)
        assert first["realised"]["recall"] == pytest.approx(want["recall"], rel=1e-12)
        # the latest run's window has not passed: no labels yet, said so, not an error
        assert last["realised"] is None and last["n_labelled"] == 0
        assert last["realised_note"].startswith("no labels yet: the 30-day label window")
        assert last["estimated"]["rows"] == last["n"]
        html = trained_copy / "drift.html"
        project.monitor("churn", current="batch", html=html)
        text = html.read_text()
        assert "Performance over time" in text and "performance-chart" in text
    finally:
        project.close()


def test_regression_chunks_realise_errors_and_flag_a_relative_rise() -> None:
    rng = np.random.default_rng(8)
    reference = {"mae": 1.0, "rmse": 1.25, "r2": 0.8, "rows": 1000}
    chunks = []
    for day, noise in enumerate((1.0, 1.0, 1.5)):
        truth = rng.normal(10, 3, 800)
        predicted = truth + rng.normal(0, noise * 1.25, 800)
        labels = truth.copy()
        labels[600:] = np.nan  # the last 200 rows have no label yet
        chunks.append(
            Chunk(datetime(2026, 2, 1 + day), datetime(2026, 2, 2 + day), predicted, labels)
        )
    result = performance(
        "regression",
        chunks,
        reference,
        None,
        PerformanceOptions(tolerance=0.1),
        source="prediction_log",
        labels_from="feedback",
    )
    assert result["estimated_status"].startswith("not estimated: CBPE applies to binary")
    for entry, chunk in zip(result["chunks"], chunks, strict=True):
        assert entry["n"] == 800 and entry["n_labelled"] == 600
        err = chunk.scores[:600] - chunk.labels[:600]
        assert entry["realised"]["mae"] == pytest.approx(np.abs(err).mean())
        assert entry["realised"]["rmse"] == pytest.approx(np.sqrt((err**2).mean()))
        assert entry["estimated"] is None
        # an error metric drops when it rose more than 10% above the training value
        want = entry["realised"]["rmse"] > 1.25 * 1.1
        assert entry["drop"]["rmse"]["dropped"] is want
    assert [("rmse" in e["dropped"]) for e in result["chunks"]] == [False, False, True]


def test_performance_settings_come_from_the_spec() -> None:
    from pydantic import ValidationError

    from cycleml.spec._models import MonitoringSpec

    spec = MonitoringSpec.model_validate(
        {"performance": {"tolerance": 0.2, "min_labels": 5, "max_ece": 0.1}, "chunk": "500"}
    )
    options = PerformanceOptions.from_spec(spec)
    assert (options.tolerance, options.min_labels, options.max_ece) == (0.2, 5, 0.1)
    assert options.estimate is True and spec.chunk == 500
    assert PerformanceOptions.from_spec(MonitoringSpec()) == PerformanceOptions()
    with pytest.raises(ValidationError):
        MonitoringSpec.model_validate({"performance": {"tolerence": 0.2}})
