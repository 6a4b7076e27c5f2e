"""The metadata store (SQLAlchemy Core, migrated with Alembic) and the artifact folder."""

from . import tables
from ._artifacts import ArtifactStore, sha256_file
from ._store import Store, resolve_url, utcnow

__all__ = ["ArtifactStore", "Store", "resolve_url", "sha256_file", "tables", "utcnow"]
