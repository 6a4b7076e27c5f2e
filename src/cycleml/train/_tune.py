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

from ..features import FeatureColumn
from ._candidates import make_pipeline_for, search_space
from ._kit import TaskKit, predict_scores, score

__all__ = ["TuneResult", "fit_quietly", "predict_scores", "score", "tune"]

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


def fit_quietly(pipe, x: pd.DataFrame, y: np.ndarray, **fit_params):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning)
        pipe.fit(x, y, **fit_params)
    return pipe


# LightGBM's own evaluation metric for a selection key, and the sign that turns it into a value
# in the study's direction (pruning compares trials at the same boosting iteration and fold).
_LGBM_METRIC = {
    "roc_auc": ("auc", 1.0),
    "pr_auc": ("average_precision", 1.0),
    "rmse": ("rmse", 1.0),
    "mae": ("l1", 1.0),
    "r2": ("l2", -1.0),
    "roc_auc_ovr": ("multi_logloss", -1.0),
    "accuracy": ("multi_logloss", -1.0),
    "f1_macro": ("multi_logloss", -1.0),
}
REPORT_EVERY = 10  # boosting iterations between two reports to the pruner
STEPS_PER_FOLD = 100_000  # pruning step = fold * STEPS_PER_FOLD + iteration


def pruning_callback(trial, metric: str, sign: float, step_base: int, deadline: float):
    """A LightGBM callback reporting the validation ``metric`` to the Optuna trial every
    REPORT_EVERY iterations and stopping the fit (TrialPruned) when the pruner says so or the
    deadline passes."""
    import optuna

    def callback(env) -> None:
        if time.perf_counter() >= deadline:
            raise optuna.TrialPruned()
        done = env.iteration + 1
        if done % REPORT_EVERY:
            return
        for _data, name, value, _higher in env.evaluation_result_list:
            if name.split("@")[0] == metric.split("@")[0]:
                trial.report(sign * float(value), step_base + done)
                if trial.should_prune():
                    raise optuna.TrialPruned()
                return

    callback.order = 30  # after LightGBM's own callbacks
    return callback


def _fit_lightgbm_pruned(kit: TaskKit, pipe, train_rows, valid_rows, trial, fold: int, deadline):
    """Fit a LightGBM pipeline on ``train_rows`` with ``valid_rows`` as its evaluation set, so
    the pruner sees the validation score while boosting."""
    from ._ranking import group_sizes

    prepare, model = pipe.steps[0][1], pipe.steps[-1][1]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning)
        x_train = prepare.fit_transform(kit.x.iloc[train_rows], kit.y[train_rows])
        x_valid = prepare.transform(kit.x.iloc[valid_rows])
        if kit.task == "ranking":
            metric, sign = kit.key, 1.0
            extra = {
                "group": group_sizes(kit.groups[train_rows]),
                "eval_group": [group_sizes(kit.groups[valid_rows])],
                "eval_at": [kit.k],
            }
        else:
            metric, sign = _LGBM_METRIC[kit.key]
            extra = {}
        model.fit(
            x_train,
            kit.y[train_rows],
            eval_X=(x_valid,),
            eval_y=(kit.y[valid_rows],),
            eval_metric=metric.split("@")[0],
            callbacks=[pruning_callback(trial, metric, sign, fold * STEPS_PER_FOLD, deadline)],
            **extra,
        )
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
    kit: TaskKit | None = None,
    cleaning=None,
) -> TuneResult:
    """Search ``algorithm``'s parameters until ``deadline`` (a ``time.perf_counter()`` value),
    ``trials`` trials, or ``patience`` trials without improvement. ``x``/``y`` are indexed by
    the row positions in ``folds``; ``kit`` (default: built from them) says how the task fits
    and scores rows. LightGBM reports its validation score while boosting, so the median
    pruner stops poor trials early; other algorithms report the running mean after each fold."""
    import optuna

    if kit is None:
        kit = TaskKit(task, key, higher, x, y)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.perf_counter()
    study = optuna.create_study(
        direction="maximize" if higher else "minimize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0),
    )
    if algorithm == "lightgbm" and task == "ranking":
        from ._candidates import RANKER_DEFAULTS

        study.enqueue_trial(RANKER_DEFAULTS)
    elif algorithm in _DEFAULTS:
        study.enqueue_trial(_DEFAULTS[algorithm])
    history: list[dict] = []

    def objective(trial) -> float:
        params = search_space(trial, algorithm, task)
        values = []
        for step, (train_rows, valid_rows) in enumerate(folds):
            if time.perf_counter() >= deadline:
                raise optuna.TrialPruned()  # out of time: this trial does not count
            if not kit.scorable(valid_rows):
                continue  # e.g. a fold with one class cannot be scored by AUC
            pipe = make_pipeline_for(
                algorithm,
                task,
                columns,
                seed=seed,
                threads=threads,
                params=params,
                cleaning=cleaning,
            )
            if algorithm == "lightgbm":
                _fit_lightgbm_pruned(kit, pipe, train_rows, valid_rows, trial, step, deadline)
                values.append(kit.value(valid_rows, kit.predict(pipe, valid_rows)))
                continue
            kit.fit(pipe, train_rows)
            values.append(kit.value(valid_rows, kit.predict(pipe, valid_rows)))
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
