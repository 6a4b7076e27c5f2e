"""Ranking: per-group metrics (NDCG@k, MAP@k), group sizes, and a time split by group."""

from __future__ import annotations

import re
from datetime import timedelta

import numpy as np
import pandas as pd

from ..errors import DataError
from ..features import AS_OF_COLUMN
from ._split import Split

GROUP_COLUMN = "group"
DEFAULT_K = 10


def ranking_key(metric) -> tuple[str, int]:
    """The ranking selection metric and its k, from the problem's metric (a ``MetricSpec`` or
    its name): ``ndcg``, ``map``, ``ndcg@5``, ``map@20`` (a ``k`` field on the metric, when the
    spec has one, sets k too); anything else (a binary metric a suggestion proposed) means
    NDCG@10."""
    name = getattr(metric, "name", metric)
    match = re.fullmatch(r"(ndcg|map)(?:@(\d+))?", str(name).lower())
    k = getattr(metric, "k", None)
    if not match:
        return "ndcg", int(k or DEFAULT_K)
    return match.group(1), int(match.group(2) or k or DEFAULT_K)


def group_bounds(groups: np.ndarray) -> np.ndarray:
    """Start offsets of the runs of equal values in ``groups`` (rows sorted by group), plus the
    end: group i is ``rows[bounds[i]:bounds[i + 1]]``."""
    groups = np.asarray(groups)
    if len(groups) == 0:
        return np.array([0])
    change = np.flatnonzero(groups[1:] != groups[:-1]) + 1
    return np.concatenate([[0], change, [len(groups)]])


def _dcg(gains: np.ndarray, scores: np.ndarray, discount: np.ndarray) -> float:
    """DCG with tied scores sharing the mean gain of their tie (as scikit-learn's ndcg_score)."""
    order = np.argsort(-scores, kind="stable")
    s, g = scores[order], gains[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    ends = np.r_[starts[1:], len(s)]
    return float(
        sum(g[a:b].mean() * discount[a:b].sum() for a, b in zip(starts, ends, strict=True))
    )


def ndcg_at_k(relevance: np.ndarray, scores: np.ndarray, k: int) -> float | None:
    """NDCG@k of one group (linear gains, log2 discount); None when no item is relevant."""
    relevance = np.asarray(relevance, dtype=float)
    scores = np.asarray(scores, dtype=float)
    n = len(relevance)
    discount = np.where(np.arange(n) < k, 1.0 / np.log2(np.arange(n) + 2.0), 0.0)
    ideal = float((np.sort(relevance)[::-1] * discount).sum())
    if ideal <= 0:
        return None
    return _dcg(relevance, scores, discount) / ideal


def ap_at_k(relevance: np.ndarray, scores: np.ndarray, k: int) -> float | None:
    """Average precision at k of one group: the mean of precision@i over the relevant items
    ranked i <= k, divided by min(k, number relevant); None when no item is relevant. Ties are
    broken by row order."""
    relevant = np.asarray(relevance, dtype=float) > 0
    total = int(relevant.sum())
    if total == 0:
        return None
    order = np.argsort(-np.asarray(scores, dtype=float), kind="stable")[:k]
    hits = relevant[order]
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((precision * hits).sum() / min(k, total))


def ranking_metrics(y: np.ndarray, scores: np.ndarray, groups: np.ndarray, k: int) -> dict:
    """NDCG@k and MAP@k averaged over the groups with at least one relevant item (a group
    without one cannot be ranked better or worse). ``groups`` holds each row's group; rows of
    a group need not be adjacent."""
    y = np.asarray(y, dtype=float)
    scores = np.asarray(scores, dtype=float)
    codes = pd.factorize(np.asarray(groups, dtype=object))[0]
    order = np.argsort(codes, kind="stable")
    bounds = group_bounds(codes[order])
    ndcg, ap = [], []
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        rows = order[a:b]
        value = ndcg_at_k(y[rows], scores[rows], k)
        if value is not None:
            ndcg.append(value)
            ap.append(ap_at_k(y[rows], scores[rows], k))
    return {
        "rows": int(len(y)),
        "groups": int(len(bounds) - 1),
        "groups_scored": len(ndcg),
        "positive_rate": float(y.mean()) if len(y) else None,
        "k": int(k),
        f"ndcg@{k}": float(np.mean(ndcg)) if ndcg else None,
        f"map@{k}": float(np.mean(ap)) if ap else None,
    }


def ranking_split(
    frame: pd.DataFrame, *, test_size: float, horizon_days: int, notes: list[str] | None = None
) -> Split:
    """Split whole groups by time: each group goes where its first impression falls (test: the
    latest ``test_size`` share of groups, validation: the latest 20% of the rest), so no group
    is on both sides; training groups end ``horizon_days`` (the click window) before a later
    split starts. Row indices come out ordered so each group's rows are adjacent."""
    notes = list(notes or [])
    codes = pd.factorize(frame[GROUP_COLUMN].astype(str))[0]
    start = pd.Series(frame[AS_OF_COLUMN].to_numpy()).groupby(codes).min()
    order = start.sort_values(kind="stable")
    times = order.to_numpy()
    n = len(order)
    if n < 5:
        raise DataError(
            f"a ranking problem needs at least 5 groups (lists of impressions) to split by time; "
            f"the dataset has {n}",
            hint="add impressions (more history), or set `group:` in the click label",
        )
    gap = np.timedelta64(int(timedelta(days=horizon_days).total_seconds()), "s")
    n_test = max(1, int(round(n * test_size)))
    test_start = times[n - n_test]
    test_groups = order.index[times >= test_start]
    rest = order[times + gap <= test_start] if gap else order[times < test_start]
    if len(rest) < 2:
        raise DataError(
            "a time split leaves fewer than 2 groups of impressions before the test period",
            hint="add older impressions, or lower training.test_size",
        )
    n_valid = max(1, int(round(len(rest) * 0.2)))
    valid_start = rest.to_numpy()[len(rest) - n_valid]
    valid_groups = rest.index[rest.to_numpy() >= valid_start]
    before = rest[rest < valid_start] if not gap else rest[rest.to_numpy() + gap <= valid_start]
    fit_groups = before.index
    if len(fit_groups) == 0:
        raise DataError(
            "a time split leaves no group of impressions to fit on before the validation period",
            hint="add older impressions, or lower training.test_size",
        )

    def rows_of(groups) -> np.ndarray:
        mask = np.isin(codes, np.asarray(groups))
        rows = np.flatnonzero(mask)
        return rows[np.argsort(codes[rows], kind="stable")]

    fit, valid, test = rows_of(fit_groups), rows_of(valid_groups), rows_of(test_groups)
    dropped = len(frame) - len(fit) - len(valid) - len(test)
    if dropped:
        notes.append(
            f"{dropped} impression(s) within {horizon_days} day(s) before a later split were "
            "left out of training, so no click window overlaps the period it is evaluated on"
        )
    return Split(fit, valid, test, "time", notes)


def group_sizes(groups: np.ndarray) -> np.ndarray:
    """Sizes of the runs of equal values (rows already adjacent by group), as LightGBM wants."""
    return np.diff(group_bounds(groups))
