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
from ._items import ITEM_GROUP, ItemMean, ItemStats


def preprocessor(columns: list[FeatureColumn], cleaning=None) -> ColumnTransformer:
    """Impute (with missing indicators), one-hot encode categories (unseen ones ignored), scale.

    Fitted on the training split only, as part of the model pipeline. ``cleaning`` maps feature
    names to their recorded learned cleaning steps (default: those of the training run, see
    :func:`cycleml.data._learned.learned_steps`)."""
    from ..data._learned import learned_transformers

    items = [c.name for c in columns if c.group == ITEM_GROUP]
    columns, learned = learned_transformers([c for c in columns if c.group != ITEM_GROUP], cleaning)
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
    steps.extend(learned)
    # item identity (ranking item, forecast entity): popularity and mean label learned on the
    # training rows, never one-hot (too many values)
    steps.extend((f"item_{name}", ItemStats(), [name]) for name in items)
    return ColumnTransformer(steps, remainder="drop", verbose_feature_names_out=False)


def make_estimator(algorithm: str, task: str, *, seed: int, threads: int, item: str | None = None):
    """The estimator of a candidate. Ranking: ``baseline`` is the item's click-through rate
    (``item`` names its column), ``lightgbm`` LambdaRank, the others binary classifiers of the
    click whose probability ranks. Forecast: the regressors, ``baseline`` the item's mean."""
    classify = task in ("binary", "multiclass", "ranking")
    if algorithm == "baseline" and task in ("ranking", "forecast") and item is not None:
        return ItemMean(column=item)
    if algorithm == "lightgbm" and task == "ranking":
        from lightgbm import LGBMRanker

        # Smaller trees than the classifier's: entity features are constant within a group,
        # so only their interactions with the item's statistics can help order it; deep trees
        # fit noise (measured on the demo's impressions: NDCG@10 0.64 with 31 leaves, 0.67+
        # with 7, the item baseline 0.67 on validation).
        return LGBMRanker(
            objective="lambdarank",
            random_state=seed,
            **RANKER_DEFAULTS,
            subsample_freq=1,
            n_jobs=threads,
            verbose=-1,
        )
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


RANKER_DEFAULTS = {
    "n_estimators": 150,
    "learning_rate": 0.05,
    "num_leaves": 7,
    "min_child_samples": 50,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "reg_lambda": 1.0,
}

TUNABLE = ("logistic", "random_forest", "hist_gradient_boosting", "lightgbm")


def search_space(trial, algorithm: str, task: str) -> dict:
    """Parameters an Optuna trial proposes for ``algorithm`` (keys are estimator parameters)."""
    classify = task in ("binary", "multiclass", "ranking")
    if algorithm == "logistic":
        if classify:
            return {"C": trial.suggest_float("C", 1e-3, 1e2, log=True)}
        return {"alpha": trial.suggest_float("alpha", 1e-3, 1e3, log=True)}
    if algorithm == "random_forest":
        return {
            "n_estimators": trial.suggest_int("n_estimators", 100, 400, step=50),
            "min_samples_leaf": trial.suggest_int("min_samples_leaf", 1, 30, log=True),
            "max_features": trial.suggest_float("max_features", 0.2, 1.0),
        }
    if algorithm == "hist_gradient_boosting":
        return {
            "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.3, log=True),
            "max_iter": trial.suggest_int("max_iter", 50, 500, log=True),
            "max_leaf_nodes": trial.suggest_int("max_leaf_nodes", 8, 64, log=True),
            "min_samples_leaf": trial.suggest_int("min_samples_leaf", 5, 100, log=True),
            "l2_regularization": trial.suggest_float("l2_regularization", 1e-6, 10.0, log=True),
        }
    if algorithm == "lightgbm":
        return {
            "n_estimators": trial.suggest_int("n_estimators", 50, 1000, log=True),
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
            "num_leaves": trial.suggest_int("num_leaves", 4, 128, log=True),
            "min_child_samples": trial.suggest_int("min_child_samples", 3, 100, log=True),
            "subsample": trial.suggest_float("subsample", 0.5, 1.0),
            "colsample_bytree": trial.suggest_float("colsample_bytree", 0.3, 1.0),
            "reg_lambda": trial.suggest_float("reg_lambda", 1e-8, 10.0, log=True),
        }
    raise ValueError(f"{algorithm!r} has no search space")


def make_pipeline_for(
    algorithm: str,
    task: str,
    columns: list[FeatureColumn],
    *,
    seed: int,
    threads: int,
    params: dict | None = None,
    cleaning=None,
) -> Pipeline:
    """``prepare`` (see :func:`preprocessor`; ``cleaning`` as there) then ``model``. The item
    baseline of ranking and forecast needs no preparation: its pipeline is ``model`` alone."""
    item = next((c.name for c in columns if c.group == ITEM_GROUP), None)
    model = make_estimator(algorithm, task, seed=seed, threads=threads, item=item)
    if params:
        model.set_params(**params)
    if isinstance(model, ItemMean):
        return Pipeline([("model", model)])
    return Pipeline([("prepare", preprocessor(columns, cleaning)), ("model", model)])
