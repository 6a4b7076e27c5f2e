"""What to try next, drawn from the training results. Each suggestion has an id, a title, the
evidence (figures) and what to do."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.base import clone
from sklearn.inspection import permutation_importance

from ._tune import fit_quietly, predict_scores, score

_SCORERS = {"roc_auc": "roc_auc", "pr_auc": "average_precision", "r2": "r2"}
_SCORERS |= {"mae": "neg_mean_absolute_error", "rmse": "neg_root_mean_squared_error"}
MAX_IMPORTANCE_ROWS = 2000
_UNIT_KEYS = ("roc_auc", "pr_auc", "r2", "roc_auc_ovr", "accuracy", "f1_macro")


def _suggestion(id: str, title: str, evidence: dict, action: str) -> dict:
    return {"id": id, "title": title, "evidence": evidence, "action": action}


def _scorer(key: str, task: str, n_classes: int):
    """A scikit-learn scoring callable for a selection key without a named scorer."""

    def scoring(estimator, x, y) -> float:
        return score(key, y, predict_scores(estimator, x, task, n_classes))

    return scoring


def importance(
    pipe,
    x_valid: pd.DataFrame,
    y_valid: np.ndarray,
    key: str,
    names: list[str],
    seed: int,
    time_left: float = float("inf"),
    task: str = "",
    n_classes: int = 0,
) -> list[dict]:
    """Permutation importance of each feature on (up to 2000 rows of) the validation split,
    in units of the selection metric (higher = the metric drops more when shuffled). Three
    shuffles per feature, fewer (at least one) when the time budget has no room for three."""
    if len(x_valid) > MAX_IMPORTANCE_ROWS:
        pick = np.random.default_rng(seed).choice(len(x_valid), MAX_IMPORTANCE_ROWS, replace=False)
        x_valid, y_valid = x_valid.iloc[np.sort(pick)], y_valid[np.sort(pick)]
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning)
        pipe.predict(x_valid)
    per_predict = time.perf_counter() - started
    repeats = int(np.clip(time_left // max(per_predict * len(names), 1e-9), 1, 3))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning)
        result = permutation_importance(
            pipe,
            x_valid[names],
            y_valid,
            scoring=_SCORERS[key] if key in _SCORERS else _scorer(key, task, n_classes),
            n_repeats=repeats,
            random_state=seed,
            n_jobs=1,
        )
    rows = [
        {"feature": n, "importance": float(m), "std": float(s)}
        for n, m, s in zip(names, result.importances_mean, result.importances_std, strict=True)
    ]
    return sorted(rows, key=lambda r: -r["importance"])


def learning_curve(
    pipe, x_fit, y_fit, x_valid, y_valid, *, task: str, key: str, seed: int, n_classes: int = 0
) -> list[dict]:
    """The validation metric after training on 25, 50, 75 and 100% of the fit split."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x_fit))
    out = []
    for share in (0.25, 0.5, 0.75, 1.0):
        rows = np.sort(order[: max(2, int(len(order) * share))])
        y_part = y_fit[rows]
        if task in ("binary", "multiclass") and len(np.unique(y_part)) < 2:
            continue
        model = fit_quietly(clone(pipe), x_fit.iloc[rows], y_part)
        value = score(key, y_valid, predict_scores(model, x_valid, task, n_classes))
        out.append({"share": share, "rows": int(len(rows)), key: value})
    return out


def suggestions(
    *,
    pipe,
    task: str,
    key: str,
    higher: bool,
    x_fit: pd.DataFrame,
    y_fit: np.ndarray,
    x_valid: pd.DataFrame,
    y_valid: np.ndarray,
    test_metrics: dict,
    names: list[str],
    fit_seconds: float,
    seed: int,
    time_left: float,
    n_classes: int = 0,
) -> tuple[list[dict], dict]:
    """(suggestions, evidence charts: importance and learning curve)."""
    out: list[dict] = []
    t_start = time.perf_counter()
    charts: dict = {}
    if time_left <= 0:
        charts["skipped"] = "learning curve (the time budget was used up)"
    two_classes = task not in ("binary", "multiclass") or len(np.unique(y_valid)) >= 2

    # overfitting: the metric on the rows the model was fitted on vs the test split
    train_value = (
        score(key, y_fit, predict_scores(pipe, x_fit, task, n_classes)) if two_classes else None
    )
    test_value = test_metrics.get(key)
    if train_value is not None and test_value is not None:
        gap = (train_value - test_value) if higher else (test_value - train_value)
        scale = 1.0 if key in _UNIT_KEYS else max(abs(test_value), 1e-12)
        charts["overfit"] = {"train": train_value, "test": test_value, "gap": gap}
        if gap / scale > 0.05:
            out.append(
                _suggestion(
                    "overfitting",
                    "The model fits its training rows much better than the test rows",
                    {f"train_{key}": round(train_value, 4), f"test_{key}": round(test_value, 4)},
                    "regularise: fewer leaves or more rows per leaf, fewer features, or more "
                    "data; a longer tuning budget searches these settings",
                )
            )

    # learning curve: would more data help? (skipped when the budget has no time left for it)
    if two_classes and fit_seconds * 2 < time_left - (time.perf_counter() - t_start):
        curve = learning_curve(
            pipe, x_fit, y_fit, x_valid, y_valid, task=task, key=key, seed=seed, n_classes=n_classes
        )
        charts["learning_curve"] = curve
        if len(curve) >= 2:
            last, before = curve[-1][key], curve[-2][key]
            gain = (last - before) if higher else (before - last)
            scale = 1.0 if key in _UNIT_KEYS else max(abs(last), 1e-12)
            if gain / scale > 0.005:
                out.append(
                    _suggestion(
                        "more_data",
                        "More training data would likely help",
                        {"curve": curve},
                        "add history (an earlier cutoffs.start or more frequent cutoffs) or "
                        "more entities: the validation score still rises with more rows",
                    )
                )

    # permutation importance: weak features, and one feature carrying everything (leakage)
    if two_classes:
        started = time.perf_counter()
        rows = importance(
            pipe,
            x_valid,
            y_valid,
            key,
            names,
            seed,
            time_left - (time.perf_counter() - t_start),
            task=task,
            n_classes=n_classes,
        )
        charts["importance"] = rows
        charts["importance_seconds"] = round(time.perf_counter() - started, 3)
        weak = [r["feature"] for r in rows if r["importance"] <= 0]
        if weak and len(weak) < len(rows):
            out.append(
                _suggestion(
                    "weak_features",
                    f"{len(weak)} feature(s) do not help on validation",
                    {"features": weak[:20]},
                    "consider removing them from the problem's feature groups; shuffling them "
                    "does not lower the validation score",
                )
            )
        positive = [r for r in rows if r["importance"] > 0]
        total = sum(r["importance"] for r in positive)
        top = positive[0] if positive else None
        single_auc = _single_feature_auc(x_valid, y_valid, names) if task == "binary" else {}
        suspicious = {f: a for f, a in single_auc.items() if a > 0.95}
        if top and total > 0 and top["importance"] / total > 0.9 and len(names) > 1:
            suspicious.setdefault(top["feature"], None)
        if suspicious:
            out.append(
                _suggestion(
                    "leakage",
                    "Possible leakage: a single feature carries almost all the signal",
                    {
                        "features": sorted(suspicious),
                        "single_feature_auc": {
                            f: round(a, 4) for f, a in suspicious.items() if a is not None
                        },
                        "importance_share": round(top["importance"] / total, 3)
                        if top and total > 0
                        else None,
                    },
                    "check that these features are known before the cutoff (not computed from "
                    "the outcome); if they are, the model is fine",
                )
            )

    # class imbalance
    if task == "binary":
        rate = float(np.mean(y_fit))
        minority = min(rate, 1 - rate)
        if minority < 0.1:
            out.append(
                _suggestion(
                    "class_imbalance",
                    "One class is rare",
                    {"minority_share": round(minority, 4), "rows": int(len(y_fit))},
                    "judge the model by PR-AUC and the threshold (not accuracy), and collect "
                    "more examples of the rare class",
                )
            )

    # rows per feature
    per_feature = len(x_fit) / max(1, len(names))
    if per_feature < 10:
        out.append(
            _suggestion(
                "few_rows_per_feature",
                "Too few rows per feature",
                {"rows": int(len(x_fit)), "features": len(names)},
                "use fewer features (drop weak ones) or more rows: below about 10 rows per "
                "feature models overfit easily",
            )
        )
    return out, charts


def _single_feature_auc(x: pd.DataFrame, y: np.ndarray, names: list[str]) -> dict[str, float]:
    """max(AUC, 1 - AUC) of each numeric feature used alone as the score."""
    out = {}
    if len(np.unique(y)) < 2:
        return out
    for name in names:
        values = pd.to_numeric(x[name], errors="coerce") if name in x else None
        if values is None or values.isna().all():
            continue
        filled = values.fillna(values.median()).to_numpy(dtype=float)
        auc = float(skm.roc_auc_score(y, filled))
        out[name] = max(auc, 1 - auc)
    return out


def ranking_learning_curve(
    pipe, kit, fit_rows: np.ndarray, valid_rows: np.ndarray, seed: int
) -> list[dict]:
    """The validation NDCG@k / MAP@k after training on 25, 50, 75 and 100% of the fit split's
    groups (a seeded random choice of whole groups; ``fit_rows`` adjacent by group)."""
    from ._ranking import group_bounds

    bounds = group_bounds(kit.groups[fit_rows])
    n = len(bounds) - 1
    order = np.random.default_rng(seed).permutation(n)
    out = []
    for share in (0.25, 0.5, 0.75, 1.0):
        pick = np.sort(order[: max(2, int(n * share))])
        rows = np.concatenate([fit_rows[bounds[i] : bounds[i + 1]] for i in pick])
        if not (kit.y[rows] > 0).any():
            continue
        model = kit.fit(clone(pipe), rows)
        value = kit.value(valid_rows, kit.predict(model, valid_rows))
        out.append({"share": share, "rows": int(len(rows)), kit.key: value, "groups": len(pick)})
    return out


def _ranking_overfit(pipe, kit, fit_rows, test_value) -> tuple[list[dict], dict]:
    """Ranking's overfitting gap: NDCG@k / MAP@k on the fit groups vs the test groups."""
    key = kit.key
    train_value = kit.value(fit_rows, kit.predict(pipe, fit_rows)) if len(fit_rows) else None
    if train_value is None or test_value is None:
        return [], {}
    gap = train_value - test_value
    out = []
    if gap > 0.05:
        out.append(
            _suggestion(
                "overfitting",
                "The model ranks its training groups much better than the test groups",
                {f"train_{key}": round(train_value, 4), f"test_{key}": round(test_value, 4)},
                "regularise: fewer leaves or more rows per leaf, fewer inputs, or more "
                "impressions; a longer tuning budget searches these settings",
            )
        )
    return out, {"overfit": {"train": train_value, "test": test_value, "gap": gap}}


def _ranking_curve(pipe, kit, fit_rows, valid_rows, seed) -> tuple[list[dict], dict]:
    """Ranking's learning curve and the more-data suggestion."""
    curve = ranking_learning_curve(pipe, kit, fit_rows, valid_rows, seed)
    values = [c[kit.key] for c in curve if c[kit.key] is not None]
    out = []
    if len(values) >= 2 and values[-1] - values[-2] > 0.005:
        out.append(
            _suggestion(
                "more_data",
                "More impressions would likely help",
                {"curve": curve},
                "add history (older impressions) or more lists of impressions: the validation "
                f"{kit.key} still rises with more training groups",
            )
        )
    return out, {"learning_curve": curve}


def ranking_suggestions(
    pipe,
    kit,
    rows: np.ndarray,
    names: list[str],
    seed: int,
    time_left: float,
    *,
    fit_rows: np.ndarray | None = None,
    test_value: float | None = None,
    fit_seconds: float = 0.0,
) -> tuple[list[dict], dict]:
    """Ranking: the overfitting gap (when ``fit_rows``, the fit split's rows adjacent by group,
    are given; ``test_value`` is the test NDCG@k / MAP@k), permutation importance of each input
    on (up to 2000 rows of whole groups of) the validation split ``rows`` in NDCG@k / MAP@k with
    the weak-feature suggestion, then the learning curve when the time left covers two fits
    (``fit_seconds`` is one)."""
    t_start = time.perf_counter()
    out: list[dict] = []
    charts: dict = {}
    if fit_rows is not None:
        out, charts = _ranking_overfit(pipe, kit, fit_rows, test_value)
    found, evidence = _ranking_importance(
        pipe, kit, rows, names, seed, time_left - (time.perf_counter() - t_start)
    )
    out += found
    charts.update(evidence)
    if fit_rows is None or not kit.scorable(rows):
        return out, charts
    if fit_seconds * 2 >= time_left - (time.perf_counter() - t_start):
        skipped = [charts["skipped"]] if "skipped" in charts else []
        charts["skipped"] = "; ".join(skipped + ["learning curve (the time budget was used up)"])
        return out, charts
    found, evidence = _ranking_curve(pipe, kit, fit_rows, rows, seed)
    return out + found, charts | evidence


def _ranking_importance(
    pipe, kit, rows: np.ndarray, names: list[str], seed: int, time_left: float
) -> tuple[list[dict], dict]:
    """Permutation importance in NDCG@k / MAP@k and the weak-feature suggestion."""
    from ._ranking import group_bounds

    bounds = group_bounds(kit.groups[rows])
    keep = bounds[bounds <= MAX_IMPORTANCE_ROWS].max()
    rows = rows[: max(keep, bounds[1] if len(bounds) > 1 else len(rows))]
    charts: dict = {}
    if not kit.scorable(rows) or time_left <= 0:
        charts["skipped"] = "importance (no click in the validation rows, or no time left)"
        return [], charts

    def scoring(estimator, x, _y) -> float:
        value = kit.value(rows, predict_scores(estimator, x, "ranking"))
        return float("nan") if value is None else value

    started = time.perf_counter()
    x = kit.x.iloc[rows][names]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning)
        scoring(pipe, x, None)
    per_call = time.perf_counter() - started
    repeats = int(min(3, (time_left - per_call) // max(per_call * len(names), 1e-9)))
    if repeats < 1:
        charts["skipped"] = "importance (the time budget was used up)"
        return [], charts
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning)
        result = permutation_importance(
            pipe,
            x,
            kit.y[rows],
            scoring=scoring,
            n_repeats=repeats,
            random_state=seed,
            n_jobs=1,
        )
    importance_rows = sorted(
        (
            {"feature": n, "importance": float(m), "std": float(s)}
            for n, m, s in zip(names, result.importances_mean, result.importances_std, strict=True)
        ),
        key=lambda r: -r["importance"],
    )
    charts["importance"] = importance_rows
    charts["importance_seconds"] = round(time.perf_counter() - started, 3)
    out = []
    weak = [r["feature"] for r in importance_rows if r["importance"] <= 0]
    if weak and len(weak) < len(importance_rows):
        out.append(
            _suggestion(
                "weak_features",
                f"{len(weak)} input(s) do not help the ranking on validation",
                {"features": weak[:20]},
                "features of the entity alone cannot order the items shown to it: add features "
                "of the item (join an item table), or remove these from the feature groups",
            )
        )
    return out, charts
