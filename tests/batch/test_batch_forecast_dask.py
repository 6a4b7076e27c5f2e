"""Forecast problems score a future grid (each item for each day of the horizon), and
``--engine dask`` batch runs (a LocalCluster on 127.0.0.1) give the single-process rows."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cycleml import Project

HORIZON = 7
AS_OF = datetime(2024, 3, 31)

SPEC = f"""\
spec_version: 1
name: fc
sources:
  sales: {{path: data/sales.csv, entity: product_id, time: ts}}
problems:
  demand:
    entity: product_id
    task: forecast
    label: {{kind: forecast, source: sales, horizon: {HORIZON}, column: qty}}
    cutoffs: {{every: 7d, start: 2024-01-15}}
    features: [sold]
features:
  sold: {{source: sales, windows: [7d, 28d], aggregate: {{count: "*", sum: qty}}}}
training:
  algorithms: [baseline, lightgbm]
  tune: {{timeout: 5}}
"""


def _sales(seed: int = 0) -> pd.DataFrame:
    """15 items selling at their own weekly-seasonal rate for 90 days (p14 starts on day 89)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(15):
        level = rng.uniform(1, 6)
        first = 89 if i == 14 else 0
        for d in range(first, 90):
            for _ in range(max(1, rng.poisson(level * (1 + 0.3 * np.sin(d / 7 * 2 * np.pi))))):
                ts = datetime(2024, 1, 1) + timedelta(days=d, seconds=int(rng.integers(0, 86400)))
                rows.append((f"p{i:02d}", ts, int(rng.integers(1, 4))))
    return pd.DataFrame(rows, columns=["product_id", "ts", "qty"])


@pytest.fixture(scope="module")
def forecast_trained(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("forecast") / "fc"
    (root / "data").mkdir(parents=True)
    (root / "cycleml.yaml").write_text(SPEC)
    _sales().to_csv(root / "data/sales.csv", index=False)
    project = Project(root)
    try:
        project.train("demand")
    finally:
        project.close()
    return root


@pytest.fixture
def forecast_copy(forecast_trained, tmp_path) -> Path:
    dest = tmp_path / "fc"
    shutil.copytree(forecast_trained, dest)
    return dest


def test_a_forecast_scores_each_item_for_each_day_of_the_horizon(forecast_copy):
    sales = pd.read_csv(forecast_copy / "data/sales.csv", parse_dates=["ts"])
    sold_before = set(sales.loc[sales["ts"] < AS_OF, "product_id"])
    project = Project(forecast_copy)
    try:
        production = project.model("demand")
        run = project.predict_batch("demand", as_of=AS_OF, to="out/forecast.parquet")
        rows = pd.read_parquet(forecast_copy / "out/forecast.parquet")
        _, bundle = project.load_model("demand")
        with project.features("demand") as fs:
            frame = fs.compute(None, AS_OF)
    finally:
        project.close()
    assert run.rows == len(rows) == len(sold_before) * HORIZON
    assert set(rows["entity"]) == sold_before
    for _, item in rows.groupby("entity"):
        assert sorted(item["horizon"]) == list(range(1, HORIZON + 1))
    expected_dates = pd.Timestamp(AS_OF) + pd.to_timedelta(rows["horizon"] - 1, unit="D")
    assert (rows["target_date"] == expected_dates).all()
    assert (rows["as_of"] == pd.Timestamp(AS_OF)).all() and rows["label"].isna().all()
    assert set(rows["model_version"]) == {production.version}
    # the scores are the production model's on the one feature definition, row for row
    scores, labels = bundle.outputs(frame)
    assert labels is None
    want = pd.DataFrame(
        {"entity": frame["product_id"], "horizon": frame["horizon"], "want": scores}
    ).merge(rows, on=["entity", "horizon"])
    assert len(want) == len(rows)
    np.testing.assert_allclose(want["score"], want["want"], rtol=0, atol=1e-9)
    assert rows["score"].nunique() > 1  # not a constant model: the rows differ by item and day


def test_a_forecast_into_the_store_keeps_the_horizon_and_target_date(forecast_copy):
    import sqlalchemy as sa

    from cycleml.store.tables import predictions

    project = Project(forecast_copy)
    try:
        run = project.predict_batch("demand", as_of=AS_OF)
        again = project.predict_batch("demand", as_of=AS_OF)  # a rerun replaces the partition
        with project.store.connect() as conn:
            rows = pd.DataFrame(
                conn.execute(sa.select(predictions).where(predictions.c.problem == "demand"))
                .mappings()
                .all()
            )
    finally:
        project.close()
    assert len(rows) == run.rows == again.rows
    assert set(rows["run_id"]) == {again.id}
    for _, item in rows.groupby("entity"):
        assert sorted(item["horizon"]) == list(range(1, HORIZON + 1))
    expected = pd.Timestamp(AS_OF) + pd.to_timedelta(rows["horizon"] - 1, unit="D")
    assert (pd.to_datetime(rows["target_date"]) == expected).all()
    assert rows["label"].isna().all() and rows["class_label"].isna().all()


# -- Dask ------------------------------------------------------------------------------------------

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster_address():
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
    )
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


def _use_cluster(root: Path, address: str) -> None:
    spec = root / "cycleml.yaml"
    spec.write_text(spec.read_text() + f"\ndask: {{address: '{address}', partitions: 3}}\n")


@pytest.mark.parametrize("problem", ["churn", "demand"])
def test_dask_batch_rows_equal_the_single_process_rows(
    problem, trained_copy, forecast_copy, cluster_address
):
    root = trained_copy if problem == "churn" else forecast_copy
    as_of = datetime(2026, 5, 20) if problem == "churn" else AS_OF
    _use_cluster(root, cluster_address)
    project = Project(root)
    try:
        single = project.predict_batch(problem, as_of=as_of, to="out/single.parquet")
        dask = project.predict_batch(problem, as_of=as_of, to="out/dask.parquet", engine="dask")
    finally:
        project.close()
    a = pd.read_parquet(root / "out/single.parquet")
    b = pd.read_parquet(root / "out/dask.parquet")
    assert dask.rows == single.rows == len(a) > 0
    assert set(b["run_id"]) == {dask.id} and set(a["run_id"]) == {single.id}
    # Same rows in the same order, labels and all; scores to the last bits: the shards are
    # scored in other shapes, and BLAS may round a linear model's products a last bit apart.
    pd.testing.assert_frame_equal(
        b.drop(columns=["run_id", "score"]), a.drop(columns=["run_id", "score"]), check_exact=True
    )
    np.testing.assert_allclose(b["score"], a["score"], rtol=1e-12, atol=1e-15)
