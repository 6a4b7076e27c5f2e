"""Batch predictions: score every eligible entity as of a time and write the rows to a target.

The rows go to the store's ``predictions`` table (default) or to a target named by ``--to``
(:mod:`._targets`). Either way a ``prediction_runs`` row in the store records the run (model
version, as_of, target, row count) with a snapshot of the scored features (what monitoring
reads). A rerun for the same (problem, as_of) replaces that partition in one transaction (a
rename for Parquet): a failure or a kill in the middle leaves the previous rows in place.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from ..errors import DataError, RequestError
from ..features import FeatureSet
from ..features._featureset import HORIZON_COLUMN
from ..registry import ModelBundle, ModelVersion
from ..spec import ForecastLabel
from ..store import ArtifactStore, Store, utcnow
from ..store.tables import prediction_runs
from ._store_writer import replace_partition, staged_rows
from ._targets import ROW_SCHEMA, SQLiteTarget, Target, TargetError

DEFAULT_CHUNK_ROWS = 100_000
STORE_TARGET = "store:predictions"

Progress = Callable[[str, int, int], None]
"""``progress(phase, done, total)``: phase is "scoring" or "writing"; done/total are rows."""


@dataclass(frozen=True)
class PredictionRun:
    id: int
    problem: str
    model_version_id: int
    model_name: str
    as_of: datetime
    rows: int
    positive_rate: float | None
    mean_score: float
    target: str
    seconds: float

    def to_dict(self) -> dict:
        out = dict(self.__dict__)
        out["as_of"] = self.as_of.isoformat()
        return out


@dataclass
class Scored:
    """The scored features of one batch: the feature frame and one score (label) per row."""

    frame: pd.DataFrame
    scores: np.ndarray
    labels: np.ndarray | None


def naive_utc(as_of: datetime) -> datetime:
    """The store keeps naive UTC times: an aware as_of becomes the same instant in UTC, so one
    instant is one partition whatever zone it was given in."""
    if as_of.tzinfo is not None:
        return as_of.astimezone(UTC).replace(tzinfo=None)
    return as_of


def score_batch(
    featureset: FeatureSet,
    model: ModelVersion,
    bundle: ModelBundle,
    store: Store,
    artifacts: ArtifactStore,
    *,
    as_of: datetime,
    target: Target | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: Progress | None = None,
) -> PredictionRun:
    """Score every entity eligible at ``as_of`` and write the rows to ``target`` (the store's
    predictions table when None). A forecast scores each item for each day of its horizon."""
    started = time.perf_counter()
    as_of = naive_utc(as_of)
    if chunk_rows < 1:
        raise RequestError(
            f"chunk_rows must be at least 1, got {chunk_rows}", hint="pass --chunk-rows 100000"
        )
    forecast = isinstance(featureset.problem.label, ForecastLabel)
    if target is not None:
        _not_the_store_file(target, store)
        target.check()  # before the (long) scoring: a bad target fails fast
    if featureset.engine == "dask":
        from ._dask import dask_score

        scored = dask_score(featureset, bundle, as_of, progress=progress)
    else:
        scored = _score_here(featureset, bundle, as_of, chunk_rows, progress)
    frame = scored.frame
    if frame.empty:
        raise DataError(
            f"no entity is eligible for {featureset.name!r} as of {as_of:%Y-%m-%d %H:%M}",
            hint="pick an --as-of within the data (eligibility follows the label definition)",
        )
    rows = prediction_rows(
        featureset.name, featureset.entity, frame, scored, as_of, model.version, forecast=forecast
    )
    total = rows.num_rows
    written = {"n": 0}

    def on_chunk(n: int) -> None:
        written["n"] += n
        if progress:
            progress("writing", written["n"], total)

    def chunks(run_id: int):
        run = pa.repeat(pa.scalar(run_id, pa.int64()), total)
        index = ROW_SCHEMA.get_field_index("run_id")
        table = rows.set_column(index, ROW_SCHEMA.field("run_id"), run)
        for start in range(0, total, chunk_rows):
            yield table.slice(start, chunk_rows)

    scratch = artifacts.scratch()
    try:
        snapshot = scratch / "features.parquet"
        frame.assign(__score=scored.scores).to_parquet(snapshot, index=False)
        name = f"{featureset.name}-{as_of:%Y%m%dT%H%M%S}-m{model.id}.parquet"
        description = STORE_TARGET if target is None else target.display
        with store.connect() as conn, ExitStack() as stack:
            staged = target is None and conn.dialect.name == "sqlite"
            if staged:  # loaded before the transaction: SQLite cannot ATTACH inside one
                stack.enter_context(staged_rows(conn, chunks(0), scratch, on_chunk))
            with conn.begin():
                sha, dest = artifacts.put(snapshot, "batches", name, conn=conn)
                run_id = conn.execute(
                    prediction_runs.insert()
                    .values(
                        problem=featureset.name,
                        model_version_id=model.id,
                        as_of=as_of,
                        target=description,
                        rows=total,
                        features_path=str(dest.relative_to(artifacts.root)),
                        features_sha256=sha,
                        seconds=0.0,
                        created_at=utcnow(),
                    )
                    .returning(prediction_runs.c.id)
                ).scalar_one()
                if target is None:
                    replace_partition(
                        conn,
                        problem=featureset.name,
                        as_of=as_of,
                        model_version_id=model.id,
                        run_id=run_id,
                        chunks=None if staged else chunks(run_id),
                        on_chunk=on_chunk,
                    )
                else:
                    # The target commits first, then the store: a crash between the two
                    # leaves target rows whose run_id the store does not know (a rerun
                    # replaces them), never a recorded run without its rows.
                    target.write(featureset.name, as_of, chunks(run_id), on_chunk=on_chunk)
                seconds = time.perf_counter() - started
                conn.execute(
                    prediction_runs.update()
                    .where(prediction_runs.c.id == run_id)
                    .values(seconds=seconds)
                )
    finally:
        for leftover in scratch.iterdir():
            leftover.unlink()
        scratch.rmdir()
    labels = scored.labels
    return PredictionRun(
        id=run_id,
        problem=featureset.name,
        model_version_id=model.id,
        model_name=model.name,
        as_of=as_of,
        rows=total,
        positive_rate=float(np.mean(labels))
        if labels is not None and np.asarray(labels).dtype.kind in "biu"
        else None,
        mean_score=float(np.mean(scored.scores)),
        target=description,
        seconds=seconds,
    )


def _not_the_store_file(target: Target, store: Store) -> None:
    """A SQLite target in the store's own file would wait on the store's write lock."""
    if not isinstance(target, SQLiteTarget) or store.dialect != "sqlite":
        return
    database = sa.engine.make_url(store.url).database or ""
    if database and Path(database).resolve() == target.path.resolve():
        raise TargetError(
            f"the target {target.display} is the store's own database file",
            hint="leave out --to to write the store's predictions table, or name another file",
        )


def _score_here(
    fs: FeatureSet,
    bundle: ModelBundle,
    as_of: datetime,
    chunk_rows: int,
    progress: Progress | None,
) -> Scored:
    """Features in this process (or pushed down), scored ``chunk_rows`` rows at a time."""
    return score_frame(fs.compute(None, as_of), bundle, chunk_rows, progress)


def score_frame(
    frame: pd.DataFrame, bundle: ModelBundle, chunk_rows: int, progress: Progress | None = None
) -> Scored:
    """Score the feature rows of ``frame`` ``chunk_rows`` rows at a time."""
    total = len(frame)
    scores: list[np.ndarray] = []
    labels: list[np.ndarray] | None = []
    for start in range(0, total, chunk_rows):
        s, lab = bundle.outputs(frame.iloc[start : start + chunk_rows])
        scores.append(np.asarray(s, dtype="float64"))
        if lab is None:
            labels = None
        elif labels is not None:
            labels.append(np.asarray(lab))
        if progress:
            progress("scoring", min(start + chunk_rows, total), total)
    all_scores = np.concatenate(scores) if scores else np.empty(0)
    all_labels = np.concatenate(labels) if labels else None
    return Scored(frame.reset_index(drop=True), all_scores, all_labels)


def prediction_rows(
    problem: str,
    entity_column: str,
    frame: pd.DataFrame,
    scored: Scored,
    as_of: datetime,
    model_version: int,
    *,
    forecast: bool = False,
) -> pa.Table:
    """The rows of a run (ROW_SCHEMA; run_id is filled in when the run is recorded)."""
    n = len(frame)
    entity = pa.array(frame[entity_column].astype(str).to_numpy(dtype=object), pa.string())
    as_of_col = pa.repeat(pa.scalar(as_of, pa.timestamp("us")), n)
    if forecast:
        h = frame[HORIZON_COLUMN].to_numpy(dtype="int64")
        horizon = pa.array(h.astype("int32"))
        start = np.datetime64(as_of, "us")
        # Day h of a forecast made as of T is [T + (h - 1) days, T + h days): its start.
        target_date = pa.array(start + (h - 1).astype("timedelta64[D]"), pa.timestamp("us"))
    else:
        horizon = pa.nulls(n, pa.int32())
        target_date = pa.nulls(n, pa.timestamp("us"))
    label, class_label = _label_columns(scored.labels, n)
    return pa.Table.from_arrays(
        [
            pa.repeat(pa.scalar(problem, pa.string()), n),
            entity,
            as_of_col,
            horizon,
            target_date,
            pa.array(np.asarray(scored.scores, dtype="float64")),
            label,
            class_label,
            pa.repeat(pa.scalar(model_version, pa.int32()), n),
            pa.repeat(pa.scalar(0, pa.int64()), n),
        ],
        schema=ROW_SCHEMA,
    )


def _label_columns(labels: np.ndarray | None, n: int) -> tuple[pa.Array, pa.Array]:
    """``label`` (0/1, or an integer class) and ``class_label`` (a multiclass model's class as
    text; null for binary models)."""
    if labels is None:
        return pa.nulls(n, pa.int32()), pa.nulls(n, pa.string())
    values = np.asarray(labels)
    if values.dtype.kind in "biu":
        return pa.array(values.astype("int32")), pa.nulls(n, pa.string())
    # Class values (an object array): text always; the integer label too when they are ints.
    text = pa.array([None if v is None else str(v) for v in values], pa.string())
    if all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in values):
        return pa.array(values.astype("int32")), text
    return pa.nulls(n, pa.int32()), text


def latest_run(store: Store, problem: str) -> dict | None:
    with store.connect() as conn:
        row = conn.execute(
            sa.select(prediction_runs)
            .where(prediction_runs.c.problem == problem)
            .order_by(prediction_runs.c.id.desc())
            .limit(1)
        ).first()
    return None if row is None else dict(row._mapping)
