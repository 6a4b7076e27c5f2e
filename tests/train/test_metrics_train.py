"""Training metrics checked against scikit-learn: regression (MAPE guarded against zeros),
calibration bins, curves, and per-segment metrics."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve

from cycleml.train._metrics import (
    calibration_bins,
    classification_metrics,
    curves,
    regression_metrics,
    segment_metrics,
)


def test_regression_metrics_match_sklearn_and_mape_skips_zero_targets():
    rng = np.random.default_rng(1)
    y = rng.normal(10, 3, 300)
    y[:5] = 0.0
    pred = y + rng.normal(0, 1, 300)
    m = regression_metrics(y, pred)
    assert m["mae"] == pytest.approx(skm.mean_absolute_error(y, pred))
    assert m["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, pred)))
    assert m["r2"] == pytest.approx(skm.r2_score(y, pred))
    nz = y != 0
    assert m["mape"] == pytest.approx(skm.mean_absolute_percentage_error(y[nz], pred[nz]))
    assert m["mape_rows"] == 295
    assert np.isfinite(m["mape"])
    assert regression_metrics(np.zeros(4), np.ones(4))["mape"] is None


def test_calibration_bins_match_sklearn_calibration_curve():
    rng = np.random.default_rng(2)
    score = rng.uniform(0, 1, 2000)
    y = (rng.uniform(0, 1, 2000) < score).astype(int)
    bins = calibration_bins(y, score, bins=10)
    prob_true, prob_pred = calibration_curve(y, score, n_bins=10, strategy="uniform")
    np.testing.assert_allclose([b["fraction_positive"] for b in bins], prob_true)
    np.testing.assert_allclose([b["mean_predicted"] for b in bins], prob_pred)
    assert sum(b["rows"] for b in bins) == 2000
    # part of the classification metrics
    assert classification_metrics(y, score, 0.5)["calibration"] == bins


def test_curves_end_at_the_corners_and_pr_auc_agrees():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 500)
    score = np.clip(y * 0.3 + rng.uniform(0, 0.7, 500), 0, 1)
    c = curves(y, score)
    assert c["roc"]["fpr"][0] == 0 and c["roc"]["tpr"][-1] == 1
    fpr, tpr, _ = skm.roc_curve(y, score)
    assert np.trapezoid(c["roc"]["tpr"], c["roc"]["fpr"]) == pytest.approx(
        skm.roc_auc_score(y, score), abs=0.01
    )
    assert curves(np.zeros(5), np.linspace(0, 1, 5)) == {}


def test_segment_metrics_equal_metrics_of_each_group():
    rng = np.random.default_rng(4)
    seg = np.array(["free", "pro", None] * 200, dtype=object)
    y = rng.integers(0, 2, 600)
    score = rng.uniform(0, 1, 600)
    rows = segment_metrics(seg, y, score, "binary", 0.4)
    assert [r["segment"] for r in rows] == ["free", "pro", None]
    for r in rows:
        mask = np.array([s == r["segment"] for s in seg])
        assert r["rows"] == mask.sum()
        assert r["roc_auc"] == pytest.approx(skm.roc_auc_score(y[mask], score[mask]))
        assert r["recall"] == pytest.approx(skm.recall_score(y[mask], score[mask] >= 0.4))
    reg = segment_metrics(seg, y.astype(float), score, "regression", None)
    mask = seg == "pro"
    assert reg[1]["mae"] == pytest.approx(skm.mean_absolute_error(y[mask], score[mask]))
