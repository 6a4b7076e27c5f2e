"""Confidence-based performance estimation (CBPE, as NannyML describes it) for calibrated binary
classifiers: before labels arrive, each score ``p`` is read as the probability that the row's
label is 1, so a chunk's expected confusion matrix is a sum of scores, and the expected
precision, recall, F1, accuracy and ROC-AUC follow from it.

Each estimate comes with an interval for the metric the labels will realise: the labels are
independent Bernoulli(p) draws, every metric is a function of a few sums of them (true
positives, false negatives; for ROC-AUC the rank sum of the positives and their count), and the
delta method gives its standard deviation. Only scores of a calibrated model mean this: the
estimate is made when the expected calibration error on the model's test data is below
``max_ece``. It cannot see a change in the relation between inputs and labels (concept drift):
the scores stay the same, so the estimate does too."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

ESTIMATED = ("roc_auc", "accuracy", "precision", "recall", "f1")


def expected_calibration_error(bins: list[dict]) -> float | None:
    """ECE from the reliability bins training stores (``metrics["calibration"]``): the
    row-weighted mean gap between the mean score and the positive rate of each bin."""
    rows = sum(int(b["rows"]) for b in bins)
    if not rows:
        return None
    gaps = sum(int(b["rows"]) * abs(b["mean_predicted"] - b["fraction_positive"]) for b in bins)
    return float(gaps / rows)


def estimate(scores: np.ndarray, threshold: float, level: float = 0.95) -> dict:
    """The expected metrics of one chunk (``{metric: value}``), each with its interval
    (``{metric}_low``/``_high``, the central ``level`` of the realised metric's distribution
    under Bernoulli(score) labels, normal approximation) and the expected confusion matrix."""
    p = np.clip(np.asarray(scores, dtype=float), 0.0, 1.0)
    n = len(p)
    out: dict = {"rows": n}
    if n == 0:
        return out
    z = float(stats.norm.ppf(0.5 + level / 2))
    positive = p >= threshold
    var = p * (1 - p)
    n_pos = int(positive.sum())
    a, va = float(p[positive].sum()), float(var[positive].sum())  # true positives
    b, vb = float(p[~positive].sum()), float(var[~positive].sum())  # false negatives
    out["confusion"] = {"tp": a, "fp": n_pos - a, "fn": b, "tn": (n - n_pos) - b}
    figures: dict[str, tuple[float | None, float]] = {
        "accuracy": ((a + (n - n_pos) - b) / n, (va + vb) / n**2),
        "precision": (a / n_pos, va / n_pos**2) if n_pos else (None, 0.0),
        "recall": (
            (a / (a + b), (b**2 * va + a**2 * vb) / (a + b) ** 4) if a + b > 0 else (None, 0.0)
        ),
    }
    den = n_pos + a + b
    figures["f1"] = (
        (2 * a / den, (4 * (n_pos + b) ** 2 * va + 4 * a**2 * vb) / den**4)
        if den > 0
        else (None, 0.0)
    )
    figures["roc_auc"] = _auc(p, var)
    for name in ESTIMATED:
        value, variance = figures[name]
        out[name] = value
        half = z * math.sqrt(max(variance, 0.0)) if value is not None else None
        out[f"{name}_low"] = None if half is None else max(value - half, 0.0)
        out[f"{name}_high"] = None if half is None else min(value + half, 1.0)
    return out


def _auc(p: np.ndarray, var: np.ndarray) -> tuple[float | None, float]:
    """Expected ROC-AUC as NannyML estimates it (the ROC curve of expected true and false
    positive rates: sum over pairs of p_i (1 - p_j) with score_i > score_j, ties half, over
    sum(p) sum(1 - p)), and the delta-method variance of the realised AUC written as
    ``(S - N1 (N1 + 1) / 2) / (N1 (n - N1))`` with ``S`` the positives' rank sum."""
    n = len(p)
    m = float(p.sum())
    if n < 2 or m <= 0 or m >= n:
        return None, 0.0
    order = np.argsort(p, kind="stable")
    sp = p[order]
    ranks = stats.rankdata(sp)  # average ranks for ties
    negatives = 1 - sp
    # expected negatives strictly below each score, and tied with it (itself left out)
    _, start, counts = np.unique(sp, return_index=True, return_counts=True)
    below_group = np.concatenate([[0.0], np.cumsum(negatives)])[start]
    group_sum = np.add.reduceat(negatives, start)
    which = np.repeat(np.arange(len(start)), counts)
    tied = group_sum[which] - negatives
    expected_u = float(np.dot(sp, below_group[which] + 0.5 * tied))
    value = expected_u / (m * (n - m))
    v = var[order]
    s = float(np.dot(sp, ranks))
    var_s, var_n1, cov = float(np.dot(v, ranks**2)), float(v.sum()), float(np.dot(v, ranks))
    den = m * (n - m)
    d_s = 1 / den
    d_n1 = (-(m + 0.5) * den - (s - m * (m + 1) / 2) * (n - 2 * m)) / den**2
    variance = d_s**2 * var_s + d_n1**2 * var_n1 + 2 * d_s * d_n1 * cov
    return value, variance
