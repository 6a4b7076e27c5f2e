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
        "calibration": calibration_bins(y_true, score),
    }


def regression_metrics(y_true: np.ndarray, predicted: np.ndarray) -> dict:
    """MAE, RMSE, R2 and MAPE. MAPE is taken over the rows whose true value is not zero (a zero
    would divide by zero); ``mape_rows`` says how many that was, and MAPE is None when none."""
    y_true = np.asarray(y_true, dtype=float)
    predicted = np.asarray(predicted, dtype=float)
    nonzero = y_true != 0
    mape = (
        float(skm.mean_absolute_percentage_error(y_true[nonzero], predicted[nonzero]))
        if nonzero.any()
        else None
    )
    return {
        "rows": int(len(y_true)),
        "mae": float(skm.mean_absolute_error(y_true, predicted)),
        "rmse": float(np.sqrt(skm.mean_squared_error(y_true, predicted))),
        "r2": float(skm.r2_score(y_true, predicted)) if len(y_true) > 1 else None,
        "mape": mape,
        "mape_rows": int(nonzero.sum()),
    }


def calibration_bins(y_true: np.ndarray, score: np.ndarray, bins: int = 10) -> list[dict]:
    """Reliability curve: for each of ``bins`` equal-width score bins holding rows, the mean
    predicted probability, the observed positive rate and the row count."""
    y_true = np.asarray(y_true).astype(int)
    score = np.asarray(score, dtype=float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.searchsorted(edges[1:-1], score)  # as sklearn.calibration_curve bins
    out = []
    for b in range(bins):
        mask = which == b
        if mask.any():
            out.append(
                {
                    "low": float(edges[b]),
                    "high": float(edges[b + 1]),
                    "mean_predicted": float(score[mask].mean()),
                    "fraction_positive": float(y_true[mask].mean()),
                    "rows": int(mask.sum()),
                }
            )
    return out


def curves(y_true: np.ndarray, score: np.ndarray, points: int = 200) -> dict:
    """ROC and precision-recall curves (thinned to about ``points`` points each) for charts."""
    y_true = np.asarray(y_true).astype(int)
    if len(np.unique(y_true)) < 2:
        return {}
    fpr, tpr, _ = skm.roc_curve(y_true, score)
    precision, recall, _ = skm.precision_recall_curve(y_true, score)

    def thin(*arrays):
        step = max(1, len(arrays[0]) // points)
        return [np.r_[a[::step], a[-1]].round(5).tolist() for a in arrays]

    fpr, tpr = thin(fpr, tpr)
    precision, recall = thin(precision, recall)
    return {"roc": {"fpr": fpr, "tpr": tpr}, "pr": {"precision": precision, "recall": recall}}


def segment_metrics(
    segments: np.ndarray,
    y_true: np.ndarray,
    score: np.ndarray,
    task: str,
    threshold: float | None,
    classes: list | None = None,
    groups: np.ndarray | None = None,
    k: int = 10,
) -> list[dict]:
    """The test metrics again for each value of the segment column (missing values as None).
    Ranking (``groups``: each row's group) ranks each segment's rows within their groups."""
    segments = np.asarray(segments, dtype=object)
    keys = [None if v is None or v != v else v for v in segments]  # NaN != NaN
    out = []
    for value in sorted(set(keys), key=lambda v: (v is None, str(v))):
        mask = np.array([k == value if value is not None else k is None for k in keys])
        if task == "binary":
            m = classification_metrics(y_true[mask], score[mask], threshold or 0.5)
        elif task == "multiclass":
            m = multiclass_metrics(y_true[mask], score[mask], classes or [])
        elif task == "ranking":
            from ._ranking import ranking_metrics

            m = ranking_metrics(y_true[mask], score[mask], np.asarray(groups)[mask], k)
        else:
            m = regression_metrics(y_true[mask], score[mask])
        out.append({"segment": None if value is None else str(value), **m})
    return out


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


# -- multiclass ---------------------------------------------------------------------------------


def ovr_roc_auc(y_true: np.ndarray, proba: np.ndarray) -> float | None:
    """Macro one-vs-rest ROC-AUC over the classes that occur (with some other class) in
    ``y_true``: scikit-learn's ``roc_auc_score(multi_class="ovr")`` when every class occurs."""
    y_true = np.asarray(y_true).astype(int)
    values = [
        skm.roc_auc_score(y_true == c, proba[:, c])
        for c in range(proba.shape[1])
        if 0 < (y_true == c).sum() < len(y_true)
    ]
    return float(np.mean(values)) if values else None


def multiclass_metrics(y_true: np.ndarray, proba: np.ndarray, classes: list) -> dict:
    """Metrics of class probabilities ``proba`` (one column per class code 0..K-1) against class
    codes ``y_true``; ``classes`` names the codes (the class values as in the data)."""
    y_true = np.asarray(y_true).astype(int)
    codes = list(range(len(classes)))
    predicted = np.argmax(proba, axis=1)
    clipped = np.clip(proba, 1e-15, 1.0)
    clipped = clipped / clipped.sum(axis=1, keepdims=True)
    precision, recall, _, support = skm.precision_recall_fscore_support(
        y_true, predicted, labels=codes, zero_division=0
    )
    return {
        "rows": int(len(y_true)),
        "classes": len(classes),
        "accuracy": float(skm.accuracy_score(y_true, predicted)),
        "f1_macro": float(
            skm.f1_score(y_true, predicted, labels=codes, average="macro", zero_division=0)
        ),
        "f1_weighted": float(
            skm.f1_score(y_true, predicted, labels=codes, average="weighted", zero_division=0)
        ),
        "roc_auc_ovr": ovr_roc_auc(y_true, proba),
        "log_loss": float(skm.log_loss(y_true, clipped, labels=codes)) if len(y_true) else None,
        "confusion": {
            "labels": [str(c) for c in classes],
            "matrix": skm.confusion_matrix(y_true, predicted, labels=codes).tolist(),
        },
        "per_class": {
            str(c): {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "support": int(support[i]),
            }
            for i, c in enumerate(classes)
        },
    }
