"""Training on the demo churn problem: leaderboard, baseline, time split, threshold, metrics
checked against scikit-learn, and bad input that must not register a model."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.metrics import precision_recall_curve

from cycleml import Project
from cycleml.errors import DataError
from cycleml.features import FeatureColumn, get_dataset, load_dataset
from cycleml.spec import parse_spec
from cycleml.train import choose_threshold, make_split, train_candidates

HORIZON = 30  # the demo churn label: no event in the next 30 days


@pytest.fixture(scope="module")
def demo_state(trained_demo: Path):
    """Read-only view of the session's trained demo: the production model, its bundle and the
    dataset it was trained on."""
    project = Project(trained_demo)
    model, bundle = project.load_model("churn")
    dataset = get_dataset(project.store, model.dataset_version_id)
    frame = load_dataset(dataset, project.artifacts)
    training = project.spec.training
    project.close()
    return model, bundle, frame, training


def _split(frame, training):
    return make_split(
        frame,
        method=training.split,
        test_size=training.test_size,
        horizon_days=HORIZON,
        seed=training.seed,
        classify=True,
    )


def test_leaderboard_has_the_baseline_and_the_chosen_model_beats_it(demo_state):
    model, _, _, training = demo_state
    board = {entry["algorithm"]: entry for entry in model.leaderboard}
    assert list(board) == list(training.algorithms)
    assert "baseline" in board
    assert len([a for a in board if a != "baseline"]) >= 2
    chosen = [a for a, entry in board.items() if entry["chosen"]]
    assert chosen == [model.algorithm] and model.algorithm != "baseline"
    # chosen on validation ROC-AUC
    best_valid = max(board, key=lambda a: board[a]["valid"]["roc_auc"])
    assert best_valid == model.algorithm
    assert board[model.algorithm]["test"]["roc_auc"] > board["baseline"]["test"]["roc_auc"]
    assert board["baseline"]["test"]["roc_auc"] == pytest.approx(0.5)
    assert model.metrics == board[model.algorithm]["test"]


def test_time_split_keeps_the_future_out_of_training(demo_state):
    _, _, frame, training = demo_state
    split = _split(frame, training)
    assert split.method == "time"
    as_of = frame["as_of"].to_numpy()
    fit, valid, test = (set(as_of[i]) for i in (split.fit, split.valid, split.test))
    assert fit and valid and test
    assert not (set(split.fit) & set(split.valid) | set(split.fit) & set(split.test))
    assert not set(split.valid) & set(split.test)
    gap = np.timedelta64(HORIZON, "D")
    # every training (fit or validation) label window [c, c + 30d) ends before the first test
    # cutoff, and every fit label window before the first validation cutoff
    assert max(fit | valid) + gap <= min(test)
    assert max(fit) + gap <= min(valid)
    # the test period is the last cutoffs
    assert min(test) > max(fit | valid)
    assert max(test) == as_of.max()


def test_time_split_on_a_small_schedule():
    cutoffs = [datetime(2024, 1, 1) + timedelta(days=7 * i) for i in range(12)]
    frame = pd.DataFrame(
        {
            "user_id": [f"u{j}" for _ in cutoffs for j in range(3)],
            "as_of": [c for c in cutoffs for _ in range(3)],
            "label": [j % 2 for _ in cutoffs for j in range(3)],
        }
    )
    split = make_split(frame, method="time", test_size=0.25, horizon_days=14, seed=0, classify=True)
    day = frame["as_of"]
    # 12 cutoffs, 3 for test (Mar 4 .. Mar 18); training cutoffs need c + 14d <= Mar 4 -> up to
    # Feb 19 (9 cutoffs, Feb 26 is left out); 2 of them validate (Feb 12, 19), and fit needs
    # c + 14d <= Feb 12 -> up to Jan 29 (5 cutoffs; Feb 5 is left out)
    assert sorted(set(day[split.test])) == [pd.Timestamp(c) for c in cutoffs[9:]]
    assert sorted(set(day[split.valid])) == [pd.Timestamp(c) for c in cutoffs[6:8]]
    assert sorted(set(day[split.fit])) == [pd.Timestamp(c) for c in cutoffs[:5]]
    assert any("left out of training" in note for note in split.notes)


def test_too_few_cutoffs_for_a_time_split_falls_back_with_a_note():
    frame = pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in range(40)],
            "as_of": [datetime(2024, 1, 1) + timedelta(days=7 * (i % 3)) for i in range(40)],
            "label": [i % 2 for i in range(40)],
        }
    )
    split = make_split(frame, method="time", test_size=0.2, horizon_days=7, seed=0, classify=True)
    assert split.method == "stratified"
    assert any("at least 4 cutoffs" in note for note in split.notes)


def test_metrics_equal_sklearn_on_the_same_predictions(demo_state):
    model, bundle, frame, training = demo_state
    split = _split(frame, training)
    test = frame.iloc[split.test]
    y = test["label"].to_numpy().astype(int)
    score = bundle.score(test)
    predicted = (score >= model.threshold).astype(int)
    m = model.metrics
    assert m["rows"] == len(test)
    assert m["threshold"] == pytest.approx(model.threshold)
    assert m["positive_rate"] == pytest.approx(y.mean())
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, score), abs=1e-9)
    assert m["pr_auc"] == pytest.approx(skm.average_precision_score(y, score), abs=1e-9)
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, score), abs=1e-6)
    assert m["brier"] == pytest.approx(skm.brier_score_loss(y, score), abs=1e-9)
    assert m["precision"] == pytest.approx(skm.precision_score(y, predicted))
    assert m["recall"] == pytest.approx(skm.recall_score(y, predicted))
    assert m["f1"] == pytest.approx(skm.f1_score(y, predicted))
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, predicted))
    tn, fp, fn, tp = skm.confusion_matrix(y, predicted).ravel()
    assert m["confusion"] == {"tn": tn, "fp": fp, "fn": fn, "tp": tp}


def test_threshold_meets_the_recall_goal_on_validation(demo_state):
    model, bundle, frame, training = demo_state
    goal = 0.7  # the demo's metric: {name: recall, goal: 0.7}
    split = _split(frame, training)
    valid = frame.iloc[split.valid]
    y = valid["label"].to_numpy().astype(int)
    score = bundle.score(valid)
    recall_at = skm.recall_score(y, (score >= model.threshold).astype(int))
    assert recall_at >= goal
    # and it is the highest such threshold: the next higher validation score misses the goal
    higher = np.unique(score[score > model.threshold])
    if len(higher):
        assert skm.recall_score(y, (score >= higher[0]).astype(int)) < goal


# -- choose_threshold against precision_recall_curve ------------------------------------------

Y = np.array([0, 1, 0, 1, 1, 0, 1, 0])
S = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
# positives at 0.2, 0.4, 0.5, 0.7. At threshold t (score >= t):
#   t       0.1  0.2  0.3  0.4  0.5  0.6  0.7  0.8
#   recall  4/4  4/4  3/4  3/4  2/4  1/4  1/4  0/4
#   prec    4/8  4/7  3/6  3/5  2/4  1/3  1/2  0/1


@pytest.mark.parametrize(
    ("metric", "goal", "expected"),
    [
        ("recall", 0.75, 0.4),  # highest threshold with recall >= 0.75
        ("recall", 0.5, 0.5),
        ("recall", 1.0, 0.2),
        ("precision", 0.6, 0.4),  # lowest threshold with precision >= 0.6
        ("precision", 0.5, 0.1),
        ("precision", 0.9, 0.2),  # unreachable: best F1 (4/7 and 1 -> 0.727 at 0.2)
        ("roc_auc", None, 0.2),  # no goal: best F1
    ],
)
def test_choose_threshold_by_hand(metric, goal, expected):
    threshold, note = choose_threshold(Y, S, metric, goal)
    assert threshold == pytest.approx(expected)
    if metric == "precision" and goal == 0.9:
        assert "cannot be reached" in note


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("goal", [0.3, 0.7, 0.95])
def test_choose_threshold_agrees_with_precision_recall_curve(seed, goal):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 40)
    y[:2] = [0, 1]
    score = np.round(rng.random(40) * 0.5 + y * 0.3, 2)  # ties on purpose
    precision, recall, thresholds = precision_recall_curve(y, score)
    got, _ = choose_threshold(y, score, "recall", goal)
    assert got == pytest.approx(
        max(t for t, r in zip(thresholds, recall, strict=False) if r >= goal)
    )
    reachable = [t for t, p in zip(thresholds, precision, strict=False) if p >= goal]
    got, note = choose_threshold(y, score, "precision", goal)
    if reachable:
        assert got == pytest.approx(min(reachable))
    else:
        assert "cannot be reached" in note


def test_choose_threshold_with_one_class_only():
    threshold, note = choose_threshold(np.zeros(5), np.linspace(0, 1, 5), "recall", 0.7)
    assert threshold == 0.5 and "one class" in note


# -- bad input ------------------------------------------------------------------------------


def _always_active_project(write_project) -> Path:
    """Ten users with an event every day: nobody ever churns, so the label has one class."""
    start = datetime(2024, 1, 1)
    lines = ["user_id,ts,value"]
    for day in range(90):
        for user in range(10):
            lines.append(f"u{user},{start + timedelta(days=day, hours=user)},{day % 7}")
    spec = """\
spec_version: 1
name: loyal
sources:
  events: {path: data/events.csv, entity: user_id, time: ts}
problems:
  churn:
    entity: user_id
    task: binary
    label: {kind: inactivity, source: events, days: 7}
    cutoffs: {every: 7d, start: 2024-01-15}
    features: [activity]
features:
  activity:
    source: events
    windows: [7d]
    aggregate: {count: "*", sum: value}
"""
    return write_project(spec, {"data/events.csv": "\n".join(lines) + "\n"})


def test_one_class_dataset_is_a_data_error_and_registers_nothing(write_project):
    root = _always_active_project(write_project)
    project = Project(root)
    try:
        with pytest.raises(DataError) as info:
            project.train("churn")
        assert "one class" in info.value.message
        assert info.value.hint
        counts = project.counts()
        assert counts["model_versions"] == 0
        assert counts["dataset_versions"] == 1  # the dataset itself is a fine version
        models = project.artifacts.root / "models"
        assert not models.exists() or not any(models.iterdir())
    finally:
        project.close()


def _problem():
    spec = parse_spec(
        """\
spec_version: 1
name: x
sources:
  events: {path: e.csv, entity: user_id, time: ts}
problems:
  churn:
    entity: user_id
    task: binary
    label: {kind: inactivity, source: events, days: 7}
    cutoffs: {every: 7d, start: 2024-01-01}
    features: [activity]
features:
  activity: {source: events, windows: [7d], aggregate: {count: "*"}}
"""
    )
    return spec.problems["churn"], spec.training


def test_missing_label_values_are_a_data_error():
    problem, training = _problem()
    frame = pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in range(12)],
            "as_of": [datetime(2024, 1, 1) + timedelta(days=7 * (i % 6)) for i in range(12)],
            "activity_count_7d": np.arange(12, dtype=float),
            "label": [0, 1, None, 1, 0, 1, 0, 1, 0, 1, 0, 1],
        }
    )
    columns = [FeatureColumn("activity_count_7d", "activity", "number")]
    with pytest.raises(DataError) as info:
        train_candidates(frame, columns, problem, training, horizon_days=7)
    assert "1 missing value" in info.value.message
    assert info.value.hint


def test_one_class_frame_is_a_data_error():
    problem, training = _problem()
    frame = pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in range(12)],
            "as_of": [datetime(2024, 1, 1) + timedelta(days=7 * (i % 6)) for i in range(12)],
            "activity_count_7d": np.arange(12, dtype=float),
            "label": [1] * 12,
        }
    )
    columns = [FeatureColumn("activity_count_7d", "activity", "number")]
    with pytest.raises(DataError, match="one class"):
        train_candidates(frame, columns, problem, training, horizon_days=7)
