"""Where batch predictions go: a database table (SQLite, PostgreSQL, DuckDB) or a Parquet folder.

Every target writes one partition, the rows of one (problem, as_of), and replaces it whole:
databases DELETE the partition and bulk-insert the new rows in one transaction (ADBC bulk ingest,
which is COPY on PostgreSQL; DuckDB inserts from Arrow); Parquet writes the partition's file
under a temporary name and renames it over the old one. A failure or a kill in the middle leaves
the previous partition as it was. The rows have the columns of :data:`ROW_SCHEMA`.

This module reads ``--to`` (:func:`parse_target`) and gathers the target names; the targets
live in :mod:`._sql_targets` (databases) and :mod:`._file_targets` (Parquet), what they share
in :mod:`._target_base`. The store's own ``predictions`` table is written by
:mod:`._store_writer` (same guarantees, in the store's transaction).
"""

from __future__ import annotations

from pathlib import Path

from ._file_targets import STALE_TEMP_SECONDS, ParquetTarget, parquet_file_name
from ._sql_targets import (
    DuckDBTarget,
    PostgresTarget,
    SQLiteTarget,
    SQLTarget,
    check_columns,
    sqlite_time_text,
)
from ._target_base import (
    PAUSE_ENV,
    ROW_SCHEMA,
    ChunkCallback,
    Target,
    TargetError,
    pause_for_tests,
)
from ._target_base import hide_password as _hide_password

__all__ = [
    "PAUSE_ENV",
    "ROW_SCHEMA",
    "STALE_TEMP_SECONDS",
    "ChunkCallback",
    "DuckDBTarget",
    "ParquetTarget",
    "PostgresTarget",
    "SQLTarget",
    "SQLiteTarget",
    "Target",
    "TargetError",
    "check_columns",
    "parquet_file_name",
    "parse_target",
    "pause_for_tests",
    "sqlite_time_text",
]


def parse_target(to: str, project_dir: Path) -> Target:
    """The target named by ``--to``: ``sqlite:///p.db#table``, ``postgresql://...#table``,
    ``duckdb:///p.db#table``, or a folder path ending in ``.parquet``. Relative paths start at
    the project folder."""
    text = to.strip()
    if "://" not in text:
        if text.rstrip("/").endswith(".parquet"):
            path = Path(text).expanduser()
            return ParquetTarget(path if path.is_absolute() else project_dir / path)
        raise TargetError(
            f"cannot tell what kind of target {to!r} is",
            hint="use a database URL with a table (sqlite:///preds.db#predictions, "
            "postgresql://user@host/db#predictions, duckdb:///preds.duckdb#predictions) or a "
            "Parquet folder path ending in .parquet",
        )
    url, sep, table = text.partition("#")
    scheme = url.split("://", 1)[0].lower()
    backend = scheme.split("+", 1)[0]
    if backend not in ("sqlite", "postgresql", "postgres", "duckdb"):
        raise TargetError(
            f"unknown target scheme {scheme!r} in {_hide_password(url)}",
            hint="use sqlite:///, postgresql://, duckdb:/// URLs (with #table) or a path "
            "ending in .parquet",
        )
    if not sep or not table.strip():
        raise TargetError(
            f"the target {_hide_password(url)} names no table",
            hint=f"add the table after #: {_hide_password(url)}#predictions",
        )
    table = table.strip()
    if backend in ("postgresql", "postgres"):
        return PostgresTarget(url, table)
    database = url.split(":///", 1)[1] if ":///" in url else ""
    if not database:
        raise TargetError(
            f"the target {url} names no database file",
            hint=f"write {backend}:///relative/path.db#{table} or {backend}:////abs/path.db#{table}",
        )
    path = Path(database).expanduser()
    path = path if path.is_absolute() else project_dir / path
    if backend == "sqlite":
        return SQLiteTarget(path, table)
    return DuckDBTarget(path, table)
