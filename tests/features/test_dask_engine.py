"""engine: dask: features computed shard by shard on a Dask cluster equal the single-process
build (on the small demo, with a 2-worker LocalCluster on 127.0.0.1)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from cycleml import Project
from cycleml.cli import app
from cycleml.errors import RequestError
from cycleml.features import _dask
from cycleml.features._dask import shard_of, shard_spine

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster_address():
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",  # no fixed port 8787, loopback only
    )
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


def _use_dask(root: Path, address: str | None, *, engine: bool = True) -> Path:
    spec = root / "cycleml.yaml"
    extra = "\nengine: dask\n" if engine else "\n"
    extra += f"dask: {{address: '{address}'}}\n" if address else ""
    spec.write_text(spec.read_text() + extra)
    return root


def test_training_frame_on_the_cluster_equals_single_process(
    demo_project, demo_template, cluster_address, monkeypatch
):
    shards: list[int] = []
    real_client = distributed.Client

    class CountingClient(real_client):
        def submit(self, fn, *args, **kwargs):
            if fn is _dask.compute_shard:
                shards.append(args[3].num_rows)
            return super().submit(fn, *args, **kwargs)

    monkeypatch.setattr(distributed, "Client", CountingClient)
    with Project(demo_template).features("churn") as fs:
        expected = fs.training_frame()
    project = Project(_use_dask(demo_project, cluster_address))
    assert project.spec.engine == "dask"
    with project.features("churn") as fs:
        assert fs.engine == "duckdb"  # online requests never start a cluster
        fs.engine = "dask"  # what build_dataset does with the spec's engine
        got = fs.training_frame()
    pd.testing.assert_frame_equal(got.frame, expected.frame, check_exact=True)
    assert len(shards) == 2 and sum(shards) == len(expected.frame)  # two shards on the cluster
    assert got.cutoffs == expected.cutoffs
    assert got.notes == expected.notes


def test_compute_on_the_cluster_keeps_order_and_unknown_entities(
    demo_project, demo_template, cluster_address
):
    entities = ["u000799", "nobody", "u000003", "u000400"]
    times = [datetime(2026, 1, 5), datetime(2026, 2, 1), datetime(2026, 3, 1), datetime(2026, 1, 5)]
    with Project(demo_template).features("churn") as fs:
        expected = fs.compute(entities, times)
    with Project(_use_dask(demo_project, cluster_address)).features("churn") as fs:
        fs.engine = "dask"
        got = fs.compute(entities, times)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)


def test_shards_split_entities_and_agree_across_processes(cluster_address):
    entities = pa.array([f"u{i:06d}" for i in range(500)] * 2)
    spine = pa.table({"__entity": entities, "__as_of": pa.array([1] * 1000, pa.timestamp("us"))})
    shards = shard_spine(spine, 3)
    assert sum(s.num_rows for s in shards) == 1000
    seen = [set(s.column("__entity").to_pylist()) for s in shards]
    assert not (seen[0] & seen[1]) and not (seen[1] & seen[2]) and not (seen[0] & seen[2])
    assert all(len(s) > 100 for s in seen)  # a hash spreads them, not one shard for all
    # the hash is the same in a worker process: shards do not depend on where they are cut
    with distributed.Client(cluster_address, set_as_default=False) as client:
        there = client.submit(shard_of, entities, 3).result()
    np.testing.assert_array_equal(there, shard_of(entities, 3))


def test_cli_builds_the_same_dataset_with_a_local_cluster(demo_project):
    runner = CliRunner()
    args = ["dataset", "build", "churn", "--project", str(demo_project), "--json"]
    single = runner.invoke(app, args)
    assert single.exit_code == 0, single.output
    # --force: rebuild the same version on a LocalCluster started (and closed) for the job
    dask = runner.invoke(app, [*args, "--force", "--engine", "dask"])
    assert dask.exit_code == 0, dask.output
    a, b = json.loads(single.stdout), json.loads(dask.stdout)
    assert a["id"] == b["id"] and a["rows"] == b["rows"]
    assert a["artifact_sha256"] == b["artifact_sha256"]  # byte-identical Parquet


def test_unknown_engine_is_a_clear_error(demo_project):
    result = CliRunner().invoke(
        app, ["dataset", "build", "churn", "--project", str(demo_project), "--engine", "spark"]
    )
    assert result.exit_code == 2
    assert "unknown engine 'spark'" in result.output
    assert "Traceback" not in result.output
    with pytest.raises(RequestError, match="unknown engine"):
        Project(demo_project).build_dataset("churn", engine="spark")


def test_batch_predictions_with_dask_equal_single_process(trained_copy, cluster_address):
    project = Project(_use_dask(trained_copy, cluster_address, engine=False))
    as_of = datetime(2026, 5, 1)
    single = project.predict_batch("churn", as_of=as_of)
    frame_single = _predictions(project, single.id)
    dask = project.predict_batch("churn", as_of=as_of, engine="dask")
    frame_dask = _predictions(project, dask.id)
    assert dask.rows == single.rows > 0
    # The same rows, entities and labels; scores equal up to the last bits a linear model's dot
    # product may round differently in another shard size (small shards use the compiled
    # scorer, which equals the pipeline within 1e-9).
    pd.testing.assert_frame_equal(frame_dask, frame_single, check_exact=False, rtol=0, atol=1e-9)
    project.close()


def _predictions(project: Project, run_id: int) -> pd.DataFrame:
    import sqlalchemy as sa

    from cycleml.store.tables import predictions

    with project.store.connect() as conn:
        rows = conn.execute(
            sa.select(predictions.c.entity, predictions.c.score, predictions.c.label)
            .where(predictions.c.run_id == run_id)
            .order_by(predictions.c.entity)
        ).fetchall()
    return pd.DataFrame(rows, columns=["entity", "score", "label"])
