"""Item identity as learned numbers: per-item statistics fitted on the training split only.

A ranking item (or a forecast's entity) is a high-cardinality category: one-hot encoding it would
make thousands of sparse columns. Instead the pipeline learns, on the rows it is fitted on, how
often each item was seen (popularity) and its mean label (click-through rate, mean demand),
shrunk towards the overall mean for rarely seen items. Unseen items get the overall mean and a
count of zero."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin, TransformerMixin

FOLDS = 5
ITEM_GROUP = "item"
"""``FeatureColumn.group`` of the item-identity column a model adds to its inputs."""


def _keys(values) -> np.ndarray:
    """Item keys as strings; missing values as one shared key."""
    series = values.iloc[:, 0] if isinstance(values, pd.DataFrame) else pd.Series(values.ravel())
    return series.astype(object).where(series.notna(), "__missing__").astype(str).to_numpy()


class _ItemTable:
    def __init__(self, keys: np.ndarray, y: np.ndarray, prior: float) -> None:
        y = np.asarray(y, dtype=float)
        frame = pd.DataFrame({"key": keys, "y": y}).groupby("key", sort=True)["y"]
        self.count = frame.count()
        self.total = frame.sum()
        self.mean = float(y.mean()) if len(y) else 0.0
        self.prior = prior

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        count = self.count.reindex(keys).fillna(0.0).to_numpy(dtype=float)
        total = self.total.reindex(keys).fillna(0.0).to_numpy(dtype=float)
        return count, total

    def smoothed(self, count: np.ndarray, total: np.ndarray) -> np.ndarray:
        return (total + self.prior * self.mean) / (count + self.prior)


class ItemStats(TransformerMixin, BaseEstimator):
    """Two numbers per item: ``log1p(times seen in training)`` and the smoothed mean label.

    ``fit_transform`` (training rows) computes each row's numbers out of fold (5 folds), so a
    model cannot learn the label back from them; ``transform`` (new rows) uses every training
    row.
    """

    def __init__(self, prior: float = 20.0) -> None:
        self.prior = prior

    def fit(self, X, y=None):
        if y is None:
            raise ValueError("ItemStats learns from the label: fit it with y")
        self.table_ = _ItemTable(_keys(X), np.asarray(y, dtype=float), self.prior)
        self.n_features_in_ = 1
        return self

    def transform(self, X) -> np.ndarray:
        count, total = self.table_.lookup(_keys(X))
        return np.column_stack([np.log1p(count), self.table_.smoothed(count, total)])

    def fit_transform(self, X, y=None, **_params) -> np.ndarray:
        # Out-of-fold for the training rows (as scikit-learn's TargetEncoder): each row's
        # statistics come from the other folds, so a model cannot read its label back (a
        # leave-one-out mean would give it away: lower exactly when the row's label is 1).
        self.fit(X, y)
        keys = _keys(X)
        y = np.asarray(y, dtype=float)
        fold = np.random.default_rng(0).permutation(len(keys)) % FOLDS
        out = np.empty((len(keys), 2))
        for f in range(FOLDS):
            inside = fold == f
            table = _ItemTable(keys[~inside], y[~inside], self.prior)
            count, total = table.lookup(keys[inside])
            out[inside, 0] = np.log1p(count * FOLDS / (FOLDS - 1))
            out[inside, 1] = table.smoothed(count, total)
        return out

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        name = input_features[0] if input_features is not None else "item"
        return np.asarray([f"{name}__seen", f"{name}__mean_label"], dtype=object)


class ItemMean(RegressorMixin, BaseEstimator):
    """Baseline: each item's smoothed mean label on the training rows (popularity / click-through
    rate for ranking, mean demand for a forecast); the overall mean for an unseen item."""

    def __init__(self, column: str = "item", prior: float = 20.0) -> None:
        self.column = column
        self.prior = prior

    def fit(self, X: pd.DataFrame, y, **_params):
        self.table_ = _ItemTable(_keys(X[[self.column]]), np.asarray(y, dtype=float), self.prior)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        count, total = self.table_.lookup(_keys(X[[self.column]]))
        return self.table_.smoothed(count, total)
