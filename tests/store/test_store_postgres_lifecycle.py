"""The demo lifecycle on a PostgreSQL store: every row lands there, with consistent lineage."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from cycleml import Project
from cycleml.store import tables as t

pytestmark = pytest.mark.postgres


def _use_store(root: Path, url: str) -> None:
    spec = root / "cycleml.yaml"
    text, count = re.subn(r"(?m)^store:.*$", f"store: {url}", spec.read_text(encoding="utf-8"))
    assert count == 1
    spec.write_text(text, encoding="utf-8")


def test_train_and_batch_predict_write_their_lineage_to_postgres(
    demo_project: Path, pg_database: str
) -> None:
    _use_store(demo_project, pg_database)
    project = Project(demo_project)
    try:
        assert project.store.dialect == "postgresql"
        outcome = project.train("churn")
        run = project.predict_batch("churn", as_of=datetime(2026, 6, 1))
        mv = project.model("churn")
        project.profile("users")
    finally:
        project.close()
    assert run.rows > 0

    engine = sa.create_engine(pg_database)
    try:
        with engine.connect() as conn:
            datasets = conn.execute(sa.select(t.dataset_versions)).mappings().all()
            models = conn.execute(sa.select(t.model_versions)).mappings().all()
            runs = conn.execute(sa.select(t.prediction_runs)).mappings().all()
            predictions = conn.execute(
                sa.select(
                    sa.func.count(),
                    sa.func.count(sa.distinct(t.predictions.c.entity)),
                    sa.func.min(t.predictions.c.model_version_id),
                    sa.func.max(t.predictions.c.model_version_id),
                    sa.func.min(t.predictions.c.run_id),
                    sa.func.max(t.predictions.c.run_id),
                    sa.func.min(t.predictions.c.as_of),
                    sa.func.max(t.predictions.c.as_of),
                )
            ).one()
            artifact_shas = set(conn.execute(sa.select(t.artifacts.c.sha256)).scalars())
            profiles = conn.execute(sa.select(t.profiles.c.source)).scalars().all()
    finally:
        engine.dispose()

    [dataset] = datasets
    [model] = models
    [prun] = runs
    # model -> dataset -> artifacts
    assert model["id"] == mv.id == outcome.model.id
    assert model["dataset_version_id"] == dataset["id"] == outcome.dataset.id
    assert model["artifact_sha256"] in artifact_shas
    assert dataset["artifact_sha256"] in artifact_shas
    assert dataset["rows"] > 0
    # prediction run -> model, predictions -> run and model
    assert prun["id"] == run.id
    assert prun["model_version_id"] == model["id"] == run.model_version_id
    assert prun["rows"] == run.rows
    assert prun["features_sha256"] in artifact_shas
    count, entities, mv_min, mv_max, run_min, run_max, as_of_min, as_of_max = predictions
    assert count == run.rows == entities
    assert mv_min == mv_max == model["id"]
    assert run_min == run_max == run.id
    assert as_of_min == as_of_max == datetime(2026, 6, 1)
    assert profiles == ["users"]
    # Nothing went to a SQLite file in the project folder.
    assert not list(demo_project.rglob("*.db"))
