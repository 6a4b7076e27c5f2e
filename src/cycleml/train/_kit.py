"""What differs between tasks when fitting, predicting and scoring rows of one training set."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from ._metrics import classification_metrics, multiclass_metrics, regression_metrics
from ._ranking import group_sizes, ranking_metrics

HORIZON_COLUMN = "horizon"

# selection keys: (name, higher is better)
_MULTICLASS_KEYS = {"accuracy": "accuracy", "f1": "f1_macro"}


def selection_key(task: str, metric) -> tuple[str, bool]:
    """The validation metric that picks the model (and that promotion compares); ``metric`` is
    the problem's metric name (or its ``MetricSpec``, whose ``k`` ranking reads)."""
    spec, metric = metric, getattr(metric, "name", metric)
    if task == "binary":
        return ("pr_auc", True) if metric == "pr_auc" else ("roc_auc", True)
    if task == "multiclass":
        return _MULTICLASS_KEYS.get(metric, "roc_auc_ovr"), True
    if task == "ranking":
        from ._ranking import ranking_key

        name, k = ranking_key(spec)
        return f"{name}@{k}", True
    if metric in ("mae", "rmse"):
        return metric, False
    return ("r2", True) if metric == "r2" else ("rmse", False)


def class_values(values: pd.Series) -> list:
    """The sorted distinct class values of a label, as JSON-friendly Python ints or strings."""
    distinct = pd.unique(values.dropna())
    if all(isinstance(v, int | np.integer | bool | np.bool_) for v in distinct):
        return sorted(int(v) for v in distinct)
    if all(isinstance(v, float | np.floating) and float(v).is_integer() for v in distinct):
        return sorted(int(v) for v in distinct)
    return sorted(str(v) for v in distinct)


def class_codes(values: pd.Series, classes: list) -> np.ndarray:
    """Each label value's index in ``classes`` (-1 for a value not among them)."""
    lookup = {c: i for i, c in enumerate(classes)}
    if classes and isinstance(classes[0], int):
        return np.array([lookup.get(int(v), -1) for v in values], dtype=int)
    return np.array([lookup.get(str(v), -1) for v in values], dtype=int)


def full_proba(pipe, x: pd.DataFrame, n_classes: int) -> np.ndarray:
    """Class probabilities with one column per class code, also for classes the model never
    saw in its training rows (probability 0)."""
    proba = pipe.predict_proba(x)
    seen = np.asarray(pipe.classes_, dtype=int)
    if len(seen) == n_classes and (seen == np.arange(n_classes)).all():
        return proba
    out = np.zeros((len(x), n_classes))
    out[:, seen] = proba
    return out


def is_ranker(pipe) -> bool:
    return type(pipe.steps[-1][1]).__name__ == "LGBMRanker"


@dataclass
class TaskKit:
    """Rows of one training set (``x``, ``y``) and how the task fits, predicts and scores them.

    ``y`` holds class codes (binary, multiclass), 0/1 clicks (ranking) or numbers. ``groups``
    (ranking) holds each row's group code; ``horizons`` (forecast) each row's horizon."""

    task: str
    key: str
    higher: bool
    x: pd.DataFrame
    y: np.ndarray
    classes: list | None = None
    groups: np.ndarray | None = None
    horizons: np.ndarray | None = None
    k: int = 10

    def fit(self, pipe, rows: np.ndarray, **fit_params):
        """Fit ``pipe`` on ``rows`` (ranking rows must be adjacent by group)."""
        x, y = self.x.iloc[rows], self.y[rows]
        if self.task == "ranking" and is_ranker(pipe):
            fit_params["model__group"] = group_sizes(self.groups[rows])
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning)
            pipe.fit(x, y, **fit_params)
        return pipe

    def predict(self, pipe, rows: np.ndarray, x: pd.DataFrame | None = None) -> np.ndarray:
        """Scores: positive-class probability (binary, and ranking classifiers), the class
        probability matrix (multiclass), or the prediction / relevance score."""
        x = self.x.iloc[rows] if x is None else x
        return predict_scores(pipe, x, self.task, len(self.classes or []))

    def value(self, rows: np.ndarray, predicted: np.ndarray) -> float | None:
        """The selection metric of predictions for ``rows``."""
        y = self.y[rows]
        if self.task == "ranking":
            return ranking_metrics(y, predicted, self.groups[rows], self.k)[self.key]
        return score(self.key, y, predicted)

    def scorable(self, rows: np.ndarray) -> bool:
        """Whether the selection metric is defined on ``rows`` (an AUC needs both classes)."""
        y = self.y[rows]
        if self.task == "binary":
            return len(np.unique(y)) == 2
        if self.task == "multiclass" and self.key == "roc_auc_ovr":
            return len(np.unique(y)) >= 2
        if self.task == "ranking":
            return bool((y > 0).any())
        return len(y) > 0

    def metrics(self, rows: np.ndarray, predicted: np.ndarray, threshold: float | None) -> dict:
        """Every test metric of the task for ``rows``."""
        y = self.y[rows]
        if self.task == "binary":
            return classification_metrics(y, predicted, threshold if threshold is not None else 0.5)
        if self.task == "multiclass":
            return multiclass_metrics(y, predicted, self.classes or [])
        if self.task == "ranking":
            out = ranking_metrics(y, predicted, self.groups[rows], self.k)
            both = len(np.unique(y)) == 2
            out["roc_auc"] = float(skm.roc_auc_score(y, predicted)) if both else None
            return out
        out = regression_metrics(y, predicted)
        if self.task == "forecast" and self.horizons is not None:
            h = self.horizons[rows]
            out["by_horizon"] = [
                {"horizon": int(v), **regression_metrics(y[h == v], predicted[h == v])}
                for v in np.unique(h)
            ]
        return out


def predict_scores(pipe, x: pd.DataFrame, task: str, n_classes: int = 0) -> np.ndarray:
    """Scores of a fitted pipeline for ``task`` (see :meth:`TaskKit.predict`)."""
    if task == "binary":
        return pipe.predict_proba(x)[:, 1]
    if task == "multiclass":
        return full_proba(pipe, x, n_classes)
    if task == "ranking" and hasattr(pipe, "predict_proba"):
        return pipe.predict_proba(x)[:, 1]
    return np.asarray(pipe.predict(x), dtype=float)


def score(key: str, y_true: np.ndarray, predicted: np.ndarray) -> float:
    """The selection metric ``key`` of predictions (scores for classifiers; the probability
    matrix for multiclass keys). Ranking keys need groups: see :meth:`TaskKit.value`."""
    if key == "roc_auc":
        return float(skm.roc_auc_score(y_true, predicted))
    if key == "pr_auc":
        return float(skm.average_precision_score(y_true, predicted))
    if key == "mae":
        return float(skm.mean_absolute_error(y_true, predicted))
    if key == "rmse":
        return float(np.sqrt(skm.mean_squared_error(y_true, predicted)))
    if key == "r2":
        return float(skm.r2_score(y_true, predicted))
    if key == "roc_auc_ovr":
        from ._metrics import ovr_roc_auc

        value = ovr_roc_auc(y_true, predicted)
        if value is None:
            raise ValueError("one class only: no one-vs-rest AUC")
        return value
    if key == "accuracy":
        return float(skm.accuracy_score(y_true, np.argmax(predicted, axis=1)))
    if key == "f1_macro":
        labels = list(range(predicted.shape[1]))
        return float(
            skm.f1_score(
                y_true,
                np.argmax(predicted, axis=1),
                labels=labels,
                average="macro",
                zero_division=0,
            )
        )
    raise ValueError(f"unknown selection metric {key!r}")
