"""A forecast problem through Project: train (direct multi-horizon, time split by cutoff),
register, and score the future grid (every item x each day of the horizon) with the bundle."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pytest

from cycleml import Project

SPEC = """\
spec_version: 1
name: shop
sources:
  sales: {path: data/sales.csv, entity: product_id, time: ts}
problems:
  demand:
    entity: product_id
    task: forecast
    label: {kind: forecast, source: sales, horizon: 3, column: qty}
    cutoffs: {every: 1d, start: 2024-01-10}
    metric: {name: mae}
    features: [sold]
features:
  sold: {source: sales, windows: [7d, 28d], aggregate: {count: "*", sum: qty}}
training:
  algorithms: [baseline, logistic, lightgbm]
  tune: {trials: 2}
"""


def _sales(items=8, days=70, seed=0) -> str:
    rng = np.random.default_rng(seed)
    level = rng.uniform(1, 12, size=items)
    lines = ["product_id,ts,qty"]
    start = datetime(2024, 1, 1)
    for d in range(days):
        for i in range(items):
            weekly = 1.5 if (start + timedelta(days=d)).weekday() >= 5 else 1.0
            qty = rng.poisson(level[i] * weekly)
            if qty:
                lines.append(f"p{i},{start + timedelta(days=d, hours=12)},{qty}")
    return "\n".join(lines) + "\n"


def test_forecast_trains_by_horizon_and_scores_the_future_grid(write_project):
    project = Project(write_project(SPEC, {"data/sales.csv": _sales()}))
    outcome = project.train("demand", budget=8)
    result = outcome.result
    assert result.split["method"] == "time" and "mae" in result.split["selected_by"]
    assert [r["horizon"] for r in result.metrics["by_horizon"]] == [1, 2, 3]
    rows = sum(r["rows"] for r in result.metrics["by_horizon"])
    assert rows == result.metrics["rows"]
    mae = sum(r["mae"] * r["rows"] for r in result.metrics["by_horizon"]) / rows
    assert mae == pytest.approx(result.metrics["mae"])
    assert {b["algorithm"] for b in outcome.to_dict()["leaderboard"]} == {
        "baseline",
        "logistic",
        "lightgbm",
    }
    assert "Per horizon (test)" in outcome.report.read_text(encoding="utf-8")
    bundle = project.registry.load(outcome.model)
    with project.features("demand") as fs:
        grid = fs.compute(None, datetime(2024, 3, 11))
    assert len(grid) == 8 * 3
    predicted, labels = bundle.outputs(grid)
    assert labels is None and np.isfinite(predicted).all() and (predicted > -1).all()
    # items sell at different levels: the model's forecasts differ by item
    per_item = grid.assign(predicted=predicted).groupby("product_id")["predicted"].mean()
    assert per_item.max() - per_item.min() > 2.0
    project.close()
