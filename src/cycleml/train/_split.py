"""Train / validation / test splits. By time (cutoffs) by default, with a gap of one label
horizon so that no training label looks past the first cutoff it is evaluated on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from ..errors import DataError
from ..features import AS_OF_COLUMN, LABEL_COLUMN


@dataclass
class Split:
    fit: np.ndarray  # row indices
    valid: np.ndarray
    test: np.ndarray
    method: str
    notes: list[str]

    def sizes(self) -> dict:
        return {
            "fit": int(len(self.fit)),
            "valid": int(len(self.valid)),
            "test": int(len(self.test)),
        }


def make_split(
    frame: pd.DataFrame,
    *,
    method: str,
    test_size: float,
    horizon_days: int,
    seed: int,
    classify: bool,
) -> Split:
    notes: list[str] = []
    cutoffs = np.sort(frame[AS_OF_COLUMN].unique())
    if method == "time" and len(cutoffs) < 4:
        notes.append(
            f"a time split needs at least 4 cutoffs (have {len(cutoffs)}); used a "
            f"{'stratified' if classify else 'random'} split instead"
        )
        method = "stratified" if classify else "random"
    if method == "time":
        return _time_split(frame, cutoffs, test_size, horizon_days, notes)
    index = np.arange(len(frame))
    stratify = frame[LABEL_COLUMN] if (classify and method == "stratified") else None
    if method == "group":
        entity_col = frame.columns[0]
        groups = frame[entity_col].unique()
        rng = np.random.default_rng(seed)
        rng.shuffle(groups)
        n_test = max(1, int(len(groups) * test_size))
        test_groups = set(groups[:n_test])
        valid_groups = set(groups[n_test : n_test + max(1, int(len(groups) * 0.15))])
        in_test = frame[entity_col].isin(test_groups).to_numpy()
        in_valid = frame[entity_col].isin(valid_groups).to_numpy()
        return Split(index[~in_test & ~in_valid], index[in_valid], index[in_test], "group", notes)
    try:
        rest, test = train_test_split(
            index, test_size=test_size, random_state=seed, stratify=stratify
        )
        rest_strat = stratify.iloc[rest] if stratify is not None else None
        fit, valid = train_test_split(rest, test_size=0.2, random_state=seed, stratify=rest_strat)
    except ValueError as exc:
        raise DataError(
            f"cannot split {len(frame)} rows into train, validation and test: {exc}",
            hint="build a dataset with more rows (more cutoffs or entities)",
        ) from None
    return Split(np.sort(fit), np.sort(valid), np.sort(test), method, notes)


def _time_split(
    frame: pd.DataFrame, cutoffs: np.ndarray, test_size: float, horizon_days: int, notes: list[str]
) -> Split:
    gap = np.timedelta64(int(timedelta(days=horizon_days).total_seconds()), "s")
    n_test = max(1, int(round(len(cutoffs) * test_size)))
    test_start = cutoffs[-n_test]
    train_cutoffs = cutoffs[cutoffs + gap <= test_start]
    if len(train_cutoffs) < 2:
        raise DataError(
            "a time split leaves fewer than 2 training cutoffs before "
            f"{pd.Timestamp(test_start):%Y-%m-%d} "
            f"(with a {horizon_days}-day gap so training labels do not overlap the test period)",
            hint="add cutoffs (an earlier `cutoffs.start`), or lower training.test_size",
        )
    n_valid = max(1, int(round(len(train_cutoffs) * 0.2)))
    valid_cutoffs = train_cutoffs[-n_valid:]
    valid_start = valid_cutoffs[0]
    fit_cutoffs = train_cutoffs[train_cutoffs + gap <= valid_start]
    if len(fit_cutoffs) == 0:
        fit_cutoffs = train_cutoffs[:-n_valid]
        notes.append("too few cutoffs for a gap between fit and validation; used none")
    as_of = frame[AS_OF_COLUMN].to_numpy()
    index = np.arange(len(frame))
    fit = index[np.isin(as_of, fit_cutoffs)]
    # Validation picks the model and its threshold, so its labels must not reach into the test
    # period either: only cutoffs a full gap before the test start.
    valid = index[np.isin(as_of, valid_cutoffs)]
    test = index[as_of >= test_start]
    dropped = len(frame) - len(fit) - len(valid) - len(test)
    if dropped:
        notes.append(
            f"{dropped} row(s) at cutoffs within {horizon_days} days before a later split were "
            "left out of training, so no training label overlaps the period it is evaluated on"
        )
    return Split(fit, valid, test, "time", notes)


def cv_folds(
    frame: pd.DataFrame,
    rows: np.ndarray,
    *,
    method: str,
    folds: int,
    horizon_days: int,
    seed: int,
    classify: bool,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Cross-validation folds over ``rows`` (the training part: fit + validation), as pairs of
    row indices. A time split gets time-ordered folds (an expanding window over the cutoffs,
    each fold validated on later cutoffs, with the label-horizon gap); a group split keeps every
    entity on one side; otherwise (stratified) shuffled K folds with the seed."""
    from sklearn.model_selection import GroupKFold, KFold, StratifiedKFold

    rows = np.asarray(rows)
    part = frame.iloc[rows]
    if method == "time":
        cutoffs = np.sort(part[AS_OF_COLUMN].unique())
        gap = np.timedelta64(int(timedelta(days=horizon_days).total_seconds()), "s")
        chunks = [c for c in np.array_split(cutoffs, folds + 1) if len(c)]
        as_of = part[AS_OF_COLUMN].to_numpy()
        out = []
        for i in range(1, len(chunks)):
            start = chunks[i][0]
            train_cut = cutoffs[(cutoffs + gap <= start) & (cutoffs < start)]
            tr = rows[np.isin(as_of, train_cut)]
            va = rows[np.isin(as_of, chunks[i])]
            if len(tr) and len(va):
                out.append((tr, va))
        if out:
            return out
    y = part[LABEL_COLUMN].to_numpy()
    if method == "group":
        splitter = GroupKFold(n_splits=min(folds, part[frame.columns[0]].nunique()))
        pairs = splitter.split(rows, y, groups=part[frame.columns[0]].to_numpy())
    elif classify:
        smallest = int(pd.Series(y).value_counts().min())
        splitter = StratifiedKFold(
            n_splits=max(2, min(folds, smallest)), shuffle=True, random_state=seed
        )
        pairs = splitter.split(rows, y)
    else:
        pairs = KFold(n_splits=folds, shuffle=True, random_state=seed).split(rows)
    return [(rows[a], rows[b]) for a, b in pairs]
