"""``engine: dask``: feature rows computed on a Dask distributed cluster, one shard per task.

The spine (entity, as_of rows) is cut into shards by a hash of the entity modulo the number of
partitions, so every row of one entity lands in the same shard. Each task opens the sources
itself from the spec and the project folder (workers receive the spec and the path, never a live
connection), runs the same feature SQL in its own DuckDB on its shard, and the shards come back
concatenated in the single-process order (as_of, entity). The result is identical to
``engine: duckdb``.

The cluster is ``dask.address`` (a running scheduler) when set; otherwise a LocalCluster bound to
127.0.0.1 is started for the job and closed after it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .._version import __version__
from ..errors import RequestError
from ..spec import DaskSpec, Spec
from ._groups import AS_OF, ENTITY

if TYPE_CHECKING:
    from distributed import Client

    from ._featureset import FeatureSet


class ClusterError(RequestError):
    """The Dask cluster cannot be reached or cannot run cycleml."""


def dask_features(fs: FeatureSet, spine: pa.Table) -> pd.DataFrame | None:
    """Feature rows of ``spine`` computed shard by shard on the cluster (None for an empty
    spine: the caller computes the empty frame here, with the right columns)."""
    from ._featureset import AS_OF_COLUMN

    if spine.num_rows == 0:
        return None
    settings = fs.spec.dask
    with cluster_client(settings) as client:
        parts = settings.partitions or max(1, sum(client.nthreads().values()))
        shards = shard_spine(spine, parts)
        futures = [
            client.submit(
                compute_shard,
                fs.spec,
                str(fs.sources.project_dir),
                fs.name,
                shard,
                settings.threads_per_worker,
                pure=False,
            )
            for shard in shards
            if shard.num_rows
        ]
        results = client.gather(futures)
    for _, notes in results:
        fs.engine_notes.extend(n for n in notes if n not in fs.engine_notes)
    frame = pd.concat([f for f, _ in results], ignore_index=True)
    return frame.sort_values([AS_OF_COLUMN, fs.entity], kind="stable").reset_index(drop=True)


def shard_of(entities: pa.Array | pa.ChunkedArray, partitions: int) -> np.ndarray:
    """The shard of each entity: a stable hash (the same in every process) modulo partitions."""
    values = pc.cast(entities, pa.string()).to_numpy(zero_copy_only=False)
    hashed = pd.util.hash_array(values.astype(object))
    return (hashed % np.uint64(partitions)).astype(np.int64)


def shard_spine(spine: pa.Table, partitions: int) -> list[pa.Table]:
    shard = shard_of(spine.column(ENTITY), partitions)
    return [spine.filter(pa.array(shard == i)) for i in range(partitions)]


def compute_shard(
    spec: Spec, project_dir: str, problem: str, shard: pa.Table, threads: int
) -> tuple[pd.DataFrame, list[str]]:
    """Run on a worker: open the sources from the spec and folder, compute the shard's features
    in this process's DuckDB (with PostgreSQL pushdown where it applies)."""
    from ..data import SourceSet
    from ._featureset import FeatureSet

    with SourceSet(spec, Path(project_dir), threads=threads) as sources:
        fs = FeatureSet(spec, problem, sources, engine="duckdb")
        spine = shard.select([ENTITY, AS_OF])
        _keep_shard_rows(fs, spine)
        frame = fs._features(spine)
        return frame, fs.engine_notes


def _keep_shard_rows(fs: FeatureSet, spine: pa.Table) -> None:
    """Narrow the views of the sources the feature groups read (files and SQLite: PostgreSQL
    ones are pushed down) to the rows of the shard's entities, so each task scans and joins its
    own share of the events instead of all of them. A feature reads only rows of its entity, so
    the values do not change; the groups are compiled first, on the whole sources."""
    from ..data import quote

    names = sorted({fs.spec.features[g].source for g in fs.problem.features})
    if any(fs.spec.sources[name].kind == "postgres" for name in names):
        return  # pushed down (compiling here would read the tables out of PostgreSQL)
    fs.groups  # noqa: B018 - compile (and read column types) before narrowing
    con = fs.sources.con
    con.register("_shard_in", spine)
    try:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE _shard_keys AS "
            f"SELECT DISTINCT CAST({ENTITY} AS VARCHAR) AS k FROM _shard_in"
        )
    finally:
        con.unregister("_shard_in")
    for name in names:
        source = fs.spec.sources[name]
        if not source.entity:
            continue
        view = fs.sources.view(name)
        kept = quote(f"_shard_{name}")
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {kept} AS SELECT * FROM {view} "
            f"WHERE CAST({quote(source.entity)} AS VARCHAR) IN (SELECT k FROM _shard_keys)"
        )
        con.execute(f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM {kept}")


def _worker_version() -> str:
    from cycleml._version import __version__ as version

    return version


@contextmanager
def cluster_client(settings: DaskSpec) -> Iterator[Client]:
    """A client of the configured cluster, or of a LocalCluster on 127.0.0.1 started for the job
    (closed on exit)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise RequestError(
            "engine dask needs Dask distributed, which is not installed",
            hint="pip install 'cycleml[dask]' (or use engine duckdb)",
        ) from None
    if settings.address:
        try:
            client = Client(settings.address, timeout="10s", set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ClusterError(
                f"cannot reach the Dask scheduler at {settings.address}: {exc}",
                hint="check `dask.address` in cycleml.yaml (tcp://host:8786) and that the "
                "scheduler is running, or remove it to run a local cluster",
            ) from None
        try:
            _check_versions(client)
            yield client
        finally:
            client.close()
        return
    cluster = LocalCluster(
        n_workers=settings.n_workers,
        threads_per_worker=settings.threads_per_worker,
        processes=True,
        host="127.0.0.1",
        # No dashboard (bokeh is not a dependency); its HTTP server (health, metrics) would
        # otherwise take port 8787 on every interface: a free port on loopback instead.
        dashboard_address="127.0.0.1:0",
    )
    try:
        client = Client(cluster, set_as_default=False)
        try:
            yield client
        finally:
            client.close()
    finally:
        cluster.close()


def _check_versions(client: Client) -> None:
    try:
        versions = client.run(_worker_version)
    except Exception as exc:  # a worker without cycleml cannot unpickle the function
        raise ClusterError(
            f"the Dask workers cannot run cycleml: {exc}",
            hint=f"install cycleml {__version__} on every worker",
        ) from None
    if not versions:
        raise ClusterError(
            "the Dask cluster has no workers",
            hint="start workers with `dask worker <scheduler address>`",
        )
    other = {w: v for w, v in versions.items() if v != __version__}
    if other:
        listed = ", ".join(f"{w} has {v}" for w, v in sorted(other.items()))
        raise ClusterError(
            f"the Dask workers run another cycleml version ({listed}; this is {__version__})",
            hint=f"install cycleml {__version__} on every worker",
        )
