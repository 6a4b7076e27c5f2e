"""Multiclass, ranking and forecast training on small synthetic data: metrics checked against
scikit-learn's own functions or by hand, the bundle's outputs, LightGBM pruning, bad input."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from cycleml.errors import DataError
from cycleml.features import FeatureColumn
from cycleml.registry import ModelBundle
from cycleml.spec import parse_spec
from cycleml.train import (
    ItemMean,
    ItemStats,
    ranking_key,
    ranking_metrics,
    ranking_split,
    train_candidates,
)
from cycleml.train._ranking import ap_at_k, ndcg_at_k

LABELS = {
    "multiclass": "{kind: column, source: users, column: tier}",
    "ranking": "{kind: click, source: imps, item: product_id, column: clicked}",
    "forecast": "{kind: forecast, source: sales, horizon: 3, column: qty}",
}
ENTITY = {"multiclass": "user_id", "ranking": "user_id", "forecast": "product_id"}


def _spec(task: str, training: str, metric: str = "") -> tuple:
    spec = parse_spec(
        f"""\
spec_version: 1
name: x
sources:
  users: {{path: u.csv, entity: user_id, time: ts}}
  imps: {{path: i.csv, entity: user_id, time: ts}}
  sales: {{path: s.csv, entity: product_id, time: ts}}
problems:
  p:
    entity: {ENTITY[task]}
    task: {task}
    label: {LABELS[task]}
    {"cutoffs: {every: 1d, start: 2024-01-01}" if task == "forecast" else ""}
    {metric}
    features: [activity]
features:
  activity: {{source: users, windows: [7d], aggregate: {{count: "*"}}}}
training: {training}
"""
    )
    return spec.problems["p"], spec.training


# -- ranking metrics -----------------------------------------------------------------------------


def test_ranking_metrics_match_scikit_learn_per_group():
    rng = np.random.default_rng(3)
    sizes = rng.integers(2, 9, size=40)
    groups = np.repeat([f"g{i}" for i in range(len(sizes))], sizes)
    y = (rng.random(len(groups)) < 0.3).astype(int)
    scores = np.round(rng.random(len(groups)), 1)  # rounded: ties inside groups
    got = ranking_metrics(y, scores, groups, k=3)
    ndcg, ap, scored = [], [], 0
    for g in np.unique(groups):
        m = groups == g
        if y[m].sum() == 0:
            continue  # no relevant item: the group is not scored
        scored += 1
        ndcg.append(skm.ndcg_score([y[m]], [scores[m]], k=3))
    assert got["groups"] == len(sizes) and got["groups_scored"] == scored
    assert got["ndcg@3"] == pytest.approx(np.mean(ndcg))
    # MAP with k past every group's size and no ties is scikit-learn's average precision
    distinct = rng.permutation(len(groups)) / len(groups)
    full = ranking_metrics(y, distinct, groups, k=10)
    for g in np.unique(groups):
        m = groups == g
        if y[m].sum():
            ap.append(skm.average_precision_score(y[m], distinct[m]))
    assert full["map@10"] == pytest.approx(np.mean(ap))


def test_ranking_k_comes_from_the_metric_name():
    assert ranking_key("ndcg@5") == ("ndcg", 5) and ranking_key("map") == ("map", 10)
    assert ranking_key("pr_auc") == ("ndcg", 10)  # a binary metric a suggestion proposed


def test_ndcg_and_ap_at_k_by_hand():
    # ranked order by score: items b(1), a(0), c(1), d(0)
    rel, score = np.array([0, 1, 1, 0]), np.array([0.8, 0.9, 0.5, 0.1])
    # AP@2: relevant in the top 2: b at rank 1 -> precision 1; divided by min(2, 2 relevant)
    assert ap_at_k(rel, score, 2) == pytest.approx(0.5)
    # AP@4: b rank 1 (1/1), c rank 3 (2/3) -> (1 + 2/3) / 2
    assert ap_at_k(rel, score, 4) == pytest.approx((1 + 2 / 3) / 2)
    dcg = 1 / np.log2(2) + 1 / np.log2(4)
    ideal = 1 / np.log2(2) + 1 / np.log2(3)
    assert ndcg_at_k(rel, score, 4) == pytest.approx(dcg / ideal)
    assert ndcg_at_k(np.zeros(3), score[:3], 3) is None


def test_item_statistics_are_learned_from_training_rows_only():
    keys = pd.DataFrame({"item": ["a", "a", "a", "b", "c"]})
    y = np.array([1, 0, 1, 0, 0])
    mean = y.mean()
    enc = ItemStats(prior=2.0).fit(keys, y)
    out = enc.transform(pd.DataFrame({"item": ["a", "zz", None]}))
    assert out[0, 0] == pytest.approx(np.log1p(3))
    assert out[0, 1] == pytest.approx((2 + 2 * mean) / (3 + 2))
    assert out[1, 0] == 0 and out[1, 1] == pytest.approx(mean)  # unseen item: the prior
    # training rows get out-of-fold numbers: never their own label
    inside = ItemStats(prior=2.0).fit_transform(keys, y)
    assert inside.shape == (5, 2) and not np.allclose(inside, enc.transform(keys))
    base = ItemMean(column="item", prior=2.0).fit(keys, y)
    assert base.predict(pd.DataFrame({"item": ["a"]}))[0] == pytest.approx(out[0, 1])


# -- ranking training ----------------------------------------------------------------------------


def _ranking_frame(n_groups=300, per=6, seed=0):
    """Impression lists: items have a hidden quality; clicks follow quality + a user feature."""
    rng = np.random.default_rng(seed)
    items = [f"p{i}" for i in range(40)]
    quality = dict(zip(items, rng.normal(size=len(items)), strict=True))
    rows = []
    start = datetime(2024, 1, 1)
    for g in range(n_groups):
        user = f"u{g % 50}"
        t = start + timedelta(hours=6 * g)
        shown = rng.choice(items, size=per, replace=False)
        eager = rng.normal()
        for it in shown:
            p = 1 / (1 + np.exp(-(quality[it] * 2 + eager - 1.5)))
            rows.append((user, t, it, f"{user}@{t}", eager, int(rng.random() < p)))
    return pd.DataFrame(
        rows, columns=["user_id", "as_of", "product_id", "group", "activity_count_7d", "label"]
    )


def test_ranking_split_keeps_groups_whole_and_in_time_order():
    frame = _ranking_frame()
    split = ranking_split(frame, test_size=0.2, horizon_days=1)
    parts = {n: frame.iloc[getattr(split, n)] for n in ("fit", "valid", "test")}
    assert not set(parts["fit"]["group"]) & set(parts["test"]["group"])
    assert not set(parts["valid"]["group"]) & set(parts["test"]["group"])
    assert parts["fit"]["as_of"].max() + timedelta(days=1) <= parts["valid"]["as_of"].min()
    assert parts["valid"]["as_of"].max() + timedelta(days=1) <= parts["test"]["as_of"].min()
    for rows in (split.fit, split.valid, split.test):  # each group's rows adjacent
        g = frame["group"].to_numpy()[rows]
        runs = np.r_[True, g[1:] != g[:-1]].sum()
        assert runs == len(set(g))


def test_ranking_trains_lambdarank_against_the_popularity_baseline():
    frame = _ranking_frame()
    problem, training = _spec(
        "ranking", "{algorithms: [baseline, lightgbm], tune: {trials: 3}}", ""
    )
    columns = [FeatureColumn("activity_count_7d", "activity", "number")]
    # three trials end the tuning; the budget leaves room for the evidence on a loaded machine
    result = train_candidates(frame, columns, problem, training, horizon_days=0, budget=30)
    assert [b["algorithm"] for b in result.leaderboard] == ["baseline", "lightgbm"]
    assert result.split["selected_by"] == "validation ndcg@10"  # the default for a binary metric
    assert [c.name for c in result.columns] == ["activity_count_7d", "product_id"]
    # the chosen model's test NDCG@5, recomputed with scikit-learn per group
    split = ranking_split(frame, test_size=training.test_size, horizon_days=0)
    test = frame.iloc[split.test]
    bundle = ModelBundle(
        "p", "ranking", result.algorithm, result.pipeline, result.columns, None, "user_id"
    )
    scores, labels = bundle.outputs(test.drop(columns=["label", "group"]))
    assert labels is None
    values = [
        skm.ndcg_score([test.label[m]], [scores[m.to_numpy()]], k=10)
        for g in test.group.unique()
        if test.label[(m := test.group == g)].sum()
    ]
    assert result.metrics["ndcg@10"] == pytest.approx(np.mean(values))
    # the item's quality is learned from its training clicks: both beat a random order
    shuffled = np.random.default_rng(1).random(len(test))
    chance = ranking_metrics(test.label, shuffled, test.group, 10)["ndcg@10"]
    assert all(b["test"]["ndcg@10"] > chance + 0.05 for b in result.leaderboard)
    # permutation importance in NDCG on the validation groups: the item carries the signal
    # (the user's feature is the same for every item of a group: it cannot order them)
    importance = {r["feature"]: r["importance"] for r in result.charts["importance"]}
    assert max(importance, key=importance.get) == "product_id"
    assert importance["product_id"] > 0.05 and importance["activity_count_7d"] < 0.02


def test_ranking_groups_of_one_item_are_refused():
    frame = _ranking_frame(n_groups=30)
    frame["group"] = [f"g{i}" for i in range(len(frame))]
    problem, training = _spec("ranking", "{algorithms: [baseline, lightgbm]}")
    columns = [FeatureColumn("activity_count_7d", "activity", "number")]
    with pytest.raises(DataError, match="one item only") as info:
        train_candidates(frame, columns, problem, training, horizon_days=0, budget=5)
    assert "group" in info.value.hint


# -- multiclass ----------------------------------------------------------------------------------


def _multiclass_frame(n=450, seed=0, classes=("bronze", "gold", "silver")):
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    code = np.where(x1 + rng.normal(scale=0.4, size=n) > 0.4, 2, 0)
    code = np.where((code == 0) & (x2 > 0.3), 1, code)
    return pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in range(n)],
            "as_of": [datetime(2024, 1, 1) + timedelta(days=7 * (i % 10)) for i in range(n)],
            "x1": x1,
            "x2": x2,
            "label": [classes[c] for c in code],
        }
    )


COLUMNS = [FeatureColumn("x1", "g", "number"), FeatureColumn("x2", "g", "number")]


def test_multiclass_metrics_match_scikit_learn_and_outputs_give_class_values():
    frame = _multiclass_frame()
    problem, training = _spec(
        "multiclass",
        "{split: stratified, algorithms: [baseline, logistic, lightgbm], tune: {trials: 2}}",
    )
    result = train_candidates(frame, COLUMNS, problem, training, horizon_days=7, budget=30)
    assert result.classes == ["bronze", "gold", "silver"]
    # small data: chosen by the cross-validated macro one-vs-rest AUC
    assert result.split["selected_by"] == "3-fold cross-validated roc_auc_ovr on the training part"
    baseline = next(b for b in result.leaderboard if b["algorithm"] == "baseline")
    assert baseline["test"]["roc_auc_ovr"] == pytest.approx(0.5)  # priors rank nothing
    bundle = ModelBundle(
        "p",
        "multiclass",
        result.algorithm,
        result.pipeline,
        COLUMNS,
        None,
        "user_id",
        classes=result.classes,
    )
    # the test rows are the stratified split's: recover them from the reported confusion
    from cycleml.train import make_split

    split = make_split(
        frame,
        method="stratified",
        test_size=training.test_size,
        horizon_days=7,
        seed=training.seed,
        classify=True,
    )
    test = frame.iloc[split.test]
    proba = bundle.probabilities(test)
    assert list(proba.columns) == result.classes
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    m = result.metrics
    assert m["roc_auc_ovr"] == pytest.approx(
        skm.roc_auc_score(test.label, proba.to_numpy(), multi_class="ovr", labels=result.classes)
    )
    assert m["log_loss"] == pytest.approx(
        skm.log_loss(test.label, proba.to_numpy(), labels=result.classes), rel=1e-6
    )
    scores, labels = bundle.outputs(test)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(test.label, labels))
    assert m["f1_macro"] == pytest.approx(skm.f1_score(test.label, labels, average="macro"))
    assert m["f1_weighted"] == pytest.approx(skm.f1_score(test.label, labels, average="weighted"))
    np.testing.assert_allclose(scores, proba.to_numpy().max(axis=1))
    assert set(labels) <= set(result.classes)
    assert (
        m["confusion"]["matrix"]
        == skm.confusion_matrix(test.label, labels, labels=result.classes).tolist()
    )
    recall = skm.recall_score(test.label, labels, labels=["gold"], average=None)[0]
    assert m["per_class"]["gold"]["recall"] == pytest.approx(recall)
    json.dumps(result.metrics)  # everything stored is JSON


def test_multiclass_integer_classes_round_trip_as_ints():
    frame = _multiclass_frame(classes=(3, 7, 9))
    problem, training = _spec(
        "multiclass", "{split: stratified, algorithms: [baseline, logistic], tune: {top: 0}}"
    )
    result = train_candidates(frame, COLUMNS, problem, training, horizon_days=7, budget=10)
    assert result.classes == [3, 7, 9] and json.loads(json.dumps(result.classes)) == [3, 7, 9]
    bundle = ModelBundle(
        "p",
        "multiclass",
        result.algorithm,
        result.pipeline,
        COLUMNS,
        None,
        "user_id",
        classes=result.classes,
    )
    _, labels = bundle.outputs(frame.head(20))
    assert all(type(v) is int and v in (3, 7, 9) for v in labels)


def test_multiclass_with_one_class_is_refused():
    frame = _multiclass_frame()
    frame["label"] = "gold"
    problem, training = _spec("multiclass", "{algorithms: [baseline, logistic]}")
    with pytest.raises(DataError, match="one class only"):
        train_candidates(frame, COLUMNS, problem, training, horizon_days=7, budget=5)


# -- forecast ------------------------------------------------------------------------------------


def _forecast_frame(items=12, days=40, horizon=3, seed=0):
    rng = np.random.default_rng(seed)
    level = rng.uniform(2, 20, size=items)
    rows = []
    for d in range(days):
        for i in range(items):
            recent = level[i] * (1 + 0.1 * np.sin(d / 3)) + rng.normal()
            for h in range(1, horizon + 1):
                y = max(0.0, level[i] * (1 + 0.1 * np.sin((d + h) / 3)) + rng.normal())
                rows.append((f"p{i}", datetime(2024, 1, 1) + timedelta(days=d), h, recent, y))
    return pd.DataFrame(
        rows, columns=["product_id", "as_of", "horizon", "activity_count_7d", "label"]
    )


def test_forecast_trains_over_the_horizon_with_per_horizon_metrics():
    frame = _forecast_frame()
    problem, training = _spec(
        "forecast",
        "{algorithms: [baseline, logistic, lightgbm], tune: {trials: 2}}",
        "metric: {name: mae}",
    )
    columns = [
        FeatureColumn("activity_count_7d", "activity", "number"),
        FeatureColumn("horizon", "label", "number"),
    ]
    result = train_candidates(frame, columns, problem, training, horizon_days=3, budget=20)
    assert result.split["method"] == "time"
    assert [c.name for c in result.columns][-1] == "product_id"
    from cycleml.train import split_for

    split = split_for(frame, problem, training, 3)
    fit, test = frame.iloc[split.fit], frame.iloc[split.test]
    assert fit["as_of"].max() + timedelta(days=3) <= test["as_of"].min()  # time split with gap
    bundle = ModelBundle(
        "p", "forecast", result.algorithm, result.pipeline, result.columns, None, "product_id"
    )
    predicted, labels = bundle.outputs(test.drop(columns=["label"]))
    assert labels is None
    m = result.metrics
    assert m["mae"] == pytest.approx(skm.mean_absolute_error(test.label, predicted))
    assert [r["horizon"] for r in m["by_horizon"]] == [1, 2, 3]
    for row in m["by_horizon"]:
        mask = (test.horizon == row["horizon"]).to_numpy()
        assert row["rmse"] == pytest.approx(
            np.sqrt(skm.mean_squared_error(test.label[mask], predicted[mask]))
        )
    # the per-item mean baseline is on the board and something beats it
    board = {b["algorithm"]: b["test"]["mae"] for b in result.leaderboard}
    item_mean = fit.groupby("product_id").label.mean()
    assert board["baseline"] < skm.mean_absolute_error(
        test.label, np.full(len(test), fit.label.mean())
    )
    assert item_mean.nunique() > 1 and min(board.values()) <= board["baseline"]


def test_forecast_label_with_missing_values_is_refused():
    frame = _forecast_frame(days=10)
    frame.loc[5, "label"] = np.nan
    problem, training = _spec("forecast", "{algorithms: [baseline, lightgbm]}")
    columns = [FeatureColumn("activity_count_7d", "activity", "number")]
    with pytest.raises(DataError, match="missing value"):
        train_candidates(frame, columns, problem, training, horizon_days=3, budget=5)


# -- LightGBM pruning ----------------------------------------------------------------------------


def test_lightgbm_trials_are_pruned_while_boosting():
    import optuna

    from cycleml.train import TaskKit, prepare_frame
    from cycleml.train._split import cv_folds
    from cycleml.train._tune import REPORT_EVERY, pruning_callback, tune

    frame = _multiclass_frame(n=600)
    frame["label"] = (frame["label"] == "silver").astype(int)
    x, y = prepare_frame(frame, COLUMNS), frame["label"].to_numpy()
    folds = cv_folds(
        frame,
        np.arange(len(frame)),
        method="stratified",
        folds=2,
        horizon_days=7,
        seed=0,
        classify=True,
    )
    result = tune(
        "lightgbm",
        "binary",
        COLUMNS,
        x,
        y,
        folds,
        key="roc_auc",
        higher=True,
        seed=0,
        threads=1,
        deadline=1e12,
        trials=14,
        patience=None,
    )
    assert result.trials == 14 and result.pruned >= 1
    assert any(h["state"] == "PRUNED" for h in result.history)
    # the callback reports every REPORT_EVERY iterations, at fold-offset steps
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    kit = TaskKit("binary", "roc_auc", True, x, y)
    from cycleml.train import make_pipeline_for
    from cycleml.train._tune import _fit_lightgbm_pruned

    pipe = make_pipeline_for(
        "lightgbm", "binary", COLUMNS, seed=0, threads=1, params={"n_estimators": 35}
    )
    _fit_lightgbm_pruned(kit, pipe, folds[1][0], folds[1][1], trial, 1, 1e12)
    steps = sorted(study.trials[0].intermediate_values)
    assert steps == [100_000 + REPORT_EVERY * i for i in (1, 2, 3)]
    assert callable(pruning_callback(trial, "auc", 1.0, 0, 1e12))


def test_lambdarank_tuning_prunes_and_reports_the_cross_validated_ndcg():
    from cycleml.train import TaskKit, make_pipeline_for, prepare_frame
    from cycleml.train._split import cv_folds
    from cycleml.train._trainer import _group_ordered
    from cycleml.train._tune import tune

    frame = _ranking_frame()
    columns = [
        FeatureColumn("activity_count_7d", "activity", "number"),
        FeatureColumn("product_id", "item", "category"),
    ]
    x, y = prepare_frame(frame, columns), frame["label"].to_numpy()
    groups = pd.factorize(frame["group"])[0]
    kit = TaskKit("ranking", "ndcg@10", True, x, y, groups=groups, k=10)
    split = ranking_split(frame, test_size=0.2, horizon_days=0)
    rows = np.concatenate([split.fit, split.valid])
    folds = cv_folds(frame, rows, method="time", folds=3, horizon_days=0, seed=0, classify=False)
    folds = _group_ordered(folds, groups)
    result = tune(
        "lightgbm",
        "ranking",
        columns,
        x,
        y,
        folds,
        key="ndcg@10",
        higher=True,
        seed=0,
        threads=1,
        deadline=1e12,
        trials=8,
        patience=None,
        kit=kit,
    )
    assert result.trials == 8 and result.pruned >= 1
    values = []
    for train_rows, valid_rows in folds:
        pipe = make_pipeline_for(
            "lightgbm", "ranking", columns, seed=0, threads=1, params=result.params
        )
        kit.fit(pipe, train_rows)
        scores = pipe.predict(x.iloc[valid_rows])
        g, t = groups[valid_rows], y[valid_rows]
        values.append(
            np.mean(
                [
                    skm.ndcg_score([t[g == v]], [scores[g == v]], k=10)
                    for v in np.unique(g)
                    if t[g == v].sum()
                ]
            )
        )
    assert result.best_cv == pytest.approx(np.mean(values))


def test_ranking_with_too_few_groups_to_split_is_refused():
    frame = _ranking_frame(n_groups=4)
    problem, training = _spec("ranking", "{algorithms: [baseline, lightgbm]}")
    columns = [FeatureColumn("activity_count_7d", "activity", "number")]
    with pytest.raises(DataError, match="at least 5 groups"):
        train_candidates(frame, columns, problem, training, horizon_days=0, budget=5)


def test_multiclass_label_with_missing_values_is_refused():
    frame = _multiclass_frame()
    frame.loc[3, "label"] = None
    problem, training = _spec("multiclass", "{algorithms: [baseline, logistic]}")
    with pytest.raises(DataError, match="1 missing value") as info:
        train_candidates(frame, COLUMNS, problem, training, horizon_days=7, budget=5)
    assert "filter them out" in info.value.hint
