"""Ranking's evidence checks: the overfitting gap (NDCG on the fit groups vs the test groups),
the learning curve over shares of the fit groups, and per-segment NDCG / MAP, each checked
against scikit-learn's ``ndcg_score`` or a refit by hand."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.base import clone

from cycleml.features import FeatureColumn
from cycleml.spec import parse_spec
from cycleml.train import TaskKit, prepare_frame, ranking_metrics, ranking_split, train_candidates

COLUMNS = [FeatureColumn("activity_count_7d", "activity", "number")]


def _spec(training: str):
    spec = parse_spec(
        f"""\
spec_version: 1
name: x
sources:
  imps: {{path: i.csv, entity: user_id, time: ts}}
problems:
  p:
    entity: user_id
    task: ranking
    label: {{kind: click, source: imps, item: product_id, column: clicked}}
    features: [activity]
features:
  activity: {{source: imps, windows: [7d], aggregate: {{count: "*"}}}}
training: {training}
"""
    )
    return spec.problems["p"], spec.training


def _frame(n_groups=300, per=6, n_items=40, signal=2.0, seed=0):
    """Impression lists: clicks follow the item's hidden quality (times ``signal``) and the
    user's eagerness; ``tier`` is an attribute of the user (a segment)."""
    rng = np.random.default_rng(seed)
    items = [f"p{i}" for i in range(n_items)]
    quality = dict(zip(items, rng.normal(size=n_items), strict=True))
    rows = []
    for g in range(n_groups):
        user = f"u{g % 50}"
        t = datetime(2024, 1, 1) + timedelta(hours=6 * g)
        eager = rng.normal()
        for item in rng.choice(items, size=per, replace=False):
            p = 1 / (1 + np.exp(-(quality[item] * signal + eager - 1.5)))
            tier = "gold" if g % 50 < 15 else "basic"
            rows.append((user, t, item, f"{user}@{t}", eager, tier, int(rng.random() < p)))
    return pd.DataFrame(
        rows,
        columns=["user_id", "as_of", "product_id", "group", "activity_count_7d", "tier", "label"],
    )


def _sk_ndcg(y, scores, groups, k=10) -> float:
    """Mean scikit-learn NDCG@k over the groups with a click."""
    y, scores, groups = np.asarray(y), np.asarray(scores), np.asarray(groups)
    return float(
        np.mean(
            [
                skm.ndcg_score([y[groups == g]], [scores[groups == g]], k=k)
                for g in pd.unique(groups)
                if y[groups == g].sum() > 0
            ]
        )
    )


def _train(frame, training="{algorithms: [baseline, lightgbm], tune: {trials: 2}}", budget=20):
    problem, spec = _spec(training)
    result = train_candidates(frame, COLUMNS, problem, spec, horizon_days=0, budget=budget)
    split = ranking_split(frame, test_size=spec.test_size, horizon_days=0)
    x = prepare_frame(frame, result.columns)
    return result, split, x


def test_ranking_overfitting_gap_is_fit_groups_vs_test_groups():
    frame = _frame()
    result, split, x = _train(frame)
    overfit = result.charts["overfit"]
    fit = frame.iloc[split.fit]
    train_ndcg = _sk_ndcg(fit.label, result.pipeline.predict(x.iloc[split.fit]), fit.group)
    assert overfit["train"] == pytest.approx(train_ndcg)
    assert overfit["test"] == pytest.approx(result.metrics["ndcg@10"])
    assert overfit["gap"] == pytest.approx(train_ndcg - result.metrics["ndcg@10"])


def test_ranking_on_random_clicks_is_flagged_as_overfitting():
    # clicks ignore the items: whatever the model learns of them on the fit groups is noise
    frame = _frame(n_groups=240, n_items=60, signal=0.0, seed=3)
    result, _, _ = _train(frame, "{algorithms: [baseline, lightgbm], tune: {trials: 2}}")
    overfit = result.charts["overfit"]
    assert overfit["gap"] > 0.05
    found = [s for s in result.suggestions if s["id"] == "overfitting"]
    assert found and found[0]["evidence"]["train_ndcg@10"] == round(overfit["train"], 4)


def test_ranking_learning_curve_refits_on_shares_of_the_fit_groups():
    frame = _frame(n_groups=400, n_items=150, per=6, seed=1)
    # a generous budget: the curve is skipped when the time left does not cover two fits
    result, split, x = _train(frame, budget=120)
    curve = result.charts["learning_curve"]
    n_groups = frame.iloc[split.fit].group.nunique()
    assert [p["share"] for p in curve] == [0.25, 0.5, 0.75, 1.0]
    assert [p["groups"] for p in curve] == [int(n_groups * s) for s in (0.25, 0.5, 0.75, 1.0)]
    assert curve[-1]["rows"] == len(split.fit)
    # the last point is the chosen model refitted on every fit group: its validation NDCG
    kit = TaskKit(
        "ranking",
        "ndcg@10",
        True,
        x,
        frame.label.to_numpy(),
        groups=pd.factorize(frame.group.astype(str))[0],
    )
    refit = kit.fit(clone(result.pipeline), split.fit)
    valid = frame.iloc[split.valid]
    expected = _sk_ndcg(valid.label, refit.predict(x.iloc[split.valid]), valid.group)
    assert curve[-1]["ndcg@10"] == pytest.approx(expected)
    # "more data would help" exactly when the last quarter of the groups still raised NDCG
    rising = curve[-1]["ndcg@10"] - curve[-2]["ndcg@10"] > 0.005
    assert rising == ("more_data" in [s["id"] for s in result.suggestions])


def test_ranking_metrics_per_segment_rank_each_segment_within_its_groups():
    frame = _frame()
    result, split, x = _train(
        frame, "{algorithms: [baseline, lightgbm], tune: {trials: 2}, segment: tier}"
    )
    test = frame.iloc[split.test]
    scores = result.pipeline.predict(x.iloc[split.test])
    by_segment = {s["segment"]: s for s in result.segments}
    assert set(by_segment) == {"basic", "gold"}
    for tier, seg in by_segment.items():
        m = (test.tier == tier).to_numpy()
        assert seg["rows"] == int(m.sum())
        assert seg["ndcg@10"] == pytest.approx(_sk_ndcg(test.label[m], scores[m], test.group[m]))
        expected = ranking_metrics(test.label[m], scores[m], test.group[m], 10)
        assert seg["map@10"] == pytest.approx(expected["map@10"])
    assert not any("per-segment" in n for n in result.notes)
