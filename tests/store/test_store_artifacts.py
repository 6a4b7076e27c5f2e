"""Artifacts: recorded with sha256 and size, verified before use, never overwritten; a changed or
missing model file is an IntegrityError and is never unpickled."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import pytest
import sqlalchemy as sa

from cycleml import Project
from cycleml.errors import IntegrityError, NotFoundError
from cycleml.store import ArtifactStore, Store, sha256_file
from cycleml.store.tables import artifacts as artifacts_table


@pytest.fixture
def store_and_artifacts(tmp_path: Path):
    store = Store("sqlite:///.cycleml/store.db", tmp_path).open()
    yield store, ArtifactStore(tmp_path / ".cycleml" / "artifacts", store)
    store.dispose()


def _rows(store: Store) -> list[dict]:
    with store.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(artifacts_table))]


def _file(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def test_put_records_sha256_and_size_and_verified_path_returns_the_file(
    store_and_artifacts, tmp_path: Path
) -> None:
    store, arts = store_and_artifacts
    content = b"model bytes \x00\x01\x02" * 1000
    sha, dest = arts.put(_file(tmp_path, "m.bin", content), "models", "m-v1.bin")
    assert sha == hashlib.sha256(content).hexdigest() == sha256_file(dest)
    assert dest == arts.root / "models" / "m-v1.bin"
    assert dest.read_bytes() == content
    [row] = _rows(store)
    assert row["sha256"] == sha
    assert row["size"] == len(content)
    assert row["path"] == "models/m-v1.bin"
    assert row["kind"] == "models"
    assert arts.verified_path(sha) == dest


def test_put_on_a_callers_connection_commits_or_rolls_back_with_it(
    store_and_artifacts, tmp_path: Path
) -> None:
    store, arts = store_and_artifacts
    src = _file(tmp_path, "a.bin", b"first")
    with pytest.raises(RuntimeError), store.begin() as conn:
        arts.put(src, "datasets", "a.bin", conn=conn)
        raise RuntimeError("the caller's transaction fails")
    assert _rows(store) == []
    with store.begin() as conn:
        sha, _ = arts.put(src, "datasets", "a.bin", conn=conn)
    assert [r["sha256"] for r in _rows(store)] == [sha]


def test_the_same_content_is_recorded_once(store_and_artifacts, tmp_path: Path) -> None:
    store, arts = store_and_artifacts
    src = _file(tmp_path, "a.bin", b"same content")
    sha1, dest1 = arts.put(src, "datasets", "one.bin")
    sha2, dest2 = arts.put(src, "datasets", "two.bin")
    assert sha1 == sha2
    assert len(_rows(store)) == 1
    assert dest2 == dest1  # the recorded copy is intact: it is reused
    assert arts.verified_path(sha1) == dest1


def test_new_content_under_a_used_name_does_not_overwrite_the_recorded_file(
    store_and_artifacts, tmp_path: Path
) -> None:
    store, arts = store_and_artifacts
    old_sha, old_dest = arts.put(_file(tmp_path, "a", b"old scores"), "batches", "run.parquet")
    new_sha, new_dest = arts.put(_file(tmp_path, "b", b"new scores!"), "batches", "run.parquet")
    assert new_sha != old_sha
    assert new_dest != old_dest
    assert arts.verified_path(old_sha).read_bytes() == b"old scores"
    assert arts.verified_path(new_sha).read_bytes() == b"new scores!"
    assert {r["path"] for r in _rows(store)} == {
        old_dest.relative_to(arts.root).as_posix(),
        new_dest.relative_to(arts.root).as_posix(),
    }
    assert not [p for p in arts.root.rglob("*") if p.name.endswith(".tmp")]


def test_putting_again_restores_a_deleted_artifact(store_and_artifacts, tmp_path: Path) -> None:
    store, arts = store_and_artifacts
    src = _file(tmp_path, "a.bin", b"precious")
    sha, dest = arts.put(src, "models", "a.bin")
    dest.unlink()
    with pytest.raises(IntegrityError):
        arts.verified_path(sha)
    _, again = arts.put(src, "models", "a.bin")
    assert arts.verified_path(sha) == again
    assert again.read_bytes() == b"precious"


def test_verified_path_refuses_a_changed_file(store_and_artifacts, tmp_path: Path) -> None:
    _, arts = store_and_artifacts
    sha, dest = arts.put(_file(tmp_path, "a.bin", b"abcdef" * 100), "models", "a.bin")
    data = bytearray(dest.read_bytes())
    data[300] ^= 0x01
    dest.write_bytes(bytes(data))
    with pytest.raises(IntegrityError) as info:
        arts.verified_path(sha)
    assert "a.bin" in info.value.message and sha[:12] in info.value.message
    assert info.value.hint


def test_an_unrecorded_hash_is_not_found(store_and_artifacts) -> None:
    _, arts = store_and_artifacts
    with pytest.raises(NotFoundError):
        arts.verified_path("0" * 64)


# -- models -----------------------------------------------------------------------------------


class _Detonator:
    """Unpickling this writes a marker file: proof that a file was loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "unpickled"))


def _model_file(project: Project) -> tuple[Path, str]:
    mv = project.model("churn")
    return project.artifacts.verified_path(mv.artifact_sha256), mv.artifact_sha256


def test_a_model_file_with_one_byte_flipped_is_not_loaded(trained_copy: Path) -> None:
    project = Project(trained_copy)
    try:
        path, _ = _model_file(project)
        mv, bundle = project.load_model("churn")  # intact: loads
        assert bundle.problem == "churn"
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
        with pytest.raises(IntegrityError) as info:
            project.load_model("churn")
        assert path.name in info.value.message
        assert info.value.hint
        with pytest.raises(IntegrityError):
            project.registry.load(mv)
    finally:
        project.close()


def test_a_replaced_model_file_is_never_unpickled(trained_copy: Path, tmp_path: Path) -> None:
    project = Project(trained_copy)
    marker = tmp_path / "marker.txt"
    try:
        path, _ = _model_file(project)
        payload = pickle.dumps(_Detonator(marker))
        # The payload really would run if unpickled (checked on a copy, not through cycleml).
        pickle.loads(payload)
        assert marker.read_text() == "unpickled"
        marker.unlink()
        path.write_bytes(payload)
        with pytest.raises(IntegrityError):
            project.load_model("churn")
        with pytest.raises(IntegrityError):
            project.predict_batch("churn")
        assert not marker.exists()
    finally:
        project.close()


def test_a_deleted_model_file_is_an_integrity_error_with_a_hint(trained_copy: Path) -> None:
    project = Project(trained_copy)
    try:
        path, _ = _model_file(project)
        path.unlink()
        with pytest.raises(IntegrityError) as info:
            project.load_model("churn")
        assert "missing" in info.value.message and path.name in info.value.message
        assert info.value.hint and "retrain" in info.value.hint
    finally:
        project.close()
