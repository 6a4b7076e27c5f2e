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
from ._advice import ranking_suggestions, suggestions
from ._candidates import TUNABLE, make_pipeline_for
from ._items import ITEM_GROUP
from ._kit import HORIZON_COLUMN, TaskKit, class_codes, class_values, selection_key
from ._metrics import choose_threshold, curves, segment_metrics
from ._ranking import GROUP_COLUMN, ranking_key, ranking_split
from ._split import Split, cv_folds, make_split
from ._tune import TrialCallback, tune

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
    columns: list[FeatureColumn] = field(default_factory=list)  # the model's input columns
    classes: list | None = None  # multiclass: the class values, in class-code order


def prepare_frame(frame: pd.DataFrame, columns: list[FeatureColumn]) -> pd.DataFrame:
    """The model's input frame: numbers as float, categories as Python strings (or NaN).

    Built column by column as numpy arrays and assembled once: this runs on every online
    request, where per-column pandas assignments cost more than the model itself."""
    n = len(frame)
    data: dict[str, np.ndarray] = {}
    for col in columns:
        values = frame.get(col.name)
        if col.kind == "number":
            if values is None:
                data[col.name] = np.full(n, np.nan)
            elif values.dtype.kind in "fiub":
                data[col.name] = values.to_numpy(dtype="float64", na_value=np.nan)
            else:
                numbers = pd.to_numeric(values, errors="coerce").astype("float64")
                data[col.name] = numbers.to_numpy()
        else:
            # Missing is NaN, never None: scikit-learn's imputer does not see None in an
            # object column, which is what pandas makes of a column with no value at all
            # (one online record with a missing category).
            out = np.full(n, np.nan, dtype=object)
            if values is not None:
                missing = values.isna().to_numpy()
                raw = values.to_numpy(dtype=object)
                for i in range(n):
                    if not missing[i]:
                        out[i] = str(raw[i])
            data[col.name] = out
    return pd.DataFrame(data, index=frame.index, columns=[c.name for c in columns])


DEFAULT_MAX_BUDGET = 60.0
MIN_AUTO_BUDGET = 5.0
# Up to this many training rows (fit + validation), candidates are compared by their
# cross-validated score on the training part: a validation split of a few hundred rows picks
# by noise (measured on diabetes: 71 validation rows chose a LightGBM that lost to ridge on
# test). Larger data keeps the single validation split (cheaper; its noise is small).
CV_SELECTION_ROWS = 10_000
# The order candidates train in (the leaderboard keeps the spec's order): the cheap ones, then
# the one that is usually best per second of fitting, so a tight budget skips the slow ones.
TRAIN_ORDER = ("baseline", "logistic", "lightgbm", "hist_gradient_boosting", "random_forest")
TASKS = ("binary", "multiclass", "regression", "ranking", "forecast")


def _check_label(frame: pd.DataFrame, task: str) -> None:
    y_all = frame[LABEL_COLUMN]
    if y_all.isna().any():
        raise DataError(
            f"the label has {int(y_all.isna().sum())} missing value(s)",
            hint="filter them out in the source, or fix the label definition",
        )
    if task in ("binary", "multiclass", "ranking") and y_all.nunique() < 2:
        raise DataError(
            f"the label has one class only ({y_all.iloc[0]} in all {len(y_all)} rows)",
            hint="check the label definition and the cutoffs: a model needs both outcomes"
            if task != "multiclass"
            else "a multiclass label needs at least two classes",
        )
    if task == "binary" and y_all.nunique() > 2:
        raise DataError(
            f"a binary label has {y_all.nunique()} distinct values",
            hint="use task: multiclass for more than two classes",
        )
    if task in ("regression", "forecast"):
        numbers = pd.to_numeric(y_all, errors="coerce")
        if numbers.isna().any():
            raise DataError(
                f"a {task} label must be numeric; {int(numbers.isna().sum())} value(s) are not "
                f"(e.g. {y_all[numbers.isna()].iloc[0]!r})",
                hint="use task: multiclass for a label of categories",
            )


def _item_column(frame: pd.DataFrame, problem: ProblemSpec, task: str) -> FeatureColumn | None:
    """The identity column a ranking (the item) or forecast (the entity) model learns from."""
    if task == "ranking":
        name = getattr(problem.label, "item", None)
    elif task == "forecast":
        name = problem.entity
    else:
        return None
    if name is None or name not in frame.columns:
        raise DataError(
            f"the {task} dataset has no {name!r} column",
            hint="rebuild the dataset with `cycleml dataset build`",
        )
    return FeatureColumn(name, ITEM_GROUP, "category")


def _drop_single_groups(frame: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    sizes = frame.groupby(GROUP_COLUMN, sort=False)[GROUP_COLUMN].transform("size")
    single = int((sizes == 1).sum())
    if single == len(frame):
        raise DataError(
            f"every group of impressions holds one item only ({single} groups): there is "
            "nothing to rank within a group",
            hint="give the click label a `group:` column that ties impressions shown together "
            "(a list or page id), or leave it out to group by entity and impression time",
        )
    if single:
        notes.append(f"left out {single} group(s) with one item only: nothing to rank within them")
        frame = frame[sizes.to_numpy() > 1].reset_index(drop=True)
    return frame


def split_for(
    frame: pd.DataFrame, problem: ProblemSpec, training: TrainingSpec, horizon_days: int
) -> Split:
    """The train / validation / test split training makes for ``problem`` (and that model
    comparison reuses for its test rows)."""
    task = problem.task
    if task == "ranking":
        return ranking_split(frame, test_size=training.test_size, horizon_days=horizon_days)
    method = training.split
    if task == "forecast" and method in ("stratified", "group"):
        method = "time"
    return make_split(
        frame,
        method=method,
        test_size=training.test_size,
        horizon_days=horizon_days,
        seed=training.seed,
        classify=task in ("binary", "multiclass"),
    )


def prepare_training_frame(frame: pd.DataFrame, problem: ProblemSpec) -> tuple[pd.DataFrame, list]:
    """The rows training (and comparison) use: ranking drops one-item groups."""
    notes: list[str] = []
    if problem.task == "ranking":
        if GROUP_COLUMN not in frame.columns:
            raise DataError(
                "the ranking dataset has no group column",
                hint="rebuild the dataset with `cycleml dataset build`",
            )
        frame = _drop_single_groups(frame, notes)
    return frame, notes


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
    cleaning=None,
) -> TrainResult:
    """Train every candidate on the fit split, tune the best with Optuna until the budget
    (seconds: ``budget``, else ``training.tune.timeout``, else picked from the data size, at most
    60 s) runs out, pick the best on validation, and report all of them on the test split.

    With at most ``CV_SELECTION_ROWS`` training rows (fit + validation; not ranking), the
    candidates and the tuned parameters are compared by their mean score over the
    cross-validation folds of the training part instead of the one validation split
    (``split["selected_by"]`` says which; each leaderboard entry then has ``cv``).

    ``cleaning`` maps feature names to their recorded learned cleaning steps (see
    :func:`cycleml.data._learned.resolve_learned`); None uses the steps set for the run.
    Ranking adds the item column and forecast the entity column to the model's inputs (as
    learned per-item statistics): ``TrainResult.columns`` lists the inputs the model needs."""
    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    budget = budget if budget is not None else training.tune.timeout
    auto_budget = budget is None
    deadline = started + (DEFAULT_MAX_BUDGET if auto_budget else float(budget))
    task = problem.task
    if task not in TASKS:
        raise ModelError(f"task {task!r} does not train", hint=f"tasks: {', '.join(TASKS)}")
    classify = task == "binary"
    if len(frame) == 0:
        raise DataError("the dataset has no rows", hint="check the label and the cutoffs")
    _check_label(frame, task)
    if training.segment and training.segment not in frame.columns:
        raise DataError(
            f"training.segment names column {training.segment!r}, which is not in the dataset",
            hint="name a feature column or the entity column; "
            f"columns: {', '.join(map(str, frame.columns[:20]))}",
        )
    frame, notes = prepare_training_frame(frame, problem)
    item = _item_column(frame, problem, task)
    model_columns = list(columns) + ([item] if item is not None else [])
    split = split_for(frame, problem, training, horizon_days)
    for part in ("fit", "valid", "test"):
        if len(getattr(split, part)) == 0:
            raise DataError(
                f"the {part} split is empty ({split.sizes()})",
                hint="build a dataset with more cutoffs or entities",
            )
    notes += list(split.notes)
    x_all = prepare_frame(frame, model_columns)
    classes = None
    if task == "multiclass":
        classes = class_values(frame[LABEL_COLUMN])
        y = class_codes(frame[LABEL_COLUMN], classes)
    elif task in ("binary", "ranking"):
        y = frame[LABEL_COLUMN].to_numpy().astype(int)
    else:
        y = pd.to_numeric(frame[LABEL_COLUMN]).to_numpy(dtype=float)
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
    fit_columns = columns + ([item] if item is not None else [])
    x_fit, y_fit = x_all.iloc[split.fit], y[split.fit]
    x_valid, y_valid = x_all.iloc[split.valid], y[split.valid]
    y_test = y[split.test]
    if task in ("binary", "multiclass") and len(np.unique(y_fit)) < 2:
        raise DataError(
            "the training split has one class only",
            hint="add cutoffs or entities so both outcomes appear before the test period",
        )
    if task == "ranking" and not (y_fit > 0).any():
        raise DataError(
            "no impression in the training split was clicked",
            hint="add impressions with clicks before the test period",
        )
    key, higher = _selection_key(task, problem.metric)
    kit = TaskKit(
        task,
        key,
        higher,
        x_all,
        y,
        classes=classes,
        groups=pd.factorize(frame[GROUP_COLUMN].astype(str))[0] if task == "ranking" else None,
        horizons=frame[HORIZON_COLUMN].to_numpy() if HORIZON_COLUMN in frame else None,
        k=ranking_key(problem.metric)[1] if task == "ranking" else 10,
    )

    def evaluate(algorithm: str, pipe: Pipeline, fit_seconds: float) -> dict:
        valid_score = kit.predict(pipe, split.valid)
        test_score = kit.predict(pipe, split.test)
        entry: dict = {"algorithm": algorithm}
        if classify:
            threshold, note = choose_threshold(
                y_valid, valid_score, problem.metric.name, problem.metric.goal
            )
            entry["valid"] = kit.metrics(split.valid, valid_score, threshold)
            entry["test"] = kit.metrics(split.test, test_score, threshold)
            entry["threshold_note"] = note
        else:
            entry["valid"] = kit.metrics(split.valid, valid_score, None)
            entry["test"] = kit.metrics(split.test, test_score, None)
        entry["fit_seconds"] = round(fit_seconds, 3)
        entry["tuned"] = False
        return entry

    def build(algorithm: str, params: dict | None = None) -> Pipeline:
        return make_pipeline_for(
            algorithm,
            task,
            fit_columns,
            seed=training.seed,
            threads=training.threads,
            params=params,
            cleaning=cleaning,
        )

    train_rows = np.concatenate([split.fit, split.valid])
    if task != "ranking":
        train_rows = np.sort(train_rows)
    folds: list | None = None

    def make_folds() -> list:
        out = cv_folds(
            frame,
            train_rows,
            method="time" if task == "ranking" else split.method,
            folds=training.cv_folds,
            horizon_days=horizon_days,
            seed=training.seed,
            classify=task in ("binary", "multiclass"),
        )
        return _group_ordered(out, kit.groups) if task == "ranking" else out

    cv_select = task != "ranking" and len(train_rows) <= CV_SELECTION_ROWS
    classes_task = task in ("binary", "multiclass")
    if cv_select:
        folds = make_folds()

    def cross_validate(algorithm: str) -> dict | None:
        """The mean selection metric over the folds (None when out of time, or when a fold
        cannot be fitted or scored: then no candidate is compared this way)."""
        values = []
        for fold_train, fold_valid in folds or []:
            if time.perf_counter() >= deadline:
                return None
            if not kit.scorable(fold_valid):
                continue
            if classes_task and len(np.unique(y[fold_train])) < 2:
                continue  # an early time fold with one class: nothing to fit
            try:
                pipe = kit.fit(build(algorithm), fold_train)
                v = kit.value(fold_valid, kit.predict(pipe, fold_valid))
            except (ValueError, ArithmeticError):
                return None
            if v is not None and np.isfinite(v):
                values.append(v)
        return {key: float(np.mean(values)), "folds": len(values)} if values else None

    board: list[dict] = []
    fitted: dict[str, Pipeline] = {}
    skipped: list[str] = []
    slowest_fit = 0.0  # a candidate starts only when the time left covers the slowest fit yet
    order = sorted(
        training.algorithms, key=lambda a: TRAIN_ORDER.index(a) if a in TRAIN_ORDER else 99
    )
    for algorithm in order:
        left = deadline - time.perf_counter()
        if algorithm != "baseline" and (left <= 0 or left < slowest_fit):
            skipped.append(algorithm)
            continue
        say(f"training {algorithm}")
        pipe = build(algorithm)
        t0 = time.perf_counter()
        kit.fit(pipe, split.fit)
        fitted[algorithm] = pipe
        entry = evaluate(algorithm, pipe, time.perf_counter() - t0)
        slowest_fit = max(slowest_fit, entry["fit_seconds"])
        if cv_select:
            entry["cv"] = cross_validate(algorithm)
        board.append(entry)
    board.sort(key=lambda b: training.algorithms.index(b["algorithm"]))
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

    # cross-validated selection only when every candidate has its CV score (else: validation)
    by_cv = cv_select and all(b.get("cv") is not None for b in board)
    if cv_select and not by_cv:
        notes.append(
            "chose on the validation split: not every candidate could be cross-validated "
            "(the budget ran out, or a fold could not be fitted)"
        )

    def value(entry: dict) -> float:
        v = entry["cv"].get(key) if by_cv else entry["valid"].get(key)
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
        if folds is None:
            folds = make_folds()
        for i, entry in enumerate(ranked):
            algorithm = entry["algorithm"]
            share = (tune_deadline - time.perf_counter()) / (len(ranked) - i)
            say(f"tuning {algorithm}")
            result = tune(
                algorithm,
                task,
                fit_columns,
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
                kit=kit,
                cleaning=cleaning,
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
                pipe = build(algorithm, result.params)
                t0 = time.perf_counter()
                kit.fit(pipe, split.fit)
                tuned = evaluate(algorithm, pipe, time.perf_counter() - t0)
                if by_cv:
                    # the tuning folds are the selection folds: the same comparison
                    tuned["cv"] = {key: result.best_cv, "folds": len(folds)}
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
        raise ModelError(
            f"no candidate produced a usable validation {key}",
            hint="the validation split may hold one class only (or, for ranking, no click): "
            "add data or lower training.test_size",
        )
    best = max(scored, key=value)
    for entry in board:
        entry["chosen"] = entry is best
    chosen = fitted[best["algorithm"]]
    baseline = next((b for b in board if b["algorithm"] == "baseline"), None)
    if baseline is not None and best is not baseline:
        gain = (
            best["test"][key] - baseline["test"][key]
            if best["test"].get(key) is not None and baseline["test"].get(key) is not None
            else None
        )
        if gain is not None:
            ahead = gain > 0 if higher else gain < 0
            notes.append(
                f"{best['algorithm']} {'beats' if ahead else 'does not beat'} the baseline on "
                f"test: {key} {gain:+.3f} (chosen on validation)"
            )

    selected_by = (
        f"{len(folds or [])}-fold cross-validated {key} on the training part"
        if by_cv
        else f"validation {key}"
    )
    threshold = best["test"].get("threshold") if classify else None
    test_score = kit.predict(chosen, split.test)
    charts: dict = {}
    if classify:
        charts["curves"] = curves(y_test, test_score)
    elif task in ("regression", "forecast"):
        step = max(1, len(y_test) // 1000)
        charts["residuals"] = {
            "predicted": np.round(test_score[::step], 5).tolist(),
            "residual": np.round((y_test - test_score)[::step], 5).tolist(),
        }
    segments: list[dict] = []
    if training.segment:
        segments = segment_metrics(
            frame[training.segment].to_numpy()[split.test],
            y_test,
            test_score,
            task,
            threshold,
            classes,
            groups=kit.groups[split.test] if task == "ranking" else None,
            k=kit.k,
        )
    say("looking for improvements")
    if task == "ranking":
        advice, evidence = ranking_suggestions(
            chosen,
            kit,
            split.valid,
            [c.name for c in fit_columns],
            training.seed,
            deadline - time.perf_counter(),
            fit_rows=split.fit,
            test_value=best["test"].get(key),
            fit_seconds=best["fit_seconds"],
        )
    else:
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
            names=[c.name for c in fit_columns],
            fit_seconds=best["fit_seconds"],
            seed=training.seed,
            time_left=deadline - time.perf_counter(),
            n_classes=len(classes or []),
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
        split={"method": split.method, **split.sizes(), "selected_by": selected_by},
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
        columns=model_columns,
        classes=classes,
    )


def _group_ordered(folds: list, groups: np.ndarray) -> list:
    """Folds with each side's rows ordered so a group's rows are adjacent (LightGBM ranking)."""
    out = []
    for train_rows, valid_rows in folds:
        out.append(tuple(r[np.argsort(groups[r], kind="stable")] for r in (train_rows, valid_rows)))
    return out


def _selection_key(task: str, metric) -> tuple[str, bool]:
    return selection_key(task, metric)


def _params(pipe: Pipeline) -> dict:
    model = pipe.named_steps["model"]
    out = {}
    for key, value in model.get_params().items():
        if isinstance(value, str | int | float | bool) or value is None:
            out[key] = value
    return out
