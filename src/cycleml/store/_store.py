"""The metadata store: a SQLAlchemy engine on SQLite (default) or PostgreSQL, migrated on open."""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DatabaseError,
    NoSuchModuleError,
    OperationalError,
    SQLAlchemyError,
)

from ..errors import StoreError

_MIGRATIONS = os.path.join(os.path.dirname(__file__), "migrations")

# Migrations run one at a time: Alembic keeps its context in module globals (threads of one
# process), and across processes PostgreSQL takes a transaction-scoped advisory lock and SQLite
# its write lock (several server workers opening a fresh store at once would otherwise race to
# create the same tables).
_MIGRATION_LOCK = threading.Lock()
_PG_MIGRATION_LOCK_KEY = 0x6379636C656D6C  # "cycleml"


def utcnow() -> datetime:
    """Naive UTC now, the time convention of every store row."""
    return datetime.now(UTC).replace(tzinfo=None)


def resolve_url(url: str, base_dir: Path) -> str:
    """Make a relative SQLite path relative to the project folder rather than the cwd."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(
            f"store URL {url!r} is not a database URL",
            hint="use sqlite:///.cycleml/store.db or postgresql+psycopg://user@host/db",
        ) from None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not os.path.isabs(database):
            database = str((base_dir / database).resolve())
            parsed = parsed.set(database=database)
        return parsed.render_as_string(hide_password=False)
    if parsed.get_backend_name() == "postgresql":
        if parsed.get_driver_name() in ("", "psycopg2", None) or parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return parsed.render_as_string(hide_password=False)
    raise StoreError(
        f"store URL {parsed.render_as_string()} uses {parsed.get_backend_name()!r}",
        hint="cycleml's store runs on sqlite:/// or postgresql+psycopg:// URLs",
    )


def make_engine(url: str) -> Engine:
    kwargs: dict = {"future": True}
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        kwargs["connect_args"] = {"connect_timeout": 5}
        kwargs["pool_pre_ping"] = True
    engine = sa.create_engine(url, **kwargs)
    if parsed.get_backend_name() == "sqlite":

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            # busy_timeout first: switching to WAL needs a lock, and without the timeout a
            # connection opened while another holds it fails at once with "database is locked".
            cur.execute("PRAGMA busy_timeout=10000")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

    return engine


class Store:
    """Where cycleml keeps every dataset version, model version, prediction and run it makes."""

    def __init__(self, url: str, base_dir: str | Path = ".") -> None:
        self.url = resolve_url(url, Path(base_dir))
        try:
            self.engine = make_engine(self.url)
        except (ImportError, NoSuchModuleError, ArgumentError) as exc:
            raise StoreError(
                f"store URL {self.display_url} cannot be used: {_first_line(exc)}",
                hint="cycleml's store runs on sqlite:/// or postgresql+psycopg:// URLs",
            ) from None
        self._migrated = False

    @property
    def display_url(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def _sqlite_folder(self) -> Path | None:
        database = make_url(self.url).database
        if self.dialect != "sqlite" or not database or database == ":memory:":
            return None
        return Path(database).parent

    def _make_folder(self) -> None:
        folder = self._sqlite_folder()
        if folder is None:
            return
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"store {self.display_url}: cannot create the folder {folder}: "
                f"{exc.strerror or exc}",
                hint="point `store:` at a path whose folder can be created and written",
            ) from None

    def ping(self) -> None:
        """Check the store can be reached, without creating or changing anything."""
        if self.dialect == "sqlite":
            folder = self._sqlite_folder()
            existing = folder
            while existing is not None and not existing.exists():
                existing = existing.parent if existing.parent != existing else None
            if existing is not None and (not existing.is_dir() or not os.access(existing, os.W_OK)):
                raise StoreError(
                    f"the store folder {folder} cannot be created or written ({existing})",
                    hint="fix its permissions, or point `store:` elsewhere",
                )
            return
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except SQLAlchemyError as exc:
            raise StoreError(
                f"cannot reach the store at {self.display_url}: {_first_line(exc)}",
                hint="check the `store:` URL in cycleml.yaml and that the database server is "
                "running and accepts connections",
            ) from None

    def open(self) -> Store:
        """Check the store is reachable and bring its tables to the current schema."""
        if self._migrated:
            return self
        self._make_folder()
        try:
            self._open_with_retry()
        except OperationalError as exc:
            raise StoreError(
                f"cannot reach the store at {self.display_url}: {_first_line(exc)}",
                hint="check the `store:` URL in cycleml.yaml and that the database server is "
                "running and accepts connections",
            ) from None
        except CommandError as exc:
            raise StoreError(
                f"the store at {self.display_url} has a schema this cycleml does not know "
                f"({_first_line(exc)})",
                hint="it was made by a newer cycleml: upgrade cycleml, or point `store:` at "
                "another database",
            ) from None
        except DatabaseError as exc:
            raise StoreError(
                f"the store at {self.display_url} could not be prepared: {_first_line(exc)}",
                hint="point `store:` at a cycleml store or an empty database, and check that "
                "the user may create tables in it",
            ) from None
        except SQLAlchemyError as exc:
            raise StoreError(
                f"the store at {self.display_url} could not be prepared: {_first_line(exc)}",
                hint="check that the user may create tables in that database",
            ) from None
        self._migrated = True
        return self

    def _open_with_retry(self) -> None:
        """Check the revision and migrate if needed. SQLite can answer "database is locked" at
        once (not after busy_timeout) when several connections open a fresh file together, for
        example while one switches it to WAL: retry that a bounded number of times."""
        head = self._head_revision()
        for attempt in range(40):
            try:
                with self.engine.connect() as conn:
                    current = self._current_revision(conn)
                if current != head:
                    self._migrate(head)
                return
            except OperationalError as exc:
                locked = self.dialect == "sqlite" and "locked" in str(exc).lower()
                if not locked or attempt == 39:
                    raise
                time.sleep(min(0.02 * (attempt + 1), 0.5))

    def _migrate(self, head: str | None) -> None:
        with _MIGRATION_LOCK, self.engine.begin() as conn:
            if self.dialect == "postgresql":
                conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK_KEY}
                )
            elif self.dialect == "sqlite":
                # Take the write lock before reading the revision (the driver would begin
                # lazily, at the first write), which also makes the DDL one transaction.
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            if self._current_revision(conn) != head:  # another process may have just done it
                cfg = Config()
                cfg.set_main_option("script_location", _MIGRATIONS)
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")

    def begin(self):
        """A transaction: everything inside is written together or not at all."""
        self.open()
        return self.engine.begin()

    def connect(self):
        self.open()
        return self.engine.connect()

    def dispose(self) -> None:
        self.engine.dispose()

    @staticmethod
    def _current_revision(conn) -> str | None:
        return MigrationContext.configure(conn).get_current_revision()

    @staticmethod
    def _head_revision() -> str | None:
        cfg = Config()
        cfg.set_main_option("script_location", _MIGRATIONS)
        return ScriptDirectory.from_config(cfg).get_current_head()


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
