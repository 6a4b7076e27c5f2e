"""Dataset versions: the training frame written to Parquet, with a row in the store.

A version's id is a hash of the spec parts that shape it and of the data fingerprint, so the same
spec and the same data give the same version, and a rebuild is skipped."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import datetime

import pandas as pd
import sqlalchemy as sa

from ..data import SourceSet
from ..store import ArtifactStore, Store, utcnow
from ..store.tables import dataset_versions
from ._featureset import LABEL_COLUMN, FeatureSet


@dataclass(frozen=True)
class DatasetVersion:
    id: str
    problem: str
    spec_hash: str
    data_fingerprint: str
    path: str
    artifact_sha256: str
    rows: int
    cutoffs: int
    label_balance: dict
    features: list
    notes: list
    build_seconds: float
    created_at: datetime
    reused: bool = False

    def to_dict(self) -> dict:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["created_at"] = self.created_at.isoformat()
        return out


def problem_hash(featureset: FeatureSet) -> str:
    """Hash of everything in the spec that shapes this problem's dataset."""
    spec = featureset.spec
    problem = featureset.problem
    parts = {
        "problem": problem.model_dump(mode="json"),
        "groups": {g: spec.features[g].model_dump(mode="json") for g in problem.features},
        "sources": {
            name: spec.sources[name].model_dump(mode="json") for name in _source_names(featureset)
        },
    }
    payload = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _source_names(featureset: FeatureSet) -> list[str]:
    spec = featureset.spec
    names = {featureset.problem.label.source}
    names.update(spec.features[g].source for g in featureset.problem.features)
    return sorted(names)


def build_dataset(
    featureset: FeatureSet, store: Store, artifacts: ArtifactStore, *, force: bool = False
) -> DatasetVersion:
    sources: SourceSet = featureset.sources
    spec_part = problem_hash(featureset)
    fingerprint = sources.fingerprint(_source_names(featureset))
    version_id = hashlib.sha256(f"{spec_part}:{fingerprint}".encode()).hexdigest()[:16]
    existing = get_dataset(store, version_id)
    if existing is not None and not force:
        try:
            artifacts.verified_path(existing.artifact_sha256)
            return DatasetVersion(**{**existing.__dict__, "reused": True})
        except Exception:  # the file is gone or changed: rebuild it
            pass
    started = time.perf_counter()
    built = featureset.training_frame()
    frame = built.frame
    scratch = artifacts.scratch()
    try:
        tmp = scratch / "dataset.parquet"
        frame.to_parquet(tmp, index=False)
        balance = _balance(frame)
        with store.begin() as conn:
            sha, dest = artifacts.put(
                tmp, "datasets", f"{featureset.name}-{version_id}.parquet", conn=conn
            )
            values = dict(
                problem=featureset.name,
                spec_hash=spec_part,
                data_fingerprint=fingerprint,
                path=str(dest.relative_to(artifacts.root)),
                artifact_sha256=sha,
                rows=len(frame),
                cutoffs=len(built.cutoffs),
                label_balance=balance,
                features=[
                    {"name": c.name, "kind": c.kind, "group": c.group}
                    for c in featureset.model_columns
                ],
                notes=built.notes,
                build_seconds=time.perf_counter() - started,
                created_at=utcnow(),
            )
            # A rebuild (forced, or its file lost) updates the row in place: model versions
            # may point at it, so it cannot be deleted and inserted again.
            if existing is None:
                conn.execute(dataset_versions.insert().values(id=version_id, **values))
            else:
                conn.execute(
                    dataset_versions.update()
                    .where(dataset_versions.c.id == version_id)
                    .values(**values)
                )
    finally:
        for leftover in scratch.iterdir():
            leftover.unlink()
        scratch.rmdir()
    result = get_dataset(store, version_id)
    assert result is not None
    return result


def load_dataset(version: DatasetVersion, artifacts: ArtifactStore) -> pd.DataFrame:
    return pd.read_parquet(artifacts.verified_path(version.artifact_sha256))


def get_dataset(store: Store, version_id: str) -> DatasetVersion | None:
    with store.connect() as conn:
        row = conn.execute(
            sa.select(dataset_versions).where(dataset_versions.c.id == version_id)
        ).first()
    return None if row is None else _from_row(row)


def latest_dataset(store: Store, problem: str) -> DatasetVersion | None:
    with store.connect() as conn:
        row = conn.execute(
            sa.select(dataset_versions)
            .where(dataset_versions.c.problem == problem)
            .order_by(dataset_versions.c.created_at.desc())
            .limit(1)
        ).first()
    return None if row is None else _from_row(row)


def _from_row(row) -> DatasetVersion:
    m = dict(row._mapping)
    return DatasetVersion(**m)


def _balance(frame: pd.DataFrame) -> dict:
    label = frame[LABEL_COLUMN]
    if label.nunique() <= 20:
        counts = label.value_counts().sort_index()
        return {str(k): int(v) for k, v in counts.items()}
    return {
        "mean": float(label.mean()),
        "std": float(label.std()),
        "min": float(label.min()),
        "max": float(label.max()),
    }
