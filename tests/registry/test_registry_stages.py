"""The model registry: stages, promotion, lookups, and artifacts that reload to the same
scores (and refuse to load when changed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cycleml import Project
from cycleml.errors import IntegrityError, NotFoundError, RequestError
from cycleml.features import FeatureColumn, load_dataset
from cycleml.train import prepare_frame


@pytest.fixture
def two_versions(trained_copy: Path):
    """The trained demo (v1 in production) plus a second training run (v2)."""
    project = Project(trained_copy)
    outcome = project.train("churn")
    yield project, outcome
    project.close()


def test_first_version_production_second_staging(two_versions):
    project, outcome = two_versions
    versions = project.models("churn")
    assert [(v.version, v.stage) for v in versions] == [(1, "production"), (2, "staging")]
    assert outcome.model.version == 2 and outcome.model.stage == "staging"
    assert project.model("churn").version == 1  # get(problem) is the production version
    assert project.registry.get("churn").version == 1
    # lineage
    v2 = versions[1]
    assert v2.dataset_version_id == outcome.dataset.id
    assert v2.artifact_sha256 and v2.code_version
    _, bundle = project.load_model("churn", 2)
    assert [f["name"] for f in v2.features] == bundle.feature_names
    # the artifact reloads to the scores of the pipeline that was trained in memory
    frame = load_dataset(outcome.dataset, project.artifacts)
    columns = [FeatureColumn(f["name"], f["group"], f["kind"]) for f in outcome.dataset.features]
    in_memory = outcome.result.pipeline.predict_proba(prepare_frame(frame, columns))[:, 1]
    assert bundle.algorithm == v2.algorithm
    assert bundle.threshold == pytest.approx(v2.threshold)
    np.testing.assert_allclose(bundle.score(frame), in_memory, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(
        bundle.labels(bundle.score(frame)), (in_memory >= v2.threshold).astype(int)
    )


def test_promote_archives_the_old_champion(two_versions):
    project, _ = two_versions
    # forced: this test is about the stage moves; the champion check (v2 may tune to a slightly
    # different model) is tested in test_registry_promote_export.py
    promoted = project.promote("churn", 2, force=True)
    assert promoted.stage == "production" and promoted.version == 2
    assert [(v.version, v.stage) for v in project.models("churn")] == [
        (1, "archived"),
        (2, "production"),
    ]
    assert project.model("churn").version == 2
    # promoting back: v2 is archived in turn, and only one version is ever in production
    project.promote("churn", 1, force=True)
    stages = {v.version: v.stage for v in project.models("churn")}
    assert stages == {1: "production", 2: "archived"}
    # a third training run goes to staging: there is a champion
    assert project.train("churn").model.stage == "staging"


def test_unknown_version_and_stage(trained_demo):
    project = Project(trained_demo)  # read-only: every call below fails before writing
    try:
        with pytest.raises(NotFoundError) as info:
            project.model("churn", 9)
        assert "version 9" in info.value.message
        assert info.value.hint and "models list" in info.value.hint
        with pytest.raises(NotFoundError):
            project.promote("churn", 9)
        with pytest.raises(RequestError) as info:
            project.promote("churn", 1, stage="live")
        assert "staging" in (info.value.hint or "")
        with pytest.raises(NotFoundError) as info:
            project.model("churm")
        assert "churn" in (info.value.hint or "")
        assert [(v.version, v.stage) for v in project.models("churn")] == [(1, "production")]
    finally:
        project.close()


def test_no_production_model_is_not_found_with_a_hint(demo_project):
    project = Project(demo_project)
    try:
        with pytest.raises(NotFoundError) as info:
            project.model("churn")
        assert "no production model" in info.value.message
        assert "cycleml train churn" in info.value.hint
    finally:
        project.close()


def test_changed_artifact_is_not_loaded(trained_copy):
    project = Project(trained_copy)
    try:
        model = project.model("churn")
        path = project.artifacts.root / "models" / f"churn-v{model.version}.joblib"
        assert path.is_file()
        original = path.read_bytes()
        path.write_bytes(original + b"\0")
        with pytest.raises(IntegrityError) as info:
            project.load_model("churn")
        assert "sha256" in info.value.message
        path.write_bytes(original)  # restored: it loads again
        assert project.load_model("churn")[1].problem == "churn"
    finally:
        project.close()
