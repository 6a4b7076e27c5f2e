"""Conversion (event_within, binary) and value (sum_within, regression) problems train end to end
on a copy of the demo; ranking and forecast datasets build and train."""

from __future__ import annotations

import pandas as pd

from cycleml import Project
from cycleml.features import load_dataset

EXTRA_PROBLEMS = """\
  convert:
    description: Which users will buy in the next 14 days?
    entity: user_id
    task: binary
    label: {kind: event_within, source: events, days: 14, event_types: [purchase]}
    cutoffs: {every: 14d, start: 2026-02-02}
    metric: {name: roc_auc}
    features: [profile, activity]
  spend:
    entity: user_id
    task: regression
    label: {kind: sum_within, source: events, days: 30, column: value, event_types: [purchase]}
    cutoffs: {every: 14d, start: 2026-02-02}
    metric: {name: mae}
    features: [profile, activity]
  rank:
    entity: user_id
    task: ranking
    label: {kind: click, source: impressions, item: product_id, column: clicked}
    cutoffs: {every: 7d, start: 2026-05-01}
    features: [activity]
"""


def demo_with_problems(root):
    path = root / "cycleml.yaml"
    text = path.read_text()
    text = text.replace("\nproblems:\n", "\nproblems:\n" + EXTRA_PROBLEMS, 1)
    text = text.replace(
        "algorithms: [baseline, logistic, lightgbm]",
        "algorithms: [baseline, logistic]\n  tune: {top: 0}",
    )
    path.write_text(text)
    return Project(root)


def test_conversion_and_value_problems_train_end_to_end(demo_project):
    project = demo_with_problems(demo_project)
    outcome = project.train("convert")
    assert outcome.result.task == "binary"
    frame = load_dataset(outcome.dataset, project.artifacts)
    assert set(frame["label"].unique()) == {0, 1}
    assert 0 < frame["label"].mean() < 0.5  # a purchase within 14 days is the rarer outcome
    assert outcome.model.problem == "convert"
    assert {b["algorithm"] for b in outcome.result.leaderboard} == {"baseline", "logistic"}
    assert outcome.result.metrics.get("roc_auc") is not None

    outcome = project.train("spend")
    assert outcome.result.task == "regression"
    frame = load_dataset(outcome.dataset, project.artifacts)
    assert (frame["label"] >= 0).all() and (frame["label"] == 0).any()
    assert frame["label"].max() > 0
    assert outcome.result.metrics.get("mae") is not None
    project.close()


def test_ranking_dataset_builds_and_trains(demo_project):
    project = demo_with_problems(demo_project)
    dataset = project.build_dataset("rank")
    frame = load_dataset(dataset, project.artifacts)
    assert list(frame.columns[:4]) == ["user_id", "as_of", "product_id", "group"]
    assert frame["as_of"].min() >= pd.Timestamp("2026-05-01")
    # the impressions carry their own flag: one row per impression in the range
    with project.open_sources() as sources:
        view = sources.view("impressions")
        expected = sources.con.sql(
            f"SELECT count(*) FROM {view} WHERE ts >= TIMESTAMP '2026-05-01' AND clicked "
            "IS NOT NULL"
        ).fetchall()[0][0]
    assert len(frame) == expected
    outcome = project.train("rank", budget=5)
    assert outcome.result.task == "ranking"
    project.close()


FORECAST_SPEC = """\
spec_version: 1
name: fc
sources:
  sales: {path: data/sales.csv, entity: product_id, time: ts}
problems:
  demand:
    entity: product_id
    task: forecast
    label: {kind: forecast, source: sales, horizon: 3, column: qty}
    cutoffs: {every: 1d, start: 2024-03-02}
    features: [sold]
features:
  sold: {source: sales, windows: [7d], aggregate: {count: "*", sum: qty}}
"""


def test_forecast_dataset_builds_and_trains(write_project):
    lines = ["product_id,ts,qty"] + [
        f"p{i % 3},2024-03-{1 + i // 3:02d} 12:00:00,{i % 5}" for i in range(30)
    ]
    project = Project(write_project(FORECAST_SPEC, {"data/sales.csv": "\n".join(lines) + "\n"}))
    dataset = project.build_dataset("demand")
    assert [f["name"] for f in dataset.features][-1] == "horizon"
    frame = load_dataset(dataset, project.artifacts)
    assert sorted(frame["horizon"].unique()) == [1, 2, 3]
    outcome = project.train("demand", budget=5)
    assert outcome.result.task == "forecast"
    project.close()
