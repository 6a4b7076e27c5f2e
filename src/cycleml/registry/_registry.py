"""Model versions with lineage and stages (none, staging, production, archived)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa

from .._version import __version__
from ..errors import NotFoundError, RequestError
from ..store import ArtifactStore, Store, utcnow
from ..store.tables import artifacts as artifacts_table
from ..store.tables import model_versions
from ..train import TrainResult
from ._bundle import ModelBundle

STAGES = ("none", "staging", "production", "archived")

_SELECT = sa.select(model_versions, artifacts_table.c.size.label("artifact_size")).select_from(
    model_versions.outerjoin(
        artifacts_table, artifacts_table.c.sha256 == model_versions.c.artifact_sha256
    )
)


@dataclass(frozen=True)
class ModelVersion:
    id: int
    problem: str
    version: int
    algorithm: str
    stage: str
    dataset_version_id: str
    metrics: dict
    leaderboard: list
    params: dict
    threshold: float | None
    features: list
    artifact_sha256: str
    code_version: str
    training_seconds: float
    created_at: datetime
    artifact_size: int | None = None

    @property
    def name(self) -> str:
        return f"{self.problem}-v{self.version}"

    def to_dict(self) -> dict:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["created_at"] = self.created_at.isoformat()
        out["name"] = self.name
        return out


class Registry:
    def __init__(self, store: Store, artifacts: ArtifactStore) -> None:
        self.store = store
        self.artifacts = artifacts

    def register(
        self, problem: str, dataset_version_id: str, result: TrainResult, bundle: ModelBundle
    ) -> ModelVersion:
        """Save the artifact and write the version row in one transaction; the first version of
        a problem goes straight to production."""
        scratch = self.artifacts.scratch()
        try:
            tmp = scratch / "model.joblib"
            bundle.save(tmp)
            with self.store.begin() as conn:
                version = (
                    conn.execute(
                        sa.select(sa.func.max(model_versions.c.version)).where(
                            model_versions.c.problem == problem
                        )
                    ).scalar()
                    or 0
                ) + 1
                has_champion = conn.execute(
                    sa.select(model_versions.c.id).where(
                        model_versions.c.problem == problem,
                        model_versions.c.stage == "production",
                    )
                ).first()
                sha, _ = self.artifacts.put(
                    tmp, "models", f"{problem}-v{version}.joblib", conn=conn
                )
                row_id = conn.execute(
                    model_versions.insert()
                    .values(
                        problem=problem,
                        version=version,
                        dataset_version_id=dataset_version_id,
                        algorithm=result.algorithm,
                        params=result.params,
                        metrics=result.metrics,
                        leaderboard=result.leaderboard,
                        threshold=result.threshold,
                        features=[
                            {"name": c.name, "kind": c.kind, "group": c.group}
                            for c in bundle.columns
                        ],
                        artifact_sha256=sha,
                        code_version=__version__,
                        stage="staging" if has_champion else "production",
                        training_seconds=result.seconds,
                        created_at=utcnow(),
                    )
                    .returning(model_versions.c.id)
                ).scalar_one()
        finally:
            for leftover in scratch.iterdir():
                leftover.unlink()
            os.rmdir(scratch)
        return self.get_by_id(row_id)

    def list(self, problem: str | None = None) -> list[ModelVersion]:
        query = _SELECT.order_by(model_versions.c.problem, model_versions.c.version)
        if problem:
            query = query.where(model_versions.c.problem == problem)
        with self.store.connect() as conn:
            return [_row(r) for r in conn.execute(query)]

    def get_by_id(self, model_id: int) -> ModelVersion:
        with self.store.connect() as conn:
            row = conn.execute(_SELECT.where(model_versions.c.id == model_id)).first()
        if row is None:
            raise NotFoundError(f"no model version with id {model_id}")
        return _row(row)

    def get(self, problem: str, version: int | None = None) -> ModelVersion:
        """A given version, or the production version when ``version`` is None."""
        query = _SELECT.where(model_versions.c.problem == problem)
        if version is None:
            query = query.where(model_versions.c.stage == "production")
        else:
            query = query.where(model_versions.c.version == version)
        with self.store.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            if version is None:
                raise NotFoundError(
                    f"problem {problem!r} has no production model",
                    hint=f"run `cycleml train {problem}` (the first version goes to production), "
                    "or promote one with `cycleml models promote`",
                )
            raise NotFoundError(
                f"problem {problem!r} has no model version {version}",
                hint=f"`cycleml models list {problem}` shows its versions",
            )
        return _row(row)

    def promote(self, problem: str, version: int, stage: str = "production") -> ModelVersion:
        if stage not in STAGES:
            raise RequestError(f"unknown stage {stage!r}", hint=f"stages: {', '.join(STAGES)}")
        target = self.get(problem, version)
        with self.store.begin() as conn:
            if stage == "production":
                conn.execute(
                    model_versions.update()
                    .where(
                        model_versions.c.problem == problem, model_versions.c.stage == "production"
                    )
                    .values(stage="archived")
                )
            conn.execute(
                model_versions.update().where(model_versions.c.id == target.id).values(stage=stage)
            )
        return self.get_by_id(target.id)

    def load(self, version: ModelVersion) -> ModelBundle:
        """The model, after its artifact's sha256 has been checked against the store."""
        path: Path = self.artifacts.verified_path(version.artifact_sha256)
        return ModelBundle.load_unverified(path)


def _row(row) -> ModelVersion:
    m = row._mapping
    return ModelVersion(
        id=m["id"],
        problem=m["problem"],
        version=m["version"],
        algorithm=m["algorithm"],
        stage=m["stage"],
        dataset_version_id=m["dataset_version_id"],
        metrics=m["metrics"],
        leaderboard=m["leaderboard"],
        params=m["params"],
        threshold=m["threshold"],
        features=m["features"],
        artifact_sha256=m["artifact_sha256"],
        code_version=m["code_version"],
        training_seconds=m["training_seconds"],
        created_at=m["created_at"],
        artifact_size=m.get("artifact_size"),
    )
