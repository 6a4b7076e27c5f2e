"""Candidate algorithms and the preprocessing every one of them runs inside its pipeline."""

from __future__ import annotations

from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from ..features import FeatureColumn


def preprocessor(columns: list[FeatureColumn]) -> ColumnTransformer:
    """Impute (with missing indicators), one-hot encode categories (unseen ones ignored), scale.

    Fitted on the training split only, as part of the model pipeline."""
    numeric = [c.name for c in columns if c.kind == "number"]
    categorical = [c.name for c in columns if c.kind == "category"]
    steps = []
    if numeric:
        steps.append(
            (
                "number",
                make_pipeline(
                    SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
                    StandardScaler(),
                ),
                numeric,
            )
        )
    if categorical:
        steps.append(
            (
                "category",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="__missing__"),
                    OneHotEncoder(
                        handle_unknown="infrequent_if_exist",
                        max_categories=30,
                        sparse_output=False,
                    ),
                ),
                categorical,
            )
        )
    return ColumnTransformer(steps, remainder="drop", verbose_feature_names_out=False)


def make_estimator(algorithm: str, task: str, *, seed: int, threads: int):
    classify = task in ("binary", "multiclass")
    if algorithm == "baseline":
        return DummyClassifier(strategy="prior") if classify else DummyRegressor(strategy="mean")
    if algorithm == "logistic":
        return LogisticRegression(max_iter=2000, C=1.0) if classify else Ridge(alpha=1.0)
    if algorithm == "random_forest":
        cls = RandomForestClassifier if classify else RandomForestRegressor
        return cls(n_estimators=200, min_samples_leaf=5, n_jobs=threads, random_state=seed)
    if algorithm == "hist_gradient_boosting":
        cls = HistGradientBoostingClassifier if classify else HistGradientBoostingRegressor
        return cls(max_iter=200, learning_rate=0.08, random_state=seed)
    if algorithm == "lightgbm":
        from lightgbm import LGBMClassifier, LGBMRegressor

        cls = LGBMClassifier if classify else LGBMRegressor
        return cls(
            n_estimators=300,
            learning_rate=0.05,
            num_leaves=31,
            min_child_samples=20,
            subsample=0.8,
            subsample_freq=1,
            colsample_bytree=0.8,
            random_state=seed,
            n_jobs=threads,
            verbose=-1,
        )
    raise ValueError(f"unknown algorithm {algorithm!r}")


def make_pipeline_for(
    algorithm: str, task: str, columns: list[FeatureColumn], *, seed: int, threads: int
) -> Pipeline:
    return Pipeline(
        [
            ("prepare", preprocessor(columns)),
            ("model", make_estimator(algorithm, task, seed=seed, threads=threads)),
        ]
    )
