"""Where batch predictions go: a database table (SQLite, PostgreSQL, DuckDB) or a Parquet folder.

Every target writes one partition, the rows of one (problem, as_of), and replaces it whole:
databases DELETE the partition and bulk-insert the new rows in one transaction (ADBC bulk ingest,
which is COPY on PostgreSQL; DuckDB inserts from Arrow); Parquet writes the partition's file
under a temporary name and renames it over the old one. A failure or a kill in the middle leaves
the previous partition as it was. The rows have the columns of :data:`ROW_SCHEMA`.

The store's own ``predictions`` table is written by :mod:`._store_writer` (same guarantees, in
the store's transaction).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy.engine import make_url

from ..errors import RequestError

ROW_SCHEMA = pa.schema(
    [
        pa.field("problem", pa.string(), nullable=False),
        pa.field("entity", pa.string(), nullable=False),
        pa.field("as_of", pa.timestamp("us"), nullable=False),
        pa.field("horizon", pa.int32()),
        pa.field("target_date", pa.timestamp("us")),
        pa.field("score", pa.float64(), nullable=False),
        pa.field("label", pa.int32()),
        pa.field("class_label", pa.string()),
        pa.field("model_version", pa.int32(), nullable=False),
        pa.field("run_id", pa.int64(), nullable=False),
    ]
)
"""The columns of a predictions target, in order (docs/batch.md describes them)."""

# Column families a pre-existing table's declared types must fall in (substring of the type).
_FAMILIES = {
    "text": ("CHAR", "TEXT", "CLOB", "STRING"),
    "int": ("INT",),
    "float": ("DOUBLE", "REAL", "FLOAT", "NUMERIC", "DECIMAL"),
    "time": ("TIMESTAMP", "DATETIME"),
}
_COLUMN_FAMILY = {
    "problem": "text",
    "entity": "text",
    "as_of": "time",
    "horizon": "int",
    "target_date": "time",
    "score": "float",
    "label": "int",
    "class_label": "text",
    "model_version": "int",
    "run_id": "int",
}

PAUSE_ENV = "CYCLEML_TEST_BATCH_PAUSE"
"""Test hook: a file path. After the first chunk is written (inside the open transaction, or into
the temporary Parquet file) the writer creates that file and sleeps up to 120 s, so that a test
can kill the process mid-write."""

ChunkCallback = Callable[[int], None]
STALE_TEMP_SECONDS = 3600
"""A Parquet partition's temporary file older than this was left by a killed run: deleted."""


class TargetError(RequestError):
    """A predictions target that cannot be used: unknown scheme, missing table name, a path
    that cannot be written, a database that cannot be reached, or a table of another shape."""


def pause_for_tests() -> None:
    marker = os.environ.get(PAUSE_ENV)
    if not marker:
        return
    Path(marker).write_text(str(os.getpid()))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(0.05)


class Target:
    """A place batch predictions are written to, one (problem, as_of) partition at a time."""

    kind: str = ""
    display: str = ""
    """What prediction_runs.target records (no password)."""

    def check(self) -> None:
        """Fail early (before scoring) when the target cannot take the rows."""

    def write(
        self,
        problem: str,
        as_of: datetime,
        chunks: Iterable[pa.Table],
        *,
        on_chunk: ChunkCallback | None = None,
    ) -> None:
        """Replace partition (problem, as_of) with ``chunks`` (tables of ROW_SCHEMA), atomically."""
        raise NotImplementedError


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


# -- helpers ---------------------------------------------------------------------------------------


def _hide_password(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@", 1)[-1] if "@" in url else url


def _short(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _qualified(table: str) -> str:
    return ".".join(_quote(part) for part in table.split("."))


def check_columns(where: str, declared: dict[str, str], *, sqlite: bool = False) -> None:
    """Raise TargetError unless the existing table ``declared`` (column -> declared type) holds
    every ROW_SCHEMA column with a type of the right family."""
    lower = {name.lower(): str(dtype).upper() for name, dtype in declared.items()}
    problems = []
    for column, family in _COLUMN_FAMILY.items():
        dtype = lower.get(column)
        if dtype is None:
            problems.append(f"no column {column!r}")
            continue
        accepted = _FAMILIES[family]
        if sqlite and family == "time":
            accepted = accepted + _FAMILIES["text"]
        if not any(word in dtype for word in accepted):
            problems.append(f"{column!r} is {dtype or 'untyped'}, expected {family}")
    if problems:
        raise TargetError(
            f"{where} exists with columns that do not fit predictions: {'; '.join(problems)}",
            hint="write to a new table (another #table), or drop/rename the existing one; "
            "the columns are listed in docs/batch.md",
        )


def sqlite_time_text(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Timestamps as SQLite text, the form SQLAlchemy reads back as DATETIME. Formatted once
    per distinct value (a batch has one as_of, and a forecast one date per day of horizon)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    encoded = pc.dictionary_encode(values)
    texts = pc.strftime(encoded.dictionary, format="%Y-%m-%d %H:%M:%S")
    return pc.take(texts, encoded.indices)


# -- SQLite ----------------------------------------------------------------------------------------

_SQLITE_TYPES = {
    "problem": "VARCHAR(200) NOT NULL",
    "entity": "VARCHAR(200) NOT NULL",
    "as_of": "DATETIME NOT NULL",
    "horizon": "INTEGER",
    "target_date": "DATETIME",
    "score": "FLOAT NOT NULL",
    "label": "INTEGER",
    "class_label": "VARCHAR(200)",
    "model_version": "INTEGER NOT NULL",
    "run_id": "INTEGER NOT NULL",
}


def _writable_file(path: Path, what: str) -> None:
    """Create ``path``'s folder if missing; a TargetError unless the file can be written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TargetError(
            f"cannot create the folder of {path}: {exc.strerror or exc}",
            hint="pick a path you can write to",
        ) from None
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise TargetError(
            f"cannot write the {what} file {path}", hint="pick a path you can write to"
        )


class SQLiteTarget(Target):
    """A table in a SQLite file (created with the file if missing), written with ADBC ingest.
    Times are stored as text ``YYYY-MM-DD HH:MM:SS.ffffff``. No index is created: a rerun's
    DELETE scans the table (see docs/batch.md)."""

    kind = "sqlite"

    def __init__(self, path: Path, table: str) -> None:
        self.path = Path(path)
        self.table = table
        self.display = f"sqlite:///{self.path}#{table}"

    def _connect(self):
        import adbc_driver_sqlite.dbapi as sqlite_dbapi

        _writable_file(self.path, "SQLite")
        try:
            conn = sqlite_dbapi.connect(str(self.path))
        except Exception as exc:
            raise TargetError(
                f"cannot open the SQLite file {self.path}: {_short(exc)}",
                hint="check the path is a SQLite database you can write to",
            ) from None
        cur = conn.cursor()
        cur.execute("PRAGMA busy_timeout = 10000")
        cur.close()
        return conn

    def _existing(self, conn) -> dict[str, str] | None:
        cur = conn.cursor()
        try:
            cur.execute(f"PRAGMA table_info({_quote(self.table)})")
            rows = cur.fetchall()
        except Exception as exc:
            raise TargetError(
                f"cannot read {self.path}: {_short(exc)}",
                hint="check the file is a SQLite database",
            ) from None
        finally:
            cur.close()
        return {row[1]: row[2] for row in rows} if rows else None

    def check(self) -> None:
        conn = self._connect()
        try:
            declared = self._existing(conn)
            if declared is not None:
                check_columns(f"table {self.table!r} in {self.path}", declared, sqlite=True)
        finally:
            conn.rollback()
            conn.close()

    def write(self, problem, as_of, chunks, *, on_chunk=None) -> None:
        conn = self._connect()
        try:
            with conn.cursor() as cur:
                declared = self._existing(conn)
                if declared is None:
                    columns = ", ".join(f"{_quote(c)} {t}" for c, t in _SQLITE_TYPES.items())
                    cur.execute(f"CREATE TABLE {_quote(self.table)} ({columns})")
                else:
                    check_columns(f"table {self.table!r} in {self.path}", declared, sqlite=True)
                cur.execute(
                    f"DELETE FROM {_quote(self.table)} WHERE problem = ? AND as_of = ?",
                    (problem, f"{as_of:%Y-%m-%d %H:%M:%S.%f}"),
                )
                for i, chunk in enumerate(chunks):
                    text = chunk.set_column(2, "as_of", sqlite_time_text(chunk.column("as_of")))
                    text = text.set_column(4, "target_date", sqlite_time_text(text["target_date"]))
                    cur.adbc_ingest(self.table, text, mode="append")
                    if on_chunk:
                        on_chunk(chunk.num_rows)
                    if i == 0:
                        pause_for_tests()
            conn.commit()
        except TargetError:
            conn.rollback()
            raise
        except Exception as exc:
            conn.rollback()
            raise TargetError(
                f"writing predictions into {self.display} failed: {_short(exc)}",
                hint="nothing was written; check the table and the disk, then rerun",
            ) from None
        finally:
            conn.close()


# -- PostgreSQL ------------------------------------------------------------------------------------

_PG_TYPES = {
    "problem": "TEXT NOT NULL",
    "entity": "TEXT NOT NULL",
    "as_of": "TIMESTAMP NOT NULL",
    "horizon": "INTEGER",
    "target_date": "TIMESTAMP",
    "score": "DOUBLE PRECISION NOT NULL",
    "label": "INTEGER",
    "class_label": "TEXT",
    "model_version": "INTEGER NOT NULL",
    "run_id": "BIGINT NOT NULL",
}


class PostgresTarget(Target):
    """A PostgreSQL table (``schema.table`` allowed), created if missing with an index on
    (problem, as_of); rows go in with ADBC bulk ingest (binary COPY)."""

    kind = "postgresql"

    def __init__(self, url: str, table: str) -> None:
        parsed = make_url(url)
        libpq = parsed.set(drivername="postgresql")
        if "connect_timeout" not in libpq.query:
            libpq = libpq.update_query_dict({"connect_timeout": "10"})
        self._libpq = libpq.render_as_string(hide_password=False)
        self.schema, _, self.table = table.rpartition(".")
        self.display = f"{parsed.render_as_string(hide_password=True)}#{table}"

    @property
    def _name(self) -> str:
        return _qualified(f"{self.schema}.{self.table}" if self.schema else self.table)

    def _connect(self):
        import adbc_driver_postgresql.dbapi as pg_dbapi

        try:
            return pg_dbapi.connect(self._libpq)
        except Exception as exc:
            raise TargetError(
                f"cannot connect to {self.display.split('#')[0]}: {_short(exc)}",
                hint="check the URL and that the database server is running",
            ) from None

    def _existing(self, conn) -> dict[str, str] | None:
        cur = conn.cursor()
        try:
            schema = _literal(self.schema) if self.schema else "current_schema()"
            cur.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                f"WHERE table_name = {_literal(self.table)} AND table_schema = {schema}"
            )
            rows = cur.fetchall()
        finally:
            cur.close()
        return {row[0]: row[1] for row in rows} if rows else None

    def check(self) -> None:
        conn = self._connect()
        try:
            declared = self._existing(conn)
            if declared is not None:
                check_columns(f"table {self.display}", declared)
        finally:
            conn.rollback()
            conn.close()

    def write(self, problem, as_of, chunks, *, on_chunk=None) -> None:
        conn = self._connect()
        try:
            with conn.cursor() as cur:
                declared = self._existing(conn)
                if declared is None:
                    columns = ", ".join(f"{_quote(c)} {t}" for c, t in _PG_TYPES.items())
                    cur.execute(f"CREATE TABLE IF NOT EXISTS {self._name} ({columns})")
                    index = _quote(f"ix_{self.table}_problem_as_of"[:63])
                    on = f"{self._name} (problem, as_of)"
                    cur.execute(f"CREATE INDEX IF NOT EXISTS {index} ON {on}")
                else:
                    check_columns(f"table {self.display}", declared)
                cur.execute(
                    f"DELETE FROM {self._name} WHERE problem = $1 AND as_of = $2", (problem, as_of)
                )
                for i, chunk in enumerate(chunks):
                    cur.adbc_ingest(
                        self.table, chunk, mode="append", db_schema_name=self.schema or None
                    )
                    if on_chunk:
                        on_chunk(chunk.num_rows)
                    if i == 0:
                        pause_for_tests()
            conn.commit()
        except TargetError:
            conn.rollback()
            raise
        except Exception as exc:
            conn.rollback()
            raise TargetError(
                f"writing predictions into {self.display} failed: {_short(exc)}",
                hint="nothing was written; check the table and the server, then rerun",
            ) from None
        finally:
            conn.close()


# -- DuckDB ----------------------------------------------------------------------------------------

_DUCKDB_TYPES = {
    "problem": "VARCHAR NOT NULL",
    "entity": "VARCHAR NOT NULL",
    "as_of": "TIMESTAMP NOT NULL",
    "horizon": "INTEGER",
    "target_date": "TIMESTAMP",
    "score": "DOUBLE NOT NULL",
    "label": "INTEGER",
    "class_label": "VARCHAR",
    "model_version": "INTEGER NOT NULL",
    "run_id": "BIGINT NOT NULL",
}


class DuckDBTarget(Target):
    """A table in a DuckDB database file (created if missing), filled from Arrow."""

    kind = "duckdb"

    def __init__(self, path: Path, table: str) -> None:
        self.path = Path(path)
        self.table = table
        self.display = f"duckdb:///{self.path}#{table}"

    def _connect(self):
        import duckdb

        _writable_file(self.path, "DuckDB")
        try:
            con = duckdb.connect(str(self.path))
        except duckdb.Error as exc:
            raise TargetError(
                f"cannot open the DuckDB file {self.path}: {_short(exc)}",
                hint="check it is a DuckDB database and no other process holds it open",
            ) from None
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")
        return con

    def _existing(self, con) -> dict[str, str] | None:
        schema, _, table = self.table.rpartition(".")
        rows = con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = ? AND table_schema = coalesce(?, current_schema())",
            [table, schema or None],
        ).fetchall()
        return {row[0]: row[1] for row in rows} if rows else None

    def check(self) -> None:
        con = self._connect()
        try:
            declared = self._existing(con)
            if declared is not None:
                check_columns(f"table {self.table!r} in {self.path}", declared)
        finally:
            con.close()

    def write(self, problem, as_of, chunks, *, on_chunk=None) -> None:
        import duckdb

        con = self._connect()
        name = _qualified(self.table)
        columns = ", ".join(_quote(f.name) for f in ROW_SCHEMA)
        try:
            con.begin()
            declared = self._existing(con)
            if declared is None:
                defs = ", ".join(f"{_quote(c)} {t}" for c, t in _DUCKDB_TYPES.items())
                con.execute(f"CREATE TABLE {name} ({defs})")
            else:
                check_columns(f"table {self.table!r} in {self.path}", declared)
            con.execute(f"DELETE FROM {name} WHERE problem = ? AND as_of = ?", [problem, as_of])
            for i, chunk in enumerate(chunks):
                con.register("_cycleml_chunk", chunk)
                con.execute(f"INSERT INTO {name} ({columns}) SELECT {columns} FROM _cycleml_chunk")
                con.unregister("_cycleml_chunk")
                if on_chunk:
                    on_chunk(chunk.num_rows)
                if i == 0:
                    pause_for_tests()
            con.commit()
        except TargetError:
            con.rollback()
            raise
        except duckdb.Error as exc:
            con.rollback()
            raise TargetError(
                f"writing predictions into {self.display} failed: {_short(exc)}",
                hint="nothing was written; check the table and the disk, then rerun",
            ) from None
        finally:
            con.close()


# -- Parquet ---------------------------------------------------------------------------------------


def parquet_file_name(problem: str, as_of: datetime) -> str:
    """The file of one partition inside a Parquet target folder."""
    stamp = f"{as_of:%Y%m%dT%H%M%S}" + (f".{as_of.microsecond:06d}" if as_of.microsecond else "")
    return f"{problem}-as_of={stamp}.parquet"


class ParquetTarget(Target):
    """A folder holding one Parquet file per (problem, as_of) partition. A partition is written
    to a hidden temporary file in the folder and renamed over the old file (atomic on one file
    system), so readers see the old partition or the new one, never a mix."""

    kind = "parquet"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.display = str(self.path)

    def check(self) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise TargetError(
                f"{self.path} exists and is not a folder",
                hint="a Parquet target is a folder holding one file per as_of: pick a new path",
            )
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.path, prefix=".check-"):
                pass
        except OSError as exc:
            raise TargetError(
                f"cannot write into {self.path}: {exc.strerror or exc}",
                hint="pick a folder you can write to",
            ) from None

    def write(self, problem, as_of, chunks, *, on_chunk=None) -> None:
        self.check()
        final = self.path / parquet_file_name(problem, as_of)
        for stale in self.path.glob(f".{final.name}.*.tmp"):  # left by a killed run
            if time.time() - stale.stat().st_mtime > STALE_TEMP_SECONDS:
                stale.unlink(missing_ok=True)
        fd, temp = tempfile.mkstemp(dir=self.path, prefix=f".{final.name}.", suffix=".tmp")
        os.close(fd)
        try:
            with pq.ParquetWriter(temp, ROW_SCHEMA) as writer:
                for i, chunk in enumerate(chunks):
                    writer.write_table(chunk)
                    if on_chunk:
                        on_chunk(chunk.num_rows)
                    if i == 0:
                        pause_for_tests()
            with open(temp, "rb+") as handle:
                os.fsync(handle.fileno())
            os.replace(temp, final)
        except OSError as exc:
            raise TargetError(
                f"writing {final} failed: {exc.strerror or exc}",
                hint="the previous file (if any) is unchanged; check the disk, then rerun",
            ) from None
        finally:
            if os.path.exists(temp):
                os.unlink(temp)
