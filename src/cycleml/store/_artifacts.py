"""Artifacts (models, dataset files) on disk, each recorded with its sha256 and verified on load."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import sqlalchemy as sa

from ..errors import IntegrityError, NotFoundError
from ._store import Store, utcnow
from .tables import artifacts


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ArtifactStore:
    """A folder of content-addressed files; the store remembers each file's hash."""

    def __init__(self, root: str | Path, store: Store) -> None:
        self.root = Path(root)
        self.store = store

    def put(self, src: str | Path, kind: str, name: str, conn=None) -> tuple[str, Path]:
        """Move ``src`` into the artifact folder as ``kind/name`` and record its sha256.

        The row is written on ``conn`` when given, so it commits with the caller's rows."""
        sha = sha256_file(src)
        dest = self.root / kind / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if Path(src).resolve() != dest.resolve():
            tmp = dest.with_suffix(dest.suffix + ".tmp")
            shutil.copyfile(src, tmp)
            os.replace(tmp, dest)
        row = {
            "sha256": sha,
            "path": str(dest.relative_to(self.root)),
            "size": dest.stat().st_size,
            "kind": kind,
            "created_at": utcnow(),
        }
        if conn is None:
            with self.store.begin() as own:
                self._record(own, row)
        else:
            self._record(conn, row)
        return sha, dest

    @staticmethod
    def _record(conn, row: dict) -> None:
        exists = conn.execute(
            sa.select(artifacts.c.sha256).where(artifacts.c.sha256 == row["sha256"])
        ).first()
        if exists is None:
            conn.execute(artifacts.insert().values(**row))

    def verified_path(self, sha256: str) -> Path:
        """The artifact's path, after checking its content still has the recorded hash."""
        with self.store.connect() as conn:
            row = conn.execute(sa.select(artifacts).where(artifacts.c.sha256 == sha256)).first()
        if row is None:
            raise NotFoundError(f"artifact {sha256[:12]} is not recorded in the store")
        path = self.root / row.path
        if not path.is_file():
            raise IntegrityError(
                f"artifact {row.path} is missing from {self.root}",
                hint="restore the .cycleml/artifacts folder, or retrain to make a new version",
            )
        actual = sha256_file(path)
        if actual != sha256:
            raise IntegrityError(
                f"artifact {row.path} has sha256 {actual[:12]}…, but the store recorded "
                f"{sha256[:12]}…; it was changed after it was saved and will not be loaded",
                hint="restore the original file, or retrain to make a new version",
            )
        return path

    def scratch(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(dir=self.root, prefix=".tmp-"))
