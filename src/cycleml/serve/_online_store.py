"""The online store: the latest feature vector per entity in the store's ``online_features``
table, so that an entity prediction is one indexed read.

:func:`materialize` computes the vectors with the shared feature code
(:meth:`cycleml.features.FeatureSet.compute` for every eligible entity) and replaces the
problem's rows in one transaction. Each problem also has one row under the reserved entity
:data:`SCHEMA_KEY` holding the entity column's name and every column's dtype, so that
:func:`lookup` rebuilds exactly the frame ``compute`` gave (same dtypes, same scores)."""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from ..errors import RequestError
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


__all__ = ["SCHEMA_KEY", "lookup", "materialize"]
