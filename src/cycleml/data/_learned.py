"""Recorded cleaning steps that learn from data, as parts of the model pipeline.

``impute`` (mean, median, most frequent, constant), ``encode`` (frequency, or scikit-learn's
cross-fitted ``TargetEncoder``), ``log_transform`` (``log1p``) and ``exclude_features`` act on
the features that are a source column as such (the ``columns`` of an entity-table feature group).
They are transformers inside the pipeline, so they are fitted on the training split only and
saved with the model; batch and online scoring reuse the fitted values.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from ..spec._cleaning import PIPELINE_ACTIONS

LearnedSteps = Mapping[str, Sequence[Any]]
"""Feature name -> the recorded pipeline steps that act on it (in spec order)."""

_CURRENT: ContextVar[LearnedSteps | None] = ContextVar("cycleml_learned_steps", default=None)


def resolve_learned(spec, columns) -> dict[str, list]:
    """The pipeline steps of ``spec.cleaning`` that act on each feature in ``columns``."""
    out: dict[str, list] = {}
    steps = [s for s in spec.cleaning if s.action in PIPELINE_ACTIONS]
    if not steps:
        return out
    for col in columns:
        group = spec.features.get(col.group)
        if group is None or group.windows or col.name not in group.columns:
            continue
        mine = [s for s in steps if s.source == group.source and col.name in s.columns_used]
        if mine:
            out[col.name] = mine
    return out


@contextmanager
def learned_steps(steps: LearnedSteps) -> Iterator[None]:
    """Make ``steps`` the default of :func:`learned_transformers` while training runs."""
    token = _CURRENT.set(steps)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def learned_transformers(columns: list, steps: LearnedSteps | None = None) -> tuple[list, list]:
    """Split ``columns`` into those the default preprocessing handles and ColumnTransformer
    entries for those with recorded steps (excluded features get none)."""
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

    steps = _CURRENT.get() if steps is None else steps
    if not steps:
        return list(columns), []
    rest, entries = [], []
    for col in columns:
        mine = list(steps.get(col.name, ()))
        if not mine:
            rest.append(col)
            continue
        if any(s.action == "exclude_features" for s in mine):
            continue
        impute = next((s for s in reversed(mine) if s.action == "impute"), None)
        encode = next((s for s in reversed(mine) if s.action == "encode"), None)
        log = any(s.action == "log_transform" for s in mine)
        if col.kind == "number":
            strategy = impute.strategy if impute else "median"
            imputer = SimpleImputer(
                strategy=strategy,
                fill_value=_number(impute.fill_value) if impute else None,
                add_indicator=True,
                keep_empty_features=True,
            )
            parts = [imputer]
            if log:
                parts.append(FunctionTransformer(_log1p, feature_names_out="one-to-one"))
            parts.append(StandardScaler())
            entries.append((f"clean_{col.name}", make_pipeline(*parts), [col.name]))
            continue
        fill = impute.fill_value if impute and impute.strategy == "constant" else "__missing__"
        imputer = SimpleImputer(
            strategy="most_frequent"
            if impute and impute.strategy == "most_frequent"
            else "constant",
            fill_value=str(fill),
        )
        if encode is not None and encode.method == "frequency":
            tail = [FrequencyEncoder()]
        elif encode is not None:
            tail = [_target_encoder(), StandardScaler()]
        else:
            tail = [
                OneHotEncoder(
                    handle_unknown="infrequent_if_exist", max_categories=30, sparse_output=False
                )
            ]
        entries.append((f"clean_{col.name}", make_pipeline(imputer, *tail), [col.name]))
    return rest, entries


def _target_encoder():
    """scikit-learn's cross-fitted target encoder with a fixed shuffle (its `cv` takes a
    splitter from 1.9 on; before, `random_state`)."""
    import sklearn
    from sklearn.model_selection import KFold
    from sklearn.preprocessing import TargetEncoder

    major, minor = (int(p) for p in sklearn.__version__.split(".")[:2])
    if (major, minor) >= (1, 9):
        return TargetEncoder(cv=KFold(5, shuffle=True, random_state=0))
    return TargetEncoder(shuffle=True, random_state=0)


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _log1p(x):
    return np.log1p(np.clip(np.asarray(x, dtype=float), 0, None))


class FrequencyEncoder(TransformerMixin, BaseEstimator):
    """Each category's share of the training rows (0 for a category not seen in training)."""

    def fit(self, X, y=None):
        frame = pd.DataFrame(X)
        self.n_features_in_ = frame.shape[1]
        self.frequencies_ = [
            frame.iloc[:, i].astype(str).value_counts(normalize=True).to_dict()
            for i in range(frame.shape[1])
        ]
        if hasattr(X, "columns"):
            self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        return self

    def transform(self, X):
        frame = pd.DataFrame(X)
        out = np.zeros(frame.shape, dtype=float)
        for i, freq in enumerate(self.frequencies_):
            out[:, i] = frame.iloc[:, i].astype(str).map(freq).fillna(0.0).to_numpy(dtype=float)
        return out

    def get_feature_names_out(self, input_features=None):
        names = (
            input_features
            if input_features is not None
            else getattr(self, "feature_names_in_", [f"x{i}" for i in range(self.n_features_in_)])
        )
        return np.asarray([f"{n}_frequency" for n in names], dtype=object)
