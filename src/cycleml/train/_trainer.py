"""Train every candidate, keep the best on validation, report all of them on the test split."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from ..errors import DataError, ModelError
from ..features import LABEL_COLUMN, FeatureColumn
from ..spec import ProblemSpec, TrainingSpec
from ._candidates import make_pipeline_for
from ._metrics import choose_threshold, classification_metrics, regression_metrics
from ._split import make_split

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


def train_candidates(
    frame: pd.DataFrame,
    columns: list[FeatureColumn],
    problem: ProblemSpec,
    training: TrainingSpec,
    *,
    horizon_days: int,
    progress: Progress | None = None,
) -> TrainResult:
    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    task = problem.task
    if task not in ("binary", "regression"):
        raise ModelError(
            f"task {task!r} is not trainable yet in this version",
            hint="use task: binary or regression",
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
            f"the label has one class only ({y_all.iloc[0]!r} in all {len(y_all)} rows)",
            hint="check the label definition and the cutoffs: a model needs both outcomes",
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
    x_fit, y_fit = x_all.iloc[split.fit], y[split.fit]
    x_valid, y_valid = x_all.iloc[split.valid], y[split.valid]
    x_test, y_test = x_all.iloc[split.test], y[split.test]
    if classify and len(np.unique(y_fit)) < 2:
        raise DataError(
            "the training split has one class only",
            hint="add cutoffs or entities so both outcomes appear before the test period",
        )

    board: list[dict] = []
    fitted: dict[str, Pipeline] = {}
    for algorithm in training.algorithms:
        say(f"training {algorithm}")
        pipe = make_pipeline_for(
            algorithm, task, columns, seed=training.seed, threads=training.threads
        )
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning, module="sklearn")
            pipe.fit(x_fit, y_fit)
        fit_seconds = time.perf_counter() - t0
        fitted[algorithm] = pipe
        if classify:
            valid_score = pipe.predict_proba(x_valid)[:, 1]
            test_score = pipe.predict_proba(x_test)[:, 1]
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
                "valid": regression_metrics(y_valid, pipe.predict(x_valid)),
                "test": regression_metrics(y_test, pipe.predict(x_test)),
            }
        entry["fit_seconds"] = round(fit_seconds, 3)
        board.append(entry)

    key, higher = _selection_key(task, problem.metric.name)
    scored = [b for b in board if b["valid"].get(key) is not None]
    if not scored:
        raise ModelError("no candidate produced a usable validation score")
    best = max(scored, key=lambda b: b["valid"][key] if higher else -b["valid"][key])
    for entry in board:
        entry["chosen"] = entry is best
    notes = list(split.notes)
    baseline = next((b for b in board if b["algorithm"] == "baseline"), None)
    if baseline is not None and best is not baseline:
        gain = (
            best["test"][key] - baseline["test"][key] if best["test"].get(key) is not None else None
        )
        if gain is not None:
            notes.append(f"{best['algorithm']} beats the baseline by {gain:+.3f} {key} on test")
    return TrainResult(
        algorithm=best["algorithm"],
        pipeline=fitted[best["algorithm"]],
        task=task,
        threshold=best["test"].get("threshold") if classify else None,
        threshold_note=best.get("threshold_note"),
        metrics=best["test"],
        leaderboard=board,
        split={"method": split.method, **split.sizes(), "selected_by": f"validation {key}"},
        notes=notes,
        seconds=time.perf_counter() - started,
        params=_params(fitted[best["algorithm"]]),
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
