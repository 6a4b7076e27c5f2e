"""Train every candidate, keep the best on validation, report all of them on the test split."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from ..errors import DataError, ModelError
from ..features import LABEL_COLUMN, FeatureColumn
from ..spec import ProblemSpec, TrainingSpec
from ._advice import suggestions
from ._candidates import TUNABLE, make_pipeline_for
from ._metrics import (
    choose_threshold,
    classification_metrics,
    curves,
    regression_metrics,
    segment_metrics,
)
from ._split import cv_folds, make_split
from ._tune import TrialCallback, fit_quietly, predict_scores, tune

Progress = Callable[[str], None]


@dataclass
class TrainResult:
    algorithm: str
    pipeline: Pipeline
    task: str
    threshold: float | None
    threshold_note: str | None
    metrics: dict  # test metrics of the chosen model
    leaderboard: list[dict]
    split: dict
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    params: dict = field(default_factory=dict)
    tuning: list[dict] = field(default_factory=list)
    budget: dict = field(default_factory=dict)
    segments: list[dict] = field(default_factory=list)
    suggestions: list[dict] = field(default_factory=list)
    charts: dict = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)


def prepare_frame(frame: pd.DataFrame, columns: list[FeatureColumn]) -> pd.DataFrame:
    """The model's input frame: numbers as float, categories as Python strings (or None)."""
    out = pd.DataFrame(index=frame.index)
    for col in columns:
        values = frame[col.name] if col.name in frame else pd.Series(None, index=frame.index)
        if col.kind == "number":
            out[col.name] = pd.to_numeric(values, errors="coerce").astype("float64")
        else:
            out[col.name] = (
                values.astype(object)
                .where(values.notna(), None)
                .map(lambda v: v if v is None else str(v))
            )
    return out


DEFAULT_MAX_BUDGET = 60.0
MIN_AUTO_BUDGET = 5.0


def train_candidates(
    frame: pd.DataFrame,
    columns: list[FeatureColumn],
    problem: ProblemSpec,
    training: TrainingSpec,
    *,
    horizon_days: int,
    progress: Progress | None = None,
    budget: float | None = None,
    on_trial: TrialCallback | None = None,
) -> TrainResult:
    """Train every candidate on the fit split, tune the best with Optuna until the budget
    (seconds: ``budget``, else ``training.tune.timeout``, else picked from the data size, at most
    60 s) runs out, pick the best on validation, and report all of them on the test split."""
    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    budget = budget if budget is not None else training.tune.timeout
    auto_budget = budget is None
    deadline = started + (DEFAULT_MAX_BUDGET if auto_budget else float(budget))
    task = problem.task
    if task not in ("binary", "regression"):
        raise ModelError(
            f"task {task!r} does not train yet in this version (binary and regression do)",
            hint="its dataset builds with `cycleml dataset build`; ranking and forecast models "
            "come in a later version",
        )
    classify = task == "binary"
    y_all = frame[LABEL_COLUMN]
    if y_all.isna().any():
        raise DataError(
            f"the label has {int(y_all.isna().sum())} missing value(s)",
            hint="filter them out in the source, or fix the label definition",
        )
    if classify and y_all.nunique() < 2:
        raise DataError(
            f"the label has one class only ({y_all.iloc[0]} in all {len(y_all)} rows)",
            hint="check the label definition and the cutoffs: a model needs both outcomes",
        )
    if training.segment and training.segment not in frame.columns:
        raise DataError(
            f"training.segment names column {training.segment!r}, which is not in the dataset",
            hint="name a feature column or the entity column; "
            f"columns: {', '.join(map(str, frame.columns[:20]))}",
        )
    split = make_split(
        frame,
        method=training.split,
        test_size=training.test_size,
        horizon_days=horizon_days,
        seed=training.seed,
        classify=classify,
    )
    for part in ("fit", "valid", "test"):
        if len(getattr(split, part)) == 0:
            raise DataError(
                f"the {part} split is empty ({split.sizes()})",
                hint="build a dataset with more cutoffs or entities",
            )
    x_all = prepare_frame(frame, columns)
    y = y_all.to_numpy()
    y = y.astype(int) if classify else y.astype(float)
    notes = list(split.notes)
    constant = [c.name for c in columns if x_all[c.name].iloc[split.fit].nunique(dropna=False) <= 1]
    if constant:
        notes.append(
            f"dropped {len(constant)} constant feature(s) (one value in every training row): "
            + ", ".join(constant[:10])
        )
        columns = [c for c in columns if c.name not in constant]
    if not columns:
        raise DataError(
            "every feature is constant in the training rows",
            hint="check the feature definitions and the cutoffs: nothing varies to learn from",
        )
    x_fit, y_fit = x_all.iloc[split.fit], y[split.fit]
    x_valid, y_valid = x_all.iloc[split.valid], y[split.valid]
    x_test, y_test = x_all.iloc[split.test], y[split.test]
    if classify and len(np.unique(y_fit)) < 2:
        raise DataError(
            "the training split has one class only",
            hint="add cutoffs or entities so both outcomes appear before the test period",
        )
    key, higher = _selection_key(task, problem.metric.name)

    def evaluate(algorithm: str, pipe: Pipeline, fit_seconds: float) -> dict:
        valid_score = predict_scores(pipe, x_valid, task)
        test_score = predict_scores(pipe, x_test, task)
        if classify:
            threshold, note = choose_threshold(
                y_valid, valid_score, problem.metric.name, problem.metric.goal
            )
            entry = {
                "algorithm": algorithm,
                "valid": classification_metrics(y_valid, valid_score, threshold),
                "test": classification_metrics(y_test, test_score, threshold),
                "threshold_note": note,
            }
        else:
            entry = {
                "algorithm": algorithm,
                "valid": regression_metrics(y_valid, valid_score),
                "test": regression_metrics(y_test, test_score),
            }
        entry["fit_seconds"] = round(fit_seconds, 3)
        entry["tuned"] = False
        return entry

    board: list[dict] = []
    fitted: dict[str, Pipeline] = {}
    skipped: list[str] = []
    for algorithm in training.algorithms:
        if algorithm != "baseline" and time.perf_counter() >= deadline:
            skipped.append(algorithm)
            continue
        say(f"training {algorithm}")
        pipe = make_pipeline_for(
            algorithm, task, columns, seed=training.seed, threads=training.threads
        )
        t0 = time.perf_counter()
        fit_quietly(pipe, x_fit, y_fit)
        fitted[algorithm] = pipe
        board.append(evaluate(algorithm, pipe, time.perf_counter() - t0))
    if not any(b["algorithm"] != "baseline" for b in board):
        raise ModelError(
            f"the training budget of {budget:g} s is too small to train any candidate "
            "beyond the baseline"
            if budget is not None
            else "no candidate other than the baseline is configured",
            hint="give more time (--budget SECONDS or training.tune.timeout)"
            if budget is not None
            else "list algorithms in training.algorithms (e.g. logistic, lightgbm)",
        )
    if skipped:
        notes.append(f"out of time before training: {', '.join(skipped)}")
    if auto_budget:
        spent = time.perf_counter() - started
        deadline = started + min(DEFAULT_MAX_BUDGET, max(MIN_AUTO_BUDGET, 3 * spent))

    def value(entry: dict) -> float:
        v = entry["valid"].get(key)
        return -np.inf if v is None else (v if higher else -v)

    # tune the best candidate(s), cross-validated on the training part (fit + validation)
    tuning: list[dict] = []
    ranked = sorted((b for b in board if b["algorithm"] in TUNABLE), key=value, reverse=True)[
        : training.tune.top
    ]
    # keep time for the refit and the suggestions after tuning, so the run ends near the budget
    slowest = max((b["fit_seconds"] for b in ranked), default=0.0)
    reserve = min(0.5 * (deadline - started), max(0.15 * (deadline - started), 5 * slowest))
    tune_deadline = deadline - reserve
    if ranked and time.perf_counter() < tune_deadline:
        train_rows = np.sort(np.concatenate([split.fit, split.valid]))
        folds = cv_folds(
            frame,
            train_rows,
            method=split.method,
            folds=training.cv_folds,
            horizon_days=horizon_days,
            seed=training.seed,
            classify=classify,
        )
        for i, entry in enumerate(ranked):
            algorithm = entry["algorithm"]
            share = (tune_deadline - time.perf_counter()) / (len(ranked) - i)
            say(f"tuning {algorithm}")
            result = tune(
                algorithm,
                task,
                columns,
                x_all,
                y,
                folds,
                key=key,
                higher=higher,
                seed=training.seed,
                threads=training.threads,
                deadline=time.perf_counter() + share,
                trials=training.tune.trials,
                patience=training.tune.patience,
                on_trial=on_trial,
            )
            info = {
                "algorithm": algorithm,
                "trials": result.trials,
                "pruned": result.pruned,
                "cv_folds": len(folds),
                f"best_cv_{key}": result.best_cv,
                "params": result.params,
                "seconds": round(result.seconds, 2),
                "kept": False,
            }
            if result.params:
                pipe = make_pipeline_for(
                    algorithm,
                    task,
                    columns,
                    seed=training.seed,
                    threads=training.threads,
                    params=result.params,
                )
                t0 = time.perf_counter()
                fit_quietly(pipe, x_fit, y_fit)
                tuned = evaluate(algorithm, pipe, time.perf_counter() - t0)
                if value(tuned) > value(entry):
                    tuned["tuned"] = True
                    board[board.index(entry)] = tuned
                    fitted[algorithm] = pipe
                    info["kept"] = True
            tuning.append(info)
            for b in board:
                if b["algorithm"] == algorithm:
                    b["tuning"] = info

    scored = [b for b in board if b["valid"].get(key) is not None]
    if not scored:
        raise ModelError("no candidate produced a usable validation score")
    best = max(scored, key=value)
    for entry in board:
        entry["chosen"] = entry is best
    chosen = fitted[best["algorithm"]]
    baseline = next((b for b in board if b["algorithm"] == "baseline"), None)
    if baseline is not None and best is not baseline:
        gain = (
            best["test"][key] - baseline["test"][key] if best["test"].get(key) is not None else None
        )
        if gain is not None:
            notes.append(f"{best['algorithm']} beats the baseline by {gain:+.3f} {key} on test")

    threshold = best["test"].get("threshold") if classify else None
    test_score = predict_scores(chosen, x_test, task)
    charts: dict = {}
    if classify:
        charts["curves"] = curves(y_test, test_score)
    else:
        step = max(1, len(y_test) // 1000)
        charts["residuals"] = {
            "predicted": np.round(test_score[::step], 5).tolist(),
            "residual": np.round((y_test - test_score)[::step], 5).tolist(),
        }
    segments = (
        segment_metrics(
            frame[training.segment].to_numpy()[split.test], y_test, test_score, task, threshold
        )
        if training.segment
        else []
    )
    say("looking for improvements")
    advice, evidence = suggestions(
        pipe=chosen,
        task=task,
        key=key,
        higher=higher,
        x_fit=x_fit,
        y_fit=y_fit,
        x_valid=x_valid,
        y_valid=y_valid,
        test_metrics=best["test"],
        names=[c.name for c in columns],
        fit_seconds=best["fit_seconds"],
        seed=training.seed,
        time_left=deadline - time.perf_counter(),
    )
    charts.update(evidence)
    elapsed = time.perf_counter() - started
    return TrainResult(
        algorithm=best["algorithm"],
        pipeline=chosen,
        task=task,
        threshold=threshold,
        threshold_note=best.get("threshold_note"),
        metrics=best["test"],
        leaderboard=board,
        split={"method": split.method, **split.sizes(), "selected_by": f"validation {key}"},
        notes=notes,
        seconds=elapsed,
        params=_params(chosen),
        tuning=tuning,
        budget={
            "seconds": round(deadline - started, 2),
            "source": "auto" if auto_budget else "given",
            "used": round(elapsed, 2),
        },
        segments=segments,
        suggestions=advice,
        charts=charts,
        dropped=constant,
    )


def _selection_key(task: str, metric: str) -> tuple[str, bool]:
    if task == "binary":
        return ("pr_auc", True) if metric == "pr_auc" else ("roc_auc", True)
    if metric in ("mae", "rmse"):
        return metric, False
    return ("r2", True) if metric == "r2" else ("rmse", False)


def _params(pipe: Pipeline) -> dict:
    model = pipe.named_steps["model"]
    out = {}
    for key, value in model.get_params().items():
        if isinstance(value, str | int | float | bool) or value is None:
            out[key] = value
    return out
