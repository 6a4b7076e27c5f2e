"""Hyper-parameter tuning with Optuna inside a deadline: TPE with a fixed seed, cross-validation
folds on the training part, and the median pruner fed the running mean score after each fold."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from ..features import FeatureColumn
from ._candidates import make_pipeline_for, search_space

TrialCallback = Callable[[dict], None]

# The defaults of make_estimator, expressed in each search space, tried first so tuning starts
# from (and can only report something at least as good as) the untuned candidate.
_DEFAULTS = {
    "lightgbm": {
        "n_estimators": 300,
        "learning_rate": 0.05,
        "num_leaves": 31,
        "min_child_samples": 20,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "reg_lambda": 1e-8,
    },
    "hist_gradient_boosting": {
        "learning_rate": 0.08,
        "max_iter": 200,
        "max_leaf_nodes": 31,
        "min_samples_leaf": 20,
        "l2_regularization": 1e-6,
    },
}


@dataclass
class TuneResult:
    algorithm: str
    params: dict
    best_cv: float | None
    trials: int
    pruned: int
    seconds: float
    history: list[dict] = field(default_factory=list)


def score(key: str, y_true: np.ndarray, predicted: np.ndarray) -> float:
    """The selection metric ``key`` of predictions (scores for classifiers)."""
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
    raise ValueError(f"unknown selection metric {key!r}")


def predict_scores(pipe, x: pd.DataFrame, task: str) -> np.ndarray:
    if task == "binary":
        return pipe.predict_proba(x)[:, 1]
    return np.asarray(pipe.predict(x), dtype=float)


def fit_quietly(pipe, x: pd.DataFrame, y: np.ndarray):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning)
        pipe.fit(x, y)
    return pipe


def tune(
    algorithm: str,
    task: str,
    columns: list[FeatureColumn],
    x: pd.DataFrame,
    y: np.ndarray,
    folds: list[tuple[np.ndarray, np.ndarray]],
    *,
    key: str,
    higher: bool,
    seed: int,
    threads: int,
    deadline: float,
    trials: int | None = None,
    patience: int | None = None,
    on_trial: TrialCallback | None = None,
) -> TuneResult:
    """Search ``algorithm``'s parameters until ``deadline`` (a ``time.perf_counter()`` value),
    ``trials`` trials, or ``patience`` trials without improvement. ``x``/``y`` are indexed by
    the row positions in ``folds``."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.perf_counter()
    study = optuna.create_study(
        direction="maximize" if higher else "minimize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0),
    )
    if algorithm in _DEFAULTS:
        study.enqueue_trial(_DEFAULTS[algorithm])
    history: list[dict] = []

    def objective(trial) -> float:
        params = search_space(trial, algorithm, task)
        values = []
        for step, (train_rows, valid_rows) in enumerate(folds):
            if time.perf_counter() >= deadline:
                raise optuna.TrialPruned()  # out of time: this trial does not count
            pipe = make_pipeline_for(
                algorithm, task, columns, seed=seed, threads=threads, params=params
            )
            fit_quietly(pipe, x.iloc[train_rows], y[train_rows])
            y_valid = y[valid_rows]
            if task == "binary" and len(np.unique(y_valid)) < 2:
                continue  # a fold with one class cannot be scored by AUC
            values.append(score(key, y_valid, predict_scores(pipe, x.iloc[valid_rows], task)))
            trial.report(float(np.mean(values)), step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        if not values:
            raise optuna.TrialPruned()
        return float(np.mean(values))

    def after_trial(study, trial) -> None:
        done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        best = study.best_value if done else None
        history.append({"trial": trial.number, "state": trial.state.name, "value": trial.value})
        if on_trial:
            on_trial(
                {
                    "algorithm": algorithm,
                    "trial": trial.number + 1,
                    "completed": len(done),
                    "best": best,
                    "seconds_left": max(0.0, deadline - time.perf_counter()),
                    "trials": trials,
                }
            )
        if patience and done:
            best_number = study.best_trial.number
            if trial.number - best_number >= patience:
                study.stop()
        if time.perf_counter() >= deadline:
            study.stop()

    remaining = deadline - time.perf_counter()
    if remaining > 0:
        study.optimize(
            objective,
            n_trials=trials,
            timeout=remaining,
            callbacks=[after_trial],
            catch=(ValueError, ArithmeticError),
        )
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    if not complete:
        return TuneResult(algorithm, {}, None, len(study.trials), len(pruned), 0.0, history)
    best = study.best_trial
    value = best.value if best.value is not None and math.isfinite(best.value) else None
    return TuneResult(
        algorithm=algorithm,
        params=dict(best.params),
        best_cv=value,
        trials=len(study.trials),
        pruned=len(pruned),
        seconds=time.perf_counter() - started,
        history=history,
    )
