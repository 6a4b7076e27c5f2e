"""Evaluation metrics and the decision threshold chosen to meet the problem's goal."""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm


def classification_metrics(y_true: np.ndarray, score: np.ndarray, threshold: float) -> dict:
    y_true = np.asarray(y_true).astype(int)
    predicted = (score >= threshold).astype(int)
    both = len(np.unique(y_true)) == 2
    clipped = np.clip(score, 1e-7, 1 - 1e-7)
    tn, fp, fn, tp = skm.confusion_matrix(y_true, predicted, labels=[0, 1]).ravel()
    return {
        "rows": int(len(y_true)),
        "positive_rate": float(y_true.mean()) if len(y_true) else None,
        "roc_auc": float(skm.roc_auc_score(y_true, score)) if both else None,
        "pr_auc": float(skm.average_precision_score(y_true, score)) if both else None,
        "log_loss": float(skm.log_loss(y_true, clipped, labels=[0, 1])),
        "brier": float(skm.brier_score_loss(y_true, score)),
        "threshold": float(threshold),
        "precision": float(skm.precision_score(y_true, predicted, zero_division=0)),
        "recall": float(skm.recall_score(y_true, predicted, zero_division=0)),
        "f1": float(skm.f1_score(y_true, predicted, zero_division=0)),
        "accuracy": float(skm.accuracy_score(y_true, predicted)),
        "confusion": {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)},
    }


def regression_metrics(y_true: np.ndarray, predicted: np.ndarray) -> dict:
    return {
        "rows": int(len(y_true)),
        "mae": float(skm.mean_absolute_error(y_true, predicted)),
        "rmse": float(np.sqrt(skm.mean_squared_error(y_true, predicted))),
        "r2": float(skm.r2_score(y_true, predicted)),
    }


def choose_threshold(
    y_true: np.ndarray, score: np.ndarray, metric: str, goal: float | None
) -> tuple[float, str]:
    """The decision threshold, and a sentence saying how it was chosen.

    recall goal -> the highest threshold that still reaches that recall; precision goal -> the
    lowest threshold that reaches that precision; otherwise the threshold that maximises F1."""
    y_true = np.asarray(y_true).astype(int)
    if len(np.unique(y_true)) < 2:
        return 0.5, "0.5 (the validation split has one class only)"
    precision, recall, thresholds = skm.precision_recall_curve(y_true, score)
    precision, recall = precision[:-1], recall[:-1]
    if metric == "recall" and goal is not None:
        ok = np.flatnonzero(recall >= goal)
        if len(ok):
            best = ok[np.argmax(thresholds[ok])]
            return float(
                thresholds[best]
            ), f"highest threshold with recall >= {goal:g} on validation"
    if metric == "precision" and goal is not None:
        ok = np.flatnonzero(precision >= goal)
        if len(ok):
            best = ok[np.argmin(thresholds[ok])]
            return float(
                thresholds[best]
            ), f"lowest threshold with precision >= {goal:g} on validation"
    f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall + 1e-12), 0)
    best = int(np.argmax(f1))
    note = "threshold that maximises F1 on validation"
    if goal is not None and metric in ("recall", "precision"):
        note += f" (the {metric} goal {goal:g} cannot be reached)"
    return float(thresholds[best]), note
