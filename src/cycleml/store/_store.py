"""The metadata store: a SQLAlchemy engine on SQLite (default) or PostgreSQL, migrated on open."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError

from ..errors import StoreError

_MIGRATIONS = os.path.join(os.path.dirname(__file__), "migrations")


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
            Path(database).parent.mkdir(parents=True, exist_ok=True)
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
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=10000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

    return engine


class Store:
    """Where cycleml keeps every dataset version, model version, prediction and run it makes."""

    def __init__(self, url: str, base_dir: str | Path = ".") -> None:
        self.url = resolve_url(url, Path(base_dir))
        self.engine = make_engine(self.url)
        self._migrated = False

    @property
    def display_url(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def open(self) -> Store:
        """Check the store is reachable and bring its tables to the current schema."""
        if self._migrated:
            return self
        try:
            with self.engine.begin() as conn:
                if self._current_revision(conn) != self._head_revision():
                    cfg = Config()
                    cfg.set_main_option("script_location", _MIGRATIONS)
                    cfg.attributes["connection"] = conn
                    command.upgrade(cfg, "head")
        except OperationalError as exc:
            raise StoreError(
                f"cannot reach the store at {self.display_url}: {_first_line(exc)}",
                hint="check the `store:` URL in cycleml.yaml and that the database server is "
                "running and accepts connections",
            ) from None
        except SQLAlchemyError as exc:
            raise StoreError(
                f"the store at {self.display_url} could not be prepared: {_first_line(exc)}",
                hint="check that the user may create tables in that database",
            ) from None
        self._migrated = True
        return self

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
