"""Multivariate drift: a domain classifier. Small extremely randomised trees learn to tell
reference rows from current rows (a sample of each side, up to ``options.domain_sample``); their
cross-validated ROC-AUC says how different the two are as a whole (0.5: indistinguishable), and
their impurity importances which features drive the difference."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._drift import DriftOptions, as_numbers

FOLDS = 3
MIN_ROWS = 50  # per side


def domain_classifier(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: list[tuple[str, str]],
    options: DriftOptions,
) -> dict:
    """``columns``: (name, kind) pairs present on both sides."""
    from sklearn.ensemble import ExtraTreesClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    out: dict = {
        "method": "extra trees, 3-fold cross-validated ROC-AUC",
        "threshold": options.domain_auc,
        "drifted": False,
    }
    if not columns:
        return {**out, "skipped": "no column present on both sides"}
    rng = np.random.default_rng(options.seed)
    ref = _sample(reference, options.domain_sample, rng)
    cur = _sample(current, options.domain_sample, rng)
    if min(len(ref), len(cur)) < MIN_ROWS:
        return {
            **out,
            "skipped": f"too few rows for the domain classifier: {min(len(ref), len(cur))} on "
            f"the smaller side, it needs {MIN_ROWS}",
        }
    names = [name for name, _ in columns]
    matrix = np.empty((len(ref) + len(cur), len(names)))
    for j, (name, kind) in enumerate(columns):
        both = pd.concat([ref[name], cur[name]], ignore_index=True)
        if kind == "number":
            matrix[:, j] = as_numbers(both)
        else:  # categories as integer codes; a category never seen in the reference gets its own
            codes, _ = pd.factorize(both.astype(object).where(both.notna(), None))
            matrix[:, j] = np.where(codes < 0, np.nan, codes)
    target = np.r_[np.zeros(len(ref)), np.ones(len(cur))]
    scores = np.zeros(len(target))
    importances = np.zeros(len(names))
    folds = StratifiedKFold(FOLDS, shuffle=True, random_state=options.seed)
    for train, test in folds.split(matrix, target):
        model = ExtraTreesClassifier(
            n_estimators=40,
            max_depth=8,
            min_samples_leaf=5,
            n_jobs=1,
            random_state=options.seed,
        ).fit(matrix[train], target[train])
        scores[test] = model.predict_proba(matrix[test])[:, 1]
        importances += model.feature_importances_ / FOLDS
    auc = float(roc_auc_score(target, scores))
    order = np.argsort(-importances)
    return {
        **out,
        "roc_auc": auc,
        "drifted": auc >= options.domain_auc,
        "rows": {"reference": len(ref), "current": len(cur)},
        "top_features": [
            {"feature": names[i], "importance": float(importances[i])} for i in order[:10]
        ],
    }


def _sample(frame: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    if len(frame) <= n:
        return frame
    return frame.iloc[np.sort(rng.choice(len(frame), n, replace=False))]
