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


def _holds(path: Path, sha: str) -> bool:
    return path.is_file() and sha256_file(path) == sha


class ArtifactStore:
    """A folder of content-addressed files; the store remembers each file's hash."""

    def __init__(self, root: str | Path, store: Store) -> None:
        self.root = Path(root)
        self.store = store

    def put(self, src: str | Path, kind: str, name: str, conn=None) -> tuple[str, Path]:
        """Copy ``src`` into the artifact folder as ``kind/name`` and record its sha256.

        The row is written on ``conn`` when given, so it commits with the caller's rows. A file
        already stored keeps its bytes: content already recorded (and intact) is not copied again,
        and a different content never overwrites ``kind/name`` (it gets the name with its hash)."""
        sha = sha256_file(src)
        if conn is None:
            with self.store.begin() as own:
                return sha, self._put(src, sha, kind, name, own)
        return sha, self._put(src, sha, kind, name, conn)

    def _put(self, src: str | Path, sha: str, kind: str, name: str, conn) -> Path:
        recorded = conn.execute(
            sa.select(artifacts.c.path).where(artifacts.c.sha256 == sha)
        ).scalar_one_or_none()
        if recorded is not None and _holds(self.root / recorded, sha):
            return self.root / recorded
        dest = self.root / kind / name
        if dest.exists() and not _holds(dest, sha):
            # Another content lives under that name (and may be recorded): keep it intact.
            dest = dest.with_name(f"{dest.stem}-{sha[:12]}{dest.suffix}")
        if not _holds(dest, sha):
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
            os.close(fd)
            try:
                shutil.copyfile(src, tmp)
                os.replace(tmp, dest)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        row = {
            "sha256": sha,
            "path": dest.relative_to(self.root).as_posix(),
            "size": dest.stat().st_size,
            "kind": kind,
            "created_at": utcnow(),
        }
        if recorded is None:
            conn.execute(artifacts.insert().values(**row))
        else:  # the recorded file was gone or changed: point the row at the restored copy
            conn.execute(
                artifacts.update()
                .where(artifacts.c.sha256 == sha)
                .values(path=row["path"], size=row["size"])
            )
        return dest

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
