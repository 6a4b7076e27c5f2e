"""Dataset versions: Parquet plus a store row; same spec and data reuse the version without
recomputing; a changed feature or touched data make a new one."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from cycleml import Project
from cycleml.features import FeatureSet, load_dataset
from cycleml.store.tables import dataset_versions, model_versions

EVENTS_CSV = """\
user_id,ts,event_type,value
u1,2024-01-15 10:00:00,view,1.0
u1,2024-02-05 09:00:00,buy,10.0
u1,2024-02-24 00:00:00,view,2.0
u1,2024-02-29 18:00:00,buy,20.0
u1,2024-03-01 00:00:00,view,100.0
u1,2024-03-02 00:00:00,buy,1000.0
u2,2024-02-22 00:00:00,view,4.0
u2,2024-02-23 00:00:00,buy,6.0
u2,2024-03-10 00:00:00,view,50.0
u3,2024-02-25 00:00:00,view,7.0
"""

SPEC = """\
spec_version: 1
name: datasets
sources:
  events: {path: data/events.csv, entity: user_id, time: ts}
problems:
  churn:
    entity: user_id
    task: binary
    label: {kind: inactivity, source: events, days: 7, active_days: 14}
    cutoffs: {every: 7d, start: 2024-02-09, end: 2024-03-08}
    features: [activity]
features:
  activity:
    source: events
    windows: [WINDOWS]
    aggregate: {count: "*", sum: value}
"""


@pytest.fixture
def tiny(write_project) -> Path:
    return write_project(SPEC.replace("WINDOWS", "7d, 30d"), {"data/events.csv": EVENTS_CSV})


def _build(root: Path, **kwargs):
    project = Project(root)
    try:
        return project, project.build_dataset("churn", **kwargs)
    finally:
        project.close()


def test_build_writes_parquet_and_a_store_row(tiny):
    project, version = _build(tiny)
    assert version.reused is False
    path = project.artifacts.root / version.path
    assert path.is_file() and path.suffix == ".parquet"
    frame = pd.read_parquet(path)
    # the six (entity, cutoff) rows of this log (see test_labels_churn.py): two churn-free
    assert len(frame) == version.rows == 6
    assert version.cutoffs == 4
    assert version.label_balance == {"0": 2, "1": 4}
    counts = frame["label"].value_counts()
    assert version.label_balance == {str(k): int(v) for k, v in counts.items()}
    assert [f["name"] for f in version.features] == [
        "activity_count_7d",
        "activity_sum_value_7d",
        "activity_count_30d",
        "activity_sum_value_30d",
    ]
    assert set(frame.columns) == {
        "user_id",
        "as_of",
        "label",
        *[f["name"] for f in version.features],
    }
    assert any("left out 1 cutoff" in n for n in version.notes)
    with project.store.connect() as conn:
        rows = conn.execute(sa.select(dataset_versions)).fetchall()
    assert [(r.id, r.problem, r.rows) for r in rows] == [(version.id, "churn", 6)]
    # the stored file is the training frame itself
    fs = Project(tiny).features("churn")
    try:
        fresh = fs.training_frame().frame
    finally:
        fs.sources.close()
    pd.testing.assert_frame_equal(load_dataset(version, project.artifacts), fresh)


def test_same_spec_and_data_reuse_the_version_without_recomputing(tiny, monkeypatch):
    _, first = _build(tiny)

    def boom(self):
        raise AssertionError("the training frame was recomputed")

    monkeypatch.setattr(FeatureSet, "training_frame", boom)
    project, again = _build(tiny)
    assert again.id == first.id
    assert again.reused is True
    assert again.rows == first.rows and again.artifact_sha256 == first.artifact_sha256
    with project.store.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(dataset_versions)).scalar() == 1


def test_changing_a_feature_makes_a_new_version(tiny):
    _, first = _build(tiny)
    (tiny / "cycleml.yaml").write_text(SPEC.replace("WINDOWS", "7d, 28d"), encoding="utf-8")
    _, second = _build(tiny)
    assert second.id != first.id
    assert second.reused is False
    assert second.spec_hash != first.spec_hash
    assert second.data_fingerprint == first.data_fingerprint
    assert "activity_count_28d" in [f["name"] for f in second.features]


def test_touching_the_data_makes_a_new_version(tiny):
    _, first = _build(tiny)
    events = tiny / "data/events.csv"
    stat = events.stat()
    os.utime(events, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    _, touched = _build(tiny)
    assert touched.id != first.id
    assert touched.reused is False
    assert touched.spec_hash == first.spec_hash
    assert touched.data_fingerprint != first.data_fingerprint


def test_new_rows_make_a_new_version_with_new_counts(tiny):
    _, first = _build(tiny)
    with open(tiny / "data/events.csv", "a", encoding="utf-8") as handle:
        handle.write("u4,2024-02-10 00:00:00,view,1.0\n")  # u4: eligible Feb 16 and Feb 23
    _, grown = _build(tiny)
    assert grown.id != first.id
    # u4 is active in [Feb 2, Feb 16) and [Feb 9, Feb 23) and never again: two churn rows
    assert grown.rows == first.rows + 2
    assert grown.label_balance == {"0": 2, "1": 6}


def test_forced_rebuild_keeps_models_that_point_at_the_version(demo_project):
    """A model version references its dataset version: a forced rebuild (or one after the
    Parquet file was lost) must update the row, not delete it."""
    project = Project(demo_project)
    try:
        model = project.train("churn").model
        version = project.build_dataset("churn")
        assert version.reused and version.id == model.dataset_version_id
        rebuilt = project.build_dataset("churn", force=True)
        assert rebuilt.id == version.id and rebuilt.reused is False
        assert rebuilt.rows == version.rows
        (project.artifacts.root / version.path).unlink()
        restored = project.build_dataset("churn")
        assert restored.id == version.id and restored.reused is False
        assert (project.artifacts.root / restored.path).is_file()
        assert len(load_dataset(restored, project.artifacts)) == version.rows
        with project.store.connect() as conn:
            ids = conn.execute(sa.select(model_versions.c.dataset_version_id)).scalars().all()
        assert ids == [version.id]
        # the model still loads and scores
        _, bundle = project.load_model("churn")
        frame = load_dataset(restored, project.artifacts)
        assert len(bundle.score(frame.head(5))) == 5
    finally:
        project.close()
