"""The online store: the latest feature vector per entity in the store's ``online_features``
table, so that an entity prediction is one indexed read.

:func:`materialize` computes the vectors with the shared feature code
(:meth:`cycleml.features.FeatureSet.compute` for every eligible entity) and replaces the
problem's rows in one transaction. Each problem also has one row under the reserved entity
:data:`SCHEMA_KEY` holding the entity column's name and every column's dtype, so that
:func:`lookup` rebuilds exactly the frame ``compute`` gave (same dtypes, same scores)."""

from __future__ import annotations

import contextlib
import functools
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pandas as pd
import sqlalchemy as sa

from ..errors import RequestError, StoreError
from ..features._featureset import AS_OF_COLUMN
from ..spec import ForecastLabel
from ..store import Store, utcnow
from ..store.tables import online_features

if TYPE_CHECKING:
    from ..project import Project

SCHEMA_KEY = "__cycleml_schema__"
"""The reserved entity key of each problem's schema row (column names and dtypes)."""
DEFAULT_CHUNK_ROWS = 5000

Progress = Callable[[str, int, int], None]


def materialize(
    project: Project,
    problem: str,
    as_of: datetime | None = None,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: Progress | None = None,
) -> dict:
    """Write the feature vector of every entity eligible at ``as_of`` (default: now, naive
    UTC) into ``online_features``, replacing the problem's rows in one transaction (a rerun
    replaces them again: idempotent). ``progress(phase, done, total)`` is told how far it is."""
    project._problem(problem)
    spec = project.spec.problems[problem]
    if isinstance(spec.label, ForecastLabel):
        raise RequestError(
            f"problem {problem!r} is a forecast (one row per day of the horizon): the online "
            "store keeps one feature vector per entity",
            hint="score forecasts with `cycleml predict --batch`",
        )
    when = _naive_utc(as_of) if as_of is not None else utcnow()
    started = time.perf_counter()
    if progress:
        progress("computing features", 0, 0)
    with project.features(problem) as fs:
        frame = fs.compute(None, when)
        entity = fs.entity
    frame = frame.reset_index(drop=True)
    dtypes = {c: str(t) for c, t in frame.dtypes.items()}
    features = [c for c in frame.columns if c not in (entity, AS_OF_COLUMN)]
    now = utcnow()
    total = len(frame)
    schema_row = {
        "problem": problem,
        "entity": SCHEMA_KEY,
        "features": {"entity": entity, "columns": list(frame.columns), "dtypes": dtypes},
        "as_of": when,
        "materialized_at": now,
    }
    with project.store.begin() as conn:
        conn.execute(online_features.delete().where(online_features.c.problem == problem))
        conn.execute(online_features.insert(), [schema_row])
        done = 0
        for start in range(0, total, chunk_rows):
            chunk = frame.iloc[start : start + chunk_rows]
            records = _records(chunk[features])
            rows = [
                {
                    "problem": problem,
                    "entity": str(key),
                    "features": record,
                    "as_of": when,
                    "materialized_at": now,
                }
                for key, record in zip(chunk[entity].tolist(), records, strict=True)
            ]
            if rows:
                conn.execute(online_features.insert(), rows)
            done += len(rows)
            if progress:
                progress("writing the online store", done, total)
    result: dict = {
        "problem": problem,
        "entities": total,
        "features": len(features),
        "as_of": when.isoformat(),
        "materialized_at": now.isoformat(),
        "seconds": round(time.perf_counter() - started, 3),
    }
    if not total:
        result["note"] = (
            f"no entity is eligible for {problem!r} as of {when.isoformat()} (the data may end "
            "earlier): pass an as_of inside the data"
        )
    return result


def lookup(store: Store, problem: str, entities: list[str]) -> tuple[pd.DataFrame | None, dict]:
    """The materialized feature rows of ``entities`` (one indexed read). Returns a frame with
    the problem's entity column, ``as_of`` and the feature columns (the dtypes
    ``FeatureSet.compute`` gave) for the entities found, in the order asked, and the freshness
    ``{"as_of": datetime, "materialized_at": datetime}``. A problem never materialized
    answers ``(None, {})``."""
    keys = list(dict.fromkeys(str(e) for e in entities))
    c = online_features.c
    with store.connect() as conn:
        rows = conn.execute(
            sa.select(c.entity, c.features, c.as_of, c.materialized_at).where(
                c.problem == problem, c.entity.in_([SCHEMA_KEY, *keys])
            )
        ).fetchall()
    schema = next((r for r in rows if r.entity == SCHEMA_KEY), None)
    if schema is None:
        return None, {}
    info = {"as_of": schema.as_of, "materialized_at": schema.materialized_at}
    meta = schema.features
    entity, columns, dtypes = meta["entity"], meta["columns"], meta["dtypes"]
    found = {r.entity: r.features for r in rows if r.entity != SCHEMA_KEY}
    order = [k for k in keys if k in found]
    records = [found[k] for k in order]
    data = {}
    for name, dtype in _dtypes(tuple((n, dtypes[n]) for n in columns)):
        if name == entity:
            values: list = order
        elif name == AS_OF_COLUMN:
            values = [schema.as_of] * len(order)
        else:
            values = [r.get(name) for r in records]
        data[name] = _column(values, dtype)
    return pd.DataFrame(data, columns=columns, copy=False), info


# -- the server's reader ---------------------------------------------------------------------------


@dataclass(frozen=True)
class OnlineSchema:
    """A problem's schema row, decoded once: the entity column, every column's dtype name and
    the freshness (``info``: ``as_of`` and ``materialized_at`` as ISO text)."""

    entity: str
    columns: tuple[str, ...]
    dtypes: dict
    info: dict

    def plain(self, names: list[str]) -> bool:
        """True when every one of ``names`` was stored as a plain number, bool or text column:
        its JSON values then score exactly like the frame :func:`lookup` rebuilds (times and
        the other typed columns take that frame path)."""
        return _plain_dtypes(tuple(self.dtypes.get(n, "") for n in names))


class OnlineReader:
    """Feature vectors from ``online_features`` for the server: one indexed read per request
    (``WHERE problem = ? AND entity IN (...)``, the schema row included) on DBAPI connections
    kept open between requests (each used by one thread at a time, at most ``max_idle`` kept),
    the JSON decoded with orjson. A kept connection that fails is dropped and the read retried
    on the next one (a fresh one at the end); a fresh connection that fails answers
    :class:`StoreError` (503). :meth:`close` closes them all."""

    def __init__(self, store: Store, *, max_idle: int = 40) -> None:  # anyio's thread limit
        self.store = store
        self.max_idle = max_idle
        self._idle: list = []
        self._lock = threading.Lock()
        self._schemas: dict[tuple, OnlineSchema] = {}
        self._sql: dict[int, str] = {}
        self._closed = False

    def read(self, problem: str, keys: list[str]) -> tuple[OnlineSchema, dict[str, dict]] | None:
        """``(schema, {entity: features})`` for the ``keys`` found (distinct keys), or None when
        ``problem`` was never materialized."""
        query = self._query(problem, keys)
        while True:
            conn, reused = self._take()
            try:
                cur = conn.cursor()
                try:
                    cur.execute(*query)
                    rows = cur.fetchall()
                finally:
                    cur.close()
                break
            except Exception as exc:  # noqa: BLE001 - any driver error: drop the connection
                self._drop(conn)
                if reused:  # a kept connection may have died idle (a restart): a fresh one
                    continue
                first = str(exc).splitlines()[0][:200] if str(exc) else ""
                raise StoreError(
                    f"the store could not answer the online-store read: {type(exc).__name__}: "
                    f"{first}",
                    hint="check that the store (the `store:` URL in cycleml.yaml) is up; "
                    "GET /readyz reports it",
                ) from None
        self._give(conn)
        schema = None
        found: dict[str, dict] = {}
        for entity, text, as_of, materialized_at in rows:
            if entity == SCHEMA_KEY:
                schema = self._schema(problem, text, as_of, materialized_at)
            else:
                found[entity] = orjson.loads(text)
        return None if schema is None else (schema, found)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            _close_quietly(conn)

    # -- internals ---------------------------------------------------------------------------

    def _query(self, problem: str, keys: list[str]) -> tuple[str, tuple]:
        table = online_features.name
        head = (
            f"SELECT entity, CAST(features AS TEXT), as_of, materialized_at FROM {table} "
            "WHERE problem = "
        )
        if self.store.dialect == "postgresql":  # one statement whatever the count: prepared
            sql = self._sql.get(-1)
            if sql is None:
                sql = self._sql[-1] = head + "%s AND entity = ANY(%s)"
            return sql, (problem, [SCHEMA_KEY, *keys])
        n = len(keys) + 1
        sql = self._sql.get(n)
        if sql is None:
            sql = self._sql[n] = head + "? AND entity IN (" + ", ".join("?" * n) + ")"
        return sql, (problem, SCHEMA_KEY, *keys)

    def _schema(self, problem: str, text, as_of, materialized_at) -> OnlineSchema:
        key = (problem, text, str(as_of), str(materialized_at))
        schema = self._schemas.get(key)
        if schema is None:
            meta = orjson.loads(text)
            info = {"as_of": _iso_text(as_of), "materialized_at": _iso_text(materialized_at)}
            schema = OnlineSchema(meta["entity"], tuple(meta["columns"]), meta["dtypes"], info)
            if len(self._schemas) > 64:
                self._schemas.clear()
            self._schemas[key] = schema
        return schema

    def _take(self) -> tuple[Any, bool]:
        """A connection and whether it was kept from an earlier read."""
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        return self._connect(), False

    def _give(self, conn) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < self.max_idle:
                self._idle.append(conn)
                return
        _close_quietly(conn)

    def _drop(self, conn) -> None:
        _close_quietly(conn)

    def _connect(self):
        self.store.open()  # the tables exist (migrations run once)
        engine = self.store.engine
        dialect = engine.dialect
        cargs, cparams = dialect.create_connect_args(engine.url)
        try:
            if dialect.name == "postgresql":
                cparams.setdefault("connect_timeout", 5)
                conn = dialect.connect(*cargs, **cparams)
                conn.autocommit = True  # a read is its own statement: no idle transaction
            else:
                cparams["check_same_thread"] = False  # handed between threads, one at a time
                conn = dialect.connect(*cargs, **cparams)
                conn.isolation_level = None  # autocommit: no read snapshot held between reads
                conn.execute("PRAGMA busy_timeout=10000")
        except Exception as exc:  # noqa: BLE001 - the driver's own errors
            raise StoreError(
                f"cannot connect to the store {self.store.display_url}: {type(exc).__name__}",
                hint="check that the store is up; GET /readyz reports it",
            ) from None
        return conn


def _close_quietly(conn) -> None:
    with contextlib.suppress(Exception):  # closing a broken connection
        conn.close()


def _iso_text(value) -> str:
    """A stored time as ISO text (SQLite gives text, PostgreSQL a datetime)."""
    if isinstance(value, datetime):
        return value.isoformat()
    return datetime.fromisoformat(str(value)).isoformat()


_PLAIN_KINDS = frozenset("fiubO")


@functools.lru_cache(maxsize=256)
def _plain_dtypes(names: tuple[str, ...]) -> bool:
    for text in names:
        try:
            dtype = pd.api.types.pandas_dtype(text)
        except TypeError:
            return False
        if isinstance(dtype, np.dtype):
            if dtype.kind not in _PLAIN_KINDS:
                return False
        elif not (
            isinstance(dtype, pd.StringDtype | pd.BooleanDtype | pd.CategoricalDtype)
            or pd.api.types.is_integer_dtype(dtype)
            or pd.api.types.is_float_dtype(dtype)
        ) or isinstance(dtype, pd.ArrowDtype):
            return False
    return True


# -- helpers ---------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _dtypes(pairs: tuple[tuple[str, str], ...]) -> list[tuple[str, Any]]:
    """The dtype objects of the stored dtype names (parsed once per schema)."""
    out = []
    for name, text in pairs:
        try:
            out.append((name, pd.api.types.pandas_dtype(text)))
        except TypeError:
            out.append((name, None))
    return out


def _column(values: list, dtype: Any):
    """An array of ``values`` in ``dtype`` (numpy for plain numbers and times: the fast path)."""
    try:
        if isinstance(dtype, np.dtype):
            return np.array(values, dtype=dtype)
        if dtype is not None:
            return pd.array(values, dtype=dtype)
    except (TypeError, ValueError):  # e.g. a null in a column stored as int64
        pass
    return pd.array(values)


def _records(frame: pd.DataFrame) -> list[dict]:
    """JSON-ready dicts: missing values as null, numpy scalars as Python, times as ISO text."""
    out = frame.copy()
    for name in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[name]):
            out[name] = out[name].map(lambda v: None if pd.isna(v) else v.isoformat())
    records = out.astype(object).to_dict("records")
    return [{k: _plain(v) for k, v in r.items()} for r in records]


def _plain(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _naive_utc(when: datetime) -> datetime:
    from datetime import UTC

    if when.tzinfo is None:
        return when
    return when.astimezone(UTC).replace(tzinfo=None)


__all__ = ["SCHEMA_KEY", "OnlineReader", "OnlineSchema", "lookup", "materialize"]
