"""Drift methods against SciPy; false alarms with no shift; known shifts detected; edge columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from cycleml.features import FeatureColumn
from cycleml.monitor import chi2_drift, drift_table, ks_drift

COLUMNS = [FeatureColumn("x", "g", "number"), FeatureColumn("plan", "g", "category")]
PLANS = np.array(["free", "basic", "pro"])


def _frame(rng, n: int, *, mean=0.0, sd=1.0, shares=(0.5, 0.3, 0.2), plans=PLANS) -> pd.DataFrame:
    return pd.DataFrame(
        {"x": rng.normal(mean, sd, n), "plan": rng.choice(plans, n, p=list(shares))}
    )


def test_ks_drift_equals_scipy_ks_2samp() -> None:
    rng = np.random.default_rng(1)
    ref = pd.Series(np.r_[rng.normal(0, 1, 700), [np.nan] * 20])
    cur = pd.Series(np.r_[rng.normal(0.1, 1.1, 500), [np.nan] * 5]).astype("Float64")
    got = ks_drift(ref, cur)
    want = stats.ks_2samp(ref.dropna().to_numpy(), cur.dropna().to_numpy(dtype=float))
    assert got["method"] == "ks"
    assert got["statistic"] == pytest.approx(want.statistic, abs=1e-12)
    assert got["p_value"] == pytest.approx(want.pvalue, rel=1e-9, abs=1e-15)
    # integers with nulls (pandas Int64) work the same
    ints = pd.Series([1, 2, None, 3, 5, 8] * 20, dtype="Int64")
    other = pd.Series([1, 1, 2, 3, 3, None] * 20, dtype="Int64")
    got = ks_drift(ints, other)
    want = stats.ks_2samp(ints.dropna().to_numpy(float), other.dropna().to_numpy(float))
    assert got["p_value"] == pytest.approx(want.pvalue, rel=1e-9)


def test_chi2_drift_equals_scipy_chi2_contingency_and_lists_new_categories() -> None:
    ref = pd.Series(["a"] * 120 + ["b"] * 60 + ["c"] * 20)
    cur = pd.Series(["a"] * 90 + ["b"] * 70 + ["c"] * 25 + ["d"] * 15 + [None] * 10)
    got = chi2_drift(ref, cur)
    # categories a, b, c, d and the missing value; rows: reference, current
    table = np.array([[120, 60, 20, 0, 0], [90, 70, 25, 15, 10]])
    want = stats.chi2_contingency(table)  # no 2x2 table: no continuity correction either way
    assert got["method"] == "chi2"
    assert got["statistic"] == pytest.approx(want.statistic, rel=1e-12)
    assert got["p_value"] == pytest.approx(want.pvalue, rel=1e-9)
    assert got["new_categories"] == ["d"]  # a missing value is not a new category
    # two categories: the plain chi-square of the 2 x 2 table (no Yates correction)
    two = chi2_drift(pd.Series(["a"] * 70 + ["b"] * 30), pd.Series(["a"] * 55 + ["b"] * 45))
    want = stats.chi2_contingency(np.array([[70, 30], [55, 45]]), correction=False)
    assert two["p_value"] == pytest.approx(want.pvalue, rel=1e-9)
    assert two["new_categories"] == []


def test_no_shift_false_alarms_stay_at_alpha() -> None:
    rng = np.random.default_rng(77)
    reps, alpha = 300, 0.05
    alarms = {"x": 0, "plan": 0}
    for _ in range(reps):
        rows = drift_table(_frame(rng, 300), _frame(rng, 200), COLUMNS, alpha=alpha)
        for row in rows:
            alarms[row["feature"]] += row["drifted"]
    bound = alpha + 3 * np.sqrt(alpha * (1 - alpha) / reps)  # about 0.088
    for feature, count in alarms.items():
        assert count / reps <= bound, (feature, count)


@pytest.mark.parametrize(
    ("current", "feature"),
    [
        ({"mean": 0.3}, "x"),
        ({"sd": 1.5}, "x"),
        ({"shares": (0.4, 0.3, 0.3)}, "plan"),
    ],
    ids=["mean-shift", "variance-shift", "category-shares"],
)
def test_known_shifts_are_detected(current: dict, feature: str) -> None:
    rng = np.random.default_rng(8)
    rows = drift_table(_frame(rng, 3000), _frame(rng, 2000, **current), COLUMNS, alpha=0.05)
    by_feature = {r["feature"]: r for r in rows}
    assert by_feature[feature]["drifted"] is True
    assert by_feature[feature]["p_value"] < 1e-4
    other = "plan" if feature == "x" else "x"
    assert by_feature[other]["p_value"] > 1e-4  # the unshifted column is not the one flagged


def test_a_new_category_is_detected_and_named() -> None:
    rng = np.random.default_rng(4)
    reference = _frame(rng, 3000)
    current = _frame(rng, 1000, plans=np.array(["free", "basic", "enterprise"]))
    rows = {r["feature"]: r for r in drift_table(reference, current, COLUMNS, alpha=0.05)}
    assert rows["plan"]["drifted"] is True
    assert rows["plan"]["new_categories"] == ["enterprise"]
    assert rows["plan"]["method"] == "chi2" and rows["x"]["method"] == "ks"


@pytest.mark.parametrize("side", ["reference", "current"])
def test_an_all_null_column_on_one_side_is_skipped(side: str) -> None:
    rng = np.random.default_rng(6)
    reference, current = _frame(rng, 500), _frame(rng, 500)
    target = reference if side == "reference" else current
    target["x"] = np.nan
    target["plan"] = None
    rows = {r["feature"]: r for r in drift_table(reference, current, COLUMNS, alpha=0.05)}
    for feature in ("x", "plan"):
        assert rows[feature]["skipped"] == "no values on one side"
        assert rows[feature]["p_value"] is None
        assert rows[feature]["drifted"] is False
    null_rate = rows["x"][f"{side}_null_rate"]
    assert null_rate == 1.0


def test_a_column_missing_on_one_side_is_skipped() -> None:
    rng = np.random.default_rng(6)
    reference, current = _frame(rng, 100), _frame(rng, 100).drop(columns=["plan"])
    rows = {r["feature"]: r for r in drift_table(reference, current, COLUMNS, alpha=0.05)}
    assert "missing" in rows["plan"]["skipped"] and rows["plan"]["drifted"] is False
    assert rows["x"]["p_value"] is not None
