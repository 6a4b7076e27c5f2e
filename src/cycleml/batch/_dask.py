"""``--engine dask`` for batch predictions: features and scores computed on the cluster.

The eligible entities are cut into the same shards as ``engine: dask`` features
(:func:`cycleml.features._dask.shard_spine`); the model is shipped to the workers once
(``client.scatter``), and each task computes its shard's features and scores them. The shards
come back in the single-process order (as_of, entity, horizon), so the rows are identical to a
run in one process.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from ..errors import RequestError
from ..features import FeatureSet
from ..features._featureset import AS_OF_COLUMN, HORIZON_COLUMN
from ..registry import ModelBundle
from ..spec import ClickLabel, ForecastLabel, Spec

_SCORE = "__cycleml_score"
_LABEL = "__cycleml_label"


def dask_score(fs: FeatureSet, bundle: ModelBundle, as_of: datetime, *, progress=None):
    """Score every entity eligible at ``as_of`` on the Dask cluster of the spec."""
    from ..features._dask import cluster_client, shard_spine
    from ._batch import Scored

    if isinstance(fs.problem.label, ClickLabel):
        raise RequestError(
            f"problem {fs.name!r} ranks items (a click label): it has no batch of eligible "
            "entities to score",
            hint=f"rank online, one request per impression list (POST /v1/models/{fs.name}/rank)",
        )
    spine = fs._eligible([as_of])
    if spine.num_rows == 0:
        return Scored(fs.compute([], as_of), np.empty(0), None)
    settings = fs.spec.dask
    with cluster_client(settings) as client:
        parts = settings.partitions or max(1, sum(client.nthreads().values()))
        shards = [s for s in shard_spine(spine, parts) if s.num_rows]
        model = client.scatter(bundle, broadcast=True)
        futures = [
            client.submit(
                score_shard,
                fs.spec,
                str(fs.sources.project_dir),
                fs.name,
                shard,
                settings.threads_per_worker,
                model,
                pure=False,
            )
            for shard in shards
        ]
        total, done, results = spine.num_rows, 0, []
        for future, shard in zip(futures, shards, strict=True):  # in order: a progress tick each
            results.append(future.result())
            done += shard.num_rows
            if progress:
                progress("scoring", done, total)
    for _, notes in results:
        fs.engine_notes.extend(n for n in notes if n not in fs.engine_notes)
    frame = pd.concat([f for f, _ in results], ignore_index=True)
    order = [AS_OF_COLUMN, fs.entity]
    if isinstance(fs.problem.label, ForecastLabel):
        order.append(HORIZON_COLUMN)
    frame = frame.sort_values(order, kind="stable").reset_index(drop=True)
    scores = frame.pop(_SCORE).to_numpy(dtype="float64")
    labels = frame.pop(_LABEL).to_numpy(dtype="int64") if _LABEL in frame else None
    return Scored(frame, scores, labels)


def score_shard(
    spec: Spec,
    project_dir: str,
    problem: str,
    shard: pa.Table,
    threads: int,
    bundle: ModelBundle,
) -> tuple[pd.DataFrame, list[str]]:
    """Run on a worker: the shard's feature rows (as ``engine: dask`` computes them), with the
    forecast horizon grid, scored by the shipped model."""
    from ..features._dask import compute_shard

    frame, notes = compute_shard(spec, project_dir, problem, shard, threads)
    frame = FeatureSet(spec, problem, _NoSources(project_dir))._with_horizon(frame)
    scores, labels = bundle.outputs(frame)
    frame = frame.assign(**{_SCORE: np.asarray(scores, dtype="float64")})
    if labels is not None:
        frame[_LABEL] = np.asarray(labels)
    return frame, notes


class _NoSources:
    """Stands for the sources of a FeatureSet only used for its spec-derived helpers."""

    def __init__(self, project_dir: str) -> None:
        self.project_dir = Path(project_dir)
