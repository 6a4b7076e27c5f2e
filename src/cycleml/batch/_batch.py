"""Batch predictions: score every eligible entity as of a time into the predictions table."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import sqlalchemy as sa

from ..errors import DataError
from ..features import FeatureSet
from ..registry import ModelBundle, ModelVersion
from ..store import ArtifactStore, Store, utcnow
from ..store.tables import prediction_runs, predictions


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


def score_batch(
    featureset: FeatureSet,
    model: ModelVersion,
    bundle: ModelBundle,
    store: Store,
    artifacts: ArtifactStore,
    *,
    as_of: datetime,
) -> PredictionRun:
    """Score every entity eligible at ``as_of``; rerunning the same ``as_of`` replaces that
    partition in one transaction, so a failure leaves the previous rows in place."""
    started = time.perf_counter()
    # The store keeps naive UTC times: an aware as_of becomes the same instant in UTC, so one
    # instant is one partition whatever zone it was given in.
    if as_of.tzinfo is not None:
        as_of = as_of.astimezone(UTC).replace(tzinfo=None)
    frame = featureset.compute(None, as_of)
    if frame.empty:
        raise DataError(
            f"no entity is eligible for {featureset.name!r} as of {as_of:%Y-%m-%d %H:%M}",
            hint="pick an --as-of within the data (eligibility follows the label definition)",
        )
    scores = bundle.score(frame)
    labels = bundle.labels(scores)
    entity = featureset.entity
    scratch = artifacts.scratch()
    try:
        snapshot = scratch / "features.parquet"
        frame.assign(__score=scores).to_parquet(snapshot, index=False)
        with store.begin() as conn:
            name = f"{featureset.name}-{as_of:%Y%m%dT%H%M%S}-m{model.id}.parquet"
            sha, dest = artifacts.put(snapshot, "batches", name, conn=conn)
            run_id = conn.execute(
                prediction_runs.insert()
                .values(
                    problem=featureset.name,
                    model_version_id=model.id,
                    as_of=as_of,
                    target="store:predictions",
                    rows=len(frame),
                    features_path=str(dest.relative_to(artifacts.root)),
                    features_sha256=sha,
                    seconds=0.0,
                    created_at=utcnow(),
                )
                .returning(prediction_runs.c.id)
            ).scalar_one()
            conn.execute(
                predictions.delete().where(
                    predictions.c.problem == featureset.name, predictions.c.as_of == as_of
                )
            )
            label_list = labels.tolist() if labels is not None else [None] * len(frame)
            conn.execute(
                predictions.insert(),
                [
                    {
                        "problem": featureset.name,
                        "entity": str(e),
                        "as_of": as_of,
                        "score": float(s),
                        "label": lab,
                        "model_version_id": model.id,
                        "run_id": run_id,
                    }
                    for e, s, lab in zip(frame[entity], scores, label_list, strict=True)
                ],
            )
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
    return PredictionRun(
        id=run_id,
        problem=featureset.name,
        model_version_id=model.id,
        model_name=model.name,
        as_of=as_of,
        rows=len(frame),
        positive_rate=float(np.mean(labels)) if labels is not None else None,
        mean_score=float(np.mean(scores)),
        target="store:predictions",
        seconds=seconds,
    )


def latest_run(store: Store, problem: str) -> dict | None:
    with store.connect() as conn:
        row = conn.execute(
            sa.select(prediction_runs)
            .where(prediction_runs.c.problem == problem)
            .order_by(prediction_runs.c.id.desc())
            .limit(1)
        ).first()
    return None if row is None else dict(row._mapping)
