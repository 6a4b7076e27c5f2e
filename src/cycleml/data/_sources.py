"""Sources as DuckDB views: files (CSV, Parquet, JSON lines; globs) and SQLite/PostgreSQL tables.

Every source becomes a view named after it in a DuckDB connection, so that the label, feature and
profile SQL reads all sources the same way. Database tables are read through ADBC into Arrow
(DuckDB's own database scanners are extensions downloaded at run time, which cycleml avoids).
A declared ``time`` column stored as text is parsed to TIMESTAMP in the view, and every timestamp
with a time zone becomes a naive UTC TIMESTAMP (the convention of every cycleml time). PostgreSQL
NUMERIC columns (which ADBC hands over as text) become DOUBLE.
"""

from __future__ import annotations

import glob
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote as url_quote

import duckdb
import pyarrow as pa
from sqlalchemy.engine import make_url

from ..errors import SourceError
from ..spec import SourceSpec, Spec

_READERS = {"csv": "read_csv", "parquet": "read_parquet", "json": "read_json"}
_EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".json": "json",
    ".jsonl": "json",
    ".ndjson": "json",
}


def quote(identifier: str) -> str:
    """A DuckDB/PostgreSQL quoted identifier."""
    return '"' + identifier.replace('"', '""') + '"'


def sql_literal(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


@dataclass(frozen=True)
class SourceInfo:
    """What `cycleml sources` shows for one source."""

    name: str
    kind: str
    location: str
    rows: int | None
    columns: dict[str, str]
    entity: str | None
    time: str | None
    error: str | None = None

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "kind": self.kind,
            "location": self.location,
            "rows": self.rows,
            "columns": self.columns,
            "entity": self.entity,
            "time": self.time,
            "error": self.error,
        }


class SourceSet:
    """The project's sources, opened as views in one DuckDB connection."""

    def __init__(self, spec: Spec, project_dir: str | Path, *, threads: int | None = None) -> None:
        self.spec = spec
        self.project_dir = Path(project_dir)
        self.con = duckdb.connect(":memory:")
        # Times are naive UTC everywhere: parse text and convert zoned timestamps in UTC, whatever
        # the machine's time zone is.
        self.con.execute("SET TimeZone = 'UTC'")
        # DuckDB draws a progress bar on stdout for long queries: it would corrupt `--json`.
        self.con.execute("SET enable_progress_bar = false")
        if threads:
            self.con.execute(f"SET threads = {int(threads)}")
        self._opened: set[str] = set()
        self._collected: dict[str, tuple[int, int]] = {}  # collected events: (rows, max id)

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> SourceSet:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- views ---------------------------------------------------------------------------------

    def view(self, name: str) -> str:
        """Register source ``name`` as a view (once) and return its quoted view name."""
        if name not in self.spec.sources:
            raise SourceError(
                f"unknown source {name!r}",
                hint=f"known sources: {', '.join(self.spec.sources) or '(none)'}",
            )
        if name not in self._opened:
            self._register(name, self.spec.sources[name])
            self._opened.add(name)
        return quote(name)

    def _register(self, name: str, source: SourceSpec) -> None:
        raw = f"_raw_{name}"
        numeric: set[str] = set()
        if source.kind == "file":
            files = self.files(name)
            fmt = source.format or _EXTENSIONS.get(Path(files[0]).suffix.lower())
            if fmt is None:
                raise SourceError(
                    f"source {name!r}: cannot tell the format of {files[0]}",
                    hint="add `format: csv`, `parquet` or `json` to the source",
                )
            file_list = "[" + ", ".join(sql_literal(f) for f in files) + "]"
            if source.encoding and fmt == "csv":
                file_list += f", encoding = {sql_literal(source.encoding)}"
            try:
                self.con.execute(
                    f"CREATE OR REPLACE VIEW {quote(raw)} AS "
                    f"SELECT * FROM {_READERS[fmt]}({file_list})"
                )
            except duckdb.Error as exc:
                if "not utf-8 encoded" in str(exc):
                    raise SourceError(
                        f"source {name!r} ({source.path}) is not UTF-8 text",
                        hint="declare its encoding on the source (`encoding: latin-1` or "
                        "`utf-16`), or convert it: iconv -f latin1 -t utf-8 in.csv > out.csv",
                    ) from None
                raise SourceError(
                    f"source {name!r} ({source.path}) cannot be read as {fmt}: {_short(exc)}",
                    hint="check the file is complete and the format is right",
                ) from None
        elif source.kind == "collected":  # collect-only: the declared columns, no rows
            self.con.execute(f"CREATE OR REPLACE VIEW {quote(raw)} AS {_empty_select(source)}")
        else:
            table = self._fetch_table(name, source)
            numeric = {f.name for f in table.schema if _is_pg_numeric(f)}
            self.con.register(raw, table)
        columns = self._columns_of(raw)
        select = []
        for column, dtype in columns.items():
            upper = dtype.upper()
            if column == source.time and upper in ("VARCHAR", "TEXT"):
                # Through TIMESTAMPTZ so that a written offset (+02:00, Z) is honoured; text
                # without one is read as UTC (the session time zone).
                select.append(
                    f"timezone('UTC', TRY_CAST({quote(column)} AS TIMESTAMPTZ)) AS {quote(column)}"
                )
            elif upper == "TIMESTAMP WITH TIME ZONE":
                select.append(f"timezone('UTC', {quote(column)}) AS {quote(column)}")
            elif column in numeric:
                select.append(f"TRY_CAST({quote(column)} AS DOUBLE) AS {quote(column)}")
            else:
                select.append(quote(column))
        body = f"SELECT {', '.join(select)} FROM {quote(raw)}"
        if source.collect:  # rows POST /v1/events stored (issue 6)
            body = self._with_collected(name, source, body)
        if self.spec.cleaning:  # recorded row/value fixes wrap the view (issue 3)
            from ._views import apply_view_steps

            body = apply_view_steps(self.con, name, source, body, self.spec.cleaning)
        self.con.execute(f"CREATE OR REPLACE VIEW {quote(name)} AS {body}")

    # -- collected events (issue 6) -------------------------------------------------------------

    def _with_collected(self, name: str, source: SourceSpec, body: str) -> str:
        """``body`` plus the source's collected events from the store's ``events`` table, each
        payload field cast to the type the column has in ``body``."""
        types = {row[0]: str(row[1]) for row in self.con.execute(f"DESCRIBE {body}").fetchall()}
        table = _read_collected(self.spec, self.project_dir, name)
        ids = table.column("id").to_pylist()
        self._collected[name] = (len(ids), max(ids) if ids else 0)
        collected = f"_collected_{name}"
        self.con.register(collected, table)
        select = []
        for column, dtype in types.items():
            if column == source.entity:
                expr = f"CAST(entity AS {dtype})"
            elif column == source.time:
                expr = f"CAST(time AS {dtype})"
            else:
                path = sql_literal('$."' + column.replace('"', '\\"') + '"')
                expr = f"TRY_CAST(json_extract_string(payload, {path}) AS {dtype})"
            select.append(f"{expr} AS {quote(column)}")
        return (
            f"SELECT * FROM ({body}) UNION ALL SELECT {', '.join(select)} FROM {quote(collected)}"
        )

    def reload(self, name: str | None = None) -> None:
        """Register source ``name`` (default: every source opened so far) again, so that its
        view holds the events collected since it was opened."""
        for opened in [name] if name is not None else sorted(self._opened):
            self._opened.discard(opened)
            self.view(opened)

    # -- end of the collected events block --

    def files(self, name: str) -> list[str]:
        source = self.spec.sources[name]
        assert source.path is not None
        pattern = source.path if os.path.isabs(source.path) else str(self.project_dir / source.path)
        files = sorted(f for f in glob.glob(pattern) if os.path.isfile(f))
        if not files:
            raise SourceError(
                f"source {name!r}: no file matches {source.path} (looked in {self.project_dir})",
                hint="check the `path:` of the source; relative paths start at the project folder",
            )
        return files

    def _fetch_table(self, name: str, source: SourceSpec) -> pa.Table:
        assert source.url is not None and source.table is not None
        try:
            conn = _adbc_connect(source.url, self.project_dir)
        except SourceError as exc:
            raise SourceError(f"source {name!r}: {exc.message}", hint=exc.hint) from None
        except Exception as exc:  # the drivers raise their own error types
            raise SourceError(
                f"source {name!r}: cannot connect to {_hide_password(source.url)}: {_short(exc)}",
                hint="check the URL and that the database server is running",
            ) from None
        try:
            cur = conn.cursor()
            try:
                if source.kind == "sqlite":
                    _sqlite_whole_table_batches(cur, source.table)
                cur.execute(f"SELECT * FROM {_qualified(source.table)}")
                return cur.fetch_arrow_table()
            except Exception as exc:
                raise SourceError(
                    f"source {name!r}: table {source.table!r} cannot be read from "
                    f"{_hide_password(source.url)}: {_short(exc)}",
                    hint="check the `table:` name (schema.table for PostgreSQL schemas)",
                ) from None
            finally:
                cur.close()
        finally:
            conn.close()

    def _columns_of(self, view: str) -> dict[str, str]:
        rows = self.con.execute(f"DESCRIBE SELECT * FROM {quote(view)}").fetchall()
        return {row[0]: str(row[1]) for row in rows}

    def columns(self, name: str) -> dict[str, str]:
        self.view(name)
        return self._columns_of(name)

    # -- checks and descriptions ---------------------------------------------------------------

    def check(self, name: str) -> dict[str, str]:
        """Open the source and check its declared entity/time columns; return its columns."""
        source = self.spec.sources[name]
        columns = self.columns(name)
        for role in ("entity", "time"):
            column = getattr(source, role)
            if column is not None and column not in columns:
                raise SourceError(
                    f"source {name!r}: {role} column {column!r} is not in the data",
                    hint=f"columns are: {', '.join(columns)}; fix `sources.{name}.{role}`",
                )
        return columns

    def describe(self, name: str) -> SourceInfo:
        source = self.spec.sources[name]
        location = (
            source.path if source.kind == "file" else f"{_hide_password(source.url)}#{source.table}"
        )
        if source.kind == "collected":
            location = "collected events (POST /v1/events)"
        try:
            columns = self.check(name)
            rows = self.con.execute(f"SELECT count(*) FROM {quote(name)}").fetchall()[0][0]
        except SourceError as exc:
            return SourceInfo(
                name, source.kind, location, None, {}, source.entity, source.time, str(exc)
            )
        except duckdb.Error as exc:  # e.g. a malformed line past what the reader sniffed
            error = SourceError(
                f"source {name!r} ({location}) cannot be read: {_short(exc)}",
                hint="check the file is complete and the format is right",
            )
            return SourceInfo(
                name, source.kind, location, None, {}, source.entity, source.time, str(error)
            )
        return SourceInfo(
            name, source.kind, location, int(rows), columns, source.entity, source.time
        )

    def fingerprint(self, names: list[str]) -> str:
        """A fingerprint of the data behind ``names``: file sizes and times, or table counts."""
        digest = hashlib.sha256()
        for name in sorted(set(names)):
            source = self.spec.sources[name]
            digest.update(name.encode())
            for step in self.spec.cleaning:  # recorded view steps change the view's rows
                if step.source == name:
                    digest.update(step.model_dump_json().encode())
            if source.collect:  # the collected events change the data too
                self.view(name)
                digest.update(repr(self._collected.get(name)).encode())
            if source.kind == "file":
                for path in self.files(name):
                    stat = os.stat(path)
                    relative = os.path.relpath(path, self.project_dir)
                    digest.update(f"{relative}|{stat.st_size}|{stat.st_mtime_ns}".encode())
            else:
                view = self.view(name)
                expr = "count(*)"
                if source.time:
                    expr += f", max({quote(source.time)})"
                digest.update(
                    repr(self.con.execute(f"SELECT {expr} FROM {view}").fetchall()[0]).encode()
                )
        return digest.hexdigest()[:16]


# -- collected events (issue 6) -----------------------------------------------------------------


def _empty_select(source: SourceSpec) -> str:
    """A typed empty relation with the declared columns of a collect-only source."""
    from ..spec._models import COLUMN_TYPES

    columns = source.columns or {}
    cols = ", ".join(
        f"CAST(NULL AS {COLUMN_TYPES[t.lower()]}) AS {quote(c)}" for c, t in columns.items()
    )
    return f"SELECT {cols} WHERE false"


def _read_collected(spec: Spec, project_dir: Path, name: str) -> pa.Table:
    """The collected events of source ``name`` from the store (SQLite or PostgreSQL, through
    SQLAlchemy) as Arrow: id, entity (text), time (naive UTC), payload (JSON text). A store
    that does not exist yet, or has no ``events`` table yet, has none."""
    import sqlalchemy as sa

    from ..store import Store
    from ..store.tables import events

    schema = pa.schema(
        [
            ("id", pa.int64()),
            ("entity", pa.string()),
            ("time", pa.timestamp("us")),
            ("payload", pa.string()),
        ]
    )
    store = Store(spec.store, project_dir)
    try:
        if store.dialect == "sqlite":
            database = make_url(store.url).database
            if not database or not os.path.isfile(database):
                return schema.empty_table()
        with store.engine.connect() as conn:
            if not sa.inspect(conn).has_table("events"):
                return schema.empty_table()
            rows = conn.execute(
                sa.select(
                    events.c.id, events.c.entity, events.c.time, sa.cast(events.c.payload, sa.Text)
                )
                .where(events.c.source == name)
                .order_by(events.c.id)
            ).fetchall()
    except sa.exc.SQLAlchemyError as exc:
        raise SourceError(
            f"source {name!r} collects events into the store {store.display_url}, which cannot "
            f"be read: {_short(getattr(exc, 'orig', None) or exc)}",
            hint="check that the store (`store:` in cycleml.yaml) is up",
        ) from None
    finally:
        store.dispose()
    return pa.table(
        [pa.array([r[i] for r in rows], schema.field(i).type) for i in range(4)], schema=schema
    )


def _adbc_connect(url: str, project_dir: Path):
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        import adbc_driver_sqlite.dbapi as sqlite_dbapi

        database = parsed.database or ""
        if not os.path.isabs(database):
            database = str(project_dir / database)
        if not os.path.isfile(database):
            raise SourceError(
                f"SQLite database {database} does not exist",
                hint="check the source `url:` (sqlite:///relative/path.db or sqlite:////abs/path.db)",
            )
        # A SQLite URI: characters such as `#`, `?` and `%` in the path must be escaped.
        return sqlite_dbapi.connect(f"file:{url_quote(database)}?mode=ro")
    if backend == "postgresql":
        import adbc_driver_postgresql.dbapi as pg_dbapi

        libpq_url = parsed.set(drivername="postgresql")
        if "connect_timeout" not in libpq_url.query:
            # libpq waits for the OS TCP timeout (minutes) on a host that does not answer.
            libpq_url = libpq_url.update_query_dict({"connect_timeout": "10"})
        return pg_dbapi.connect(libpq_url.render_as_string(hide_password=False))
    raise SourceError(
        f"database URL {_hide_password(url)} is not supported",
        hint="use sqlite:///path.db or postgresql://user@host/db",
    )


def _sqlite_whole_table_batches(cur, table: str) -> None:
    """ADBC's SQLite driver infers each column's type from its first batch and fails on a later
    value of another type (SQLite columns mix integers, reals and text freely). One batch that
    holds the whole table lets it infer from every row."""
    from adbc_driver_sqlite import StatementOptions

    cur.execute(f"SELECT count(*) FROM {_qualified(table)}")
    rows = int(cur.fetchone()[0])
    cur.adbc_statement.set_options(
        **{StatementOptions.BATCH_ROWS.value: str(max(1024, min(rows + 1, 2**30)))}
    )


def _is_pg_numeric(field: pa.Field) -> bool:
    """ADBC hands PostgreSQL NUMERIC over as an opaque text extension type."""
    meta = field.metadata or {}
    return (
        meta.get(b"POSTGRESQL:type") == b"numeric"
        or meta.get(b"ADBC:postgresql:typname") == b"numeric"
    )


def _qualified(table: str) -> str:
    return ".".join(quote(part) for part in table.split("."))


def _hide_password(url: str | None) -> str:
    if not url:
        return ""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<database url>"


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
