"""Database targets: a table in SQLite, PostgreSQL or DuckDB.

One flow for all three (:class:`SQLTarget`): check an existing table's columns (or create the
table), DELETE the partition and bulk-insert the new rows in one transaction, rolled back on any
failure. Each dialect gives only what differs: how to connect, how to read the existing
columns, the column types, and how a chunk goes in (SQLite and PostgreSQL: ADBC bulk ingest,
which is binary COPY on PostgreSQL; DuckDB: ``INSERT ... SELECT`` from the Arrow table).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy.engine import make_url

from ..data import quote, sql_literal
from ._target_base import ROW_SCHEMA, Target, TargetError, short_error

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


def _qualified(table: str) -> str:
    return ".".join(quote(part) for part in table.split("."))


def _column_defs(types: dict[str, str]) -> str:
    return ", ".join(f"{quote(column)} {dtype}" for column, dtype in types.items())


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


class SQLTarget(Target):
    """A database table written one partition per transaction. Subclasses connect, read the
    existing columns, and insert a chunk; the rest of the flow is here."""

    table: str
    _types: dict[str, str]
    """Column -> SQL type of a table this target creates."""
    _times_as_text = False
    """Whether an existing table may hold times in text columns (SQLite)."""
    _failure_hint = "nothing was written; check the table and the disk, then rerun"
    _placeholders = ("?", "?")
    """How the DELETE's two parameters are written in this dialect."""

    @property
    def _name(self) -> str:
        """The table's name as SQL."""
        return _qualified(self.table)

    @property
    def _where(self) -> str:
        """The table in messages."""
        raise NotImplementedError

    # -- per dialect -------------------------------------------------------------------------------

    def _connect(self) -> Any:
        raise NotImplementedError

    def _existing(self, conn: Any) -> dict[str, str] | None:
        """The existing table's column -> declared type, or None when there is no table."""
        raise NotImplementedError

    def _insert(self, cur: Any, chunk: pa.Table) -> None:
        raise NotImplementedError

    @contextmanager
    def _transaction(self, conn: Any) -> Iterator[Any]:
        """The cursor statements run on, inside the connection's transaction (ADBC connections
        open one implicitly)."""
        with conn.cursor() as cur:
            yield cur

    def _end_check(self, conn: Any) -> None:
        conn.rollback()
        conn.close()

    def _failures(self) -> tuple[type[BaseException], ...]:
        """The errors a failed write reports as a TargetError (others propagate as they are)."""
        return (Exception,)

    def _create(self, cur: Any) -> None:
        cur.execute(f"CREATE TABLE {self._name} ({_column_defs(self._types)})")

    def _delete(self, cur: Any, problem: str, as_of: datetime) -> None:
        first, second = self._placeholders
        cur.execute(
            f"DELETE FROM {self._name} WHERE problem = {first} AND as_of = {second}",
            (problem, self._as_of_param(as_of)),
        )

    def _as_of_param(self, as_of: datetime) -> object:
        """``as_of`` as the driver binds it for the DELETE."""
        return as_of

    # -- the shared flow ---------------------------------------------------------------------------

    def _check_existing(self, declared: dict[str, str]) -> None:
        check_columns(self._where, declared, sqlite=self._times_as_text)

    def check(self) -> None:
        conn = self._connect()
        try:
            declared = self._existing(conn)
            if declared is not None:
                self._check_existing(declared)
        finally:
            self._end_check(conn)

    @contextmanager
    def _partition(self, problem: str, as_of: datetime) -> Iterator[Callable[[pa.Table], None]]:
        conn = self._connect()
        try:
            with self._transaction(conn) as cur:
                declared = self._existing(conn)
                if declared is None:
                    self._create(cur)
                else:
                    self._check_existing(declared)
                self._delete(cur, problem, as_of)
                yield lambda chunk: self._insert(cur, chunk)
            conn.commit()
        except TargetError:
            conn.rollback()
            raise
        except self._failures() as exc:
            conn.rollback()
            raise TargetError(
                f"writing predictions into {self.display} failed: {short_error(exc)}",
                hint=self._failure_hint,
            ) from None
        finally:
            conn.close()


class _DatabaseFile(SQLTarget):
    """A table in a database file (SQLite, DuckDB): ``kind:///path#table``."""

    def __init__(self, path: Path, table: str) -> None:
        self.path = Path(path)
        self.table = table
        self.display = f"{self.kind}:///{self.path}#{table}"

    @property
    def _where(self) -> str:
        return f"table {self.table!r} in {self.path}"


# -- SQLite ----------------------------------------------------------------------------------------


class SQLiteTarget(_DatabaseFile):
    """A table in a SQLite file (created with the file if missing), written with ADBC ingest.
    Times are stored as text ``YYYY-MM-DD HH:MM:SS.ffffff``. No index is created: a rerun's
    DELETE scans the table (see docs/batch.md)."""

    kind = "sqlite"
    _types = {
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
    _times_as_text = True

    @property
    def _name(self) -> str:
        return quote(self.table)  # one identifier: a dot is part of the name in SQLite

    def _connect(self) -> Any:
        import adbc_driver_sqlite.dbapi as sqlite_dbapi

        _writable_file(self.path, "SQLite")
        try:
            conn = sqlite_dbapi.connect(str(self.path))
        except Exception as exc:
            raise TargetError(
                f"cannot open the SQLite file {self.path}: {short_error(exc)}",
                hint="check the path is a SQLite database you can write to",
            ) from None
        cur = conn.cursor()
        cur.execute("PRAGMA busy_timeout = 10000")
        cur.close()
        return conn

    def _existing(self, conn: Any) -> dict[str, str] | None:
        cur = conn.cursor()
        try:
            cur.execute(f"PRAGMA table_info({quote(self.table)})")
            rows = cur.fetchall()
        except Exception as exc:
            raise TargetError(
                f"cannot read {self.path}: {short_error(exc)}",
                hint="check the file is a SQLite database",
            ) from None
        finally:
            cur.close()
        return {row[1]: row[2] for row in rows} if rows else None

    def _as_of_param(self, as_of: datetime) -> object:
        return f"{as_of:%Y-%m-%d %H:%M:%S.%f}"

    def _insert(self, cur: Any, chunk: pa.Table) -> None:
        text = chunk.set_column(2, "as_of", sqlite_time_text(chunk.column("as_of")))
        text = text.set_column(4, "target_date", sqlite_time_text(text["target_date"]))
        cur.adbc_ingest(self.table, text, mode="append")


# -- PostgreSQL ------------------------------------------------------------------------------------


class PostgresTarget(SQLTarget):
    """A PostgreSQL table (``schema.table`` allowed), created if missing with an index on
    (problem, as_of); rows go in with ADBC bulk ingest (binary COPY)."""

    kind = "postgresql"
    _types = {
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
    _failure_hint = "nothing was written; check the table and the server, then rerun"
    _placeholders = ("$1", "$2")

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

    @property
    def _where(self) -> str:
        return f"table {self.display}"

    def _connect(self) -> Any:
        import adbc_driver_postgresql.dbapi as pg_dbapi

        try:
            return pg_dbapi.connect(self._libpq)
        except Exception as exc:
            raise TargetError(
                f"cannot connect to {self.display.split('#')[0]}: {short_error(exc)}",
                hint="check the URL and that the database server is running",
            ) from None

    def _existing(self, conn: Any) -> dict[str, str] | None:
        cur = conn.cursor()
        try:
            schema = sql_literal(self.schema) if self.schema else "current_schema()"
            cur.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                f"WHERE table_name = {sql_literal(self.table)} AND table_schema = {schema}"
            )
            rows = cur.fetchall()
        finally:
            cur.close()
        return {row[0]: row[1] for row in rows} if rows else None

    def _create(self, cur: Any) -> None:
        cur.execute(f"CREATE TABLE IF NOT EXISTS {self._name} ({_column_defs(self._types)})")
        index = quote(f"ix_{self.table}_problem_as_of"[:63])
        cur.execute(f"CREATE INDEX IF NOT EXISTS {index} ON {self._name} (problem, as_of)")

    def _insert(self, cur: Any, chunk: pa.Table) -> None:
        cur.adbc_ingest(self.table, chunk, mode="append", db_schema_name=self.schema or None)


# -- DuckDB ----------------------------------------------------------------------------------------

_ROW_COLUMNS = ", ".join(quote(field.name) for field in ROW_SCHEMA)


class DuckDBTarget(_DatabaseFile):
    """A table in a DuckDB database file (created if missing), filled from Arrow."""

    kind = "duckdb"
    _types = {
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

    def _connect(self) -> Any:
        import duckdb

        _writable_file(self.path, "DuckDB")
        try:
            con = duckdb.connect(str(self.path))
        except duckdb.Error as exc:
            raise TargetError(
                f"cannot open the DuckDB file {self.path}: {short_error(exc)}",
                hint="check it is a DuckDB database and no other process holds it open",
            ) from None
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")
        return con

    def _existing(self, conn: Any) -> dict[str, str] | None:
        schema, _, table = self.table.rpartition(".")
        rows = conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = ? AND table_schema = coalesce(?, current_schema())",
            [table, schema or None],
        ).fetchall()
        return {row[0]: row[1] for row in rows} if rows else None

    @contextmanager
    def _transaction(self, conn: Any) -> Iterator[Any]:
        conn.begin()  # DuckDB autocommits each statement otherwise
        yield conn

    def _end_check(self, conn: Any) -> None:
        conn.close()  # no transaction is open: nothing to roll back

    def _failures(self) -> tuple[type[BaseException], ...]:
        import duckdb

        return (duckdb.Error,)

    def _insert(self, cur: Any, chunk: pa.Table) -> None:
        cur.register("_cycleml_chunk", chunk)
        cur.execute(
            f"INSERT INTO {self._name} ({_ROW_COLUMNS}) SELECT {_ROW_COLUMNS} FROM _cycleml_chunk"
        )
        cur.unregister("_cycleml_chunk")
