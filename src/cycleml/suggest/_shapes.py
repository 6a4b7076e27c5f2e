"""The shape of each source, measured in DuckDB: rows, entities, time span, column kinds."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import duckdb

from ..data import SourceSet, quote
from ..errors import CycleMLError

_NUMERIC = (
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "UHUGEINT",
    "FLOAT",
    "DOUBLE",
    "DECIMAL",
    "REAL",
)
# Above this many rows, distinct counts use DuckDB's HyperLogLog estimate.
EXACT_DISTINCT_ROWS = 2_000_000
COLUMNS_PER_QUERY = 500
_ID_NAME = re.compile(r"(^id$|_id$|[a-z]Id$|_key$|uuid$|_code$|^key$)")


def column_kind(dtype: str) -> str:
    """``number``, ``boolean``, ``text``, ``time`` or ``other`` for a DuckDB type."""
    upper = dtype.upper()
    if upper.split("(")[0] in _NUMERIC:
        return "number"
    if upper == "BOOLEAN":
        return "boolean"
    if upper in ("VARCHAR", "TEXT") or upper.startswith("ENUM"):
        return "text"
    if upper.startswith(("TIMESTAMP", "DATE")):
        return "time"
    return "other"


def id_like(column: str) -> bool:
    """A column named like an identifier (``id``, ``user_id``, ``sku_key``, ``orderId``)."""
    return bool(_ID_NAME.search(column)) or column.lower() in ("uuid", "sku", "key")


@dataclass
class SourceShape:
    """What the suggestions need to know about one source."""

    name: str
    rows: int = 0
    columns: dict[str, str] = field(default_factory=dict)
    distinct: dict[str, int] = field(default_factory=dict)
    nulls: dict[str, int] = field(default_factory=dict)
    entity: str | None = None
    time: str | None = None
    entities: int = 0
    first: datetime | None = None
    last: datetime | None = None
    timed_rows: int = 0
    error: str | None = None

    @property
    def span_days(self) -> float:
        if self.first is None or self.last is None:
            return 0.0
        return (self.last - self.first).total_seconds() / 86400

    @property
    def is_event_log(self) -> bool:
        """Timestamped rows, several per entity."""
        return bool(self.entity and self.time and self.timed_rows and self.entities) and (
            self.timed_rows > self.entities
        )

    @property
    def is_entity_table(self) -> bool:
        """One row per entity."""
        return bool(self.entity) and self.rows > 0 and self.distinct.get(self.entity) == self.rows

    def kind(self, column: str) -> str:
        return column_kind(self.columns[column])

    def entity_candidates(self) -> list[str]:
        """Undeclared columns that look like an entity key: named like an id, not all distinct
        values null, more than one value."""
        return [
            c
            for c in self.columns
            if c != self.entity
            and id_like(c)
            and self.kind(c) in ("text", "number")
            and self.distinct.get(c, 0) > 1
        ]

    def time_candidates(self) -> list[str]:
        return [c for c in self.columns if c != self.time and self.kind(c) == "time"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "entity": self.entity,
            "time": self.time,
            "entities": self.entities,
            "first": self.first.isoformat() if self.first else None,
            "last": self.last.isoformat() if self.last else None,
            "span_days": round(self.span_days, 2),
            "event_log": self.is_event_log,
            "entity_table": self.is_entity_table,
            "error": self.error,
        }


def measure(sources: SourceSet, name: str) -> SourceShape:
    """The shape of source ``name``; a source that cannot be read gets ``error`` set."""
    spec = sources.spec.sources[name]
    shape = SourceShape(name, entity=spec.entity, time=spec.time)
    try:
        view = sources.view(name)
        shape.columns = sources.check(name)
        _measure(sources.con, view, shape)
    except CycleMLError as exc:
        shape.error = exc.message
    except duckdb.Error as exc:
        lines = str(exc).strip().splitlines()
        shape.error = f"source {name!r} cannot be read: {lines[0] if lines else exc}"
    return shape


def _measure(con: duckdb.DuckDBPyConnection, view: str, shape: SourceShape) -> None:
    names = list(shape.columns)
    shape.rows = int(con.sql(f"SELECT count(*) FROM {view}").fetchall()[0][0])
    if not names or not shape.rows:
        return
    exact = shape.rows <= EXACT_DISTINCT_ROWS
    distinct = "count(DISTINCT {c})" if exact else "approx_count_distinct({c})"
    # In slices, so that a very wide table does not make one enormous query.
    for at in range(0, len(names), COLUMNS_PER_QUERY):
        chunk = names[at : at + COLUMNS_PER_QUERY]
        parts = [f"{distinct.format(c=quote(c))}, count({quote(c)})" for c in chunk]
        values = con.sql(f"SELECT {', '.join(parts)} FROM {view}").fetchall()[0]
        for i, column in enumerate(chunk):
            shape.distinct[column] = int(values[2 * i])
            shape.nulls[column] = shape.rows - int(values[2 * i + 1])
    if shape.time:
        ts = quote(shape.time)
        where = f"{ts} IS NOT NULL"
        ent = "0"
        if shape.entity:
            where += f" AND {quote(shape.entity)} IS NOT NULL"
            ent = f"count(DISTINCT {quote(shape.entity)})"
        row = con.sql(
            f"SELECT count(*), {ent}, CAST(min({ts}) AS TIMESTAMP), CAST(max({ts}) AS TIMESTAMP) "
            f"FROM {view} WHERE {where}"
        ).fetchall()[0]
        shape.timed_rows, shape.entities = int(row[0]), int(row[1])
        shape.first, shape.last = row[2], row[3]
    elif shape.entity:
        shape.entities = shape.distinct.get(shape.entity, 0)


def ceil_day(value: datetime) -> datetime:
    """Midnight at or after ``value``."""
    day = datetime(value.year, value.month, value.day)
    return day if day == value else day + timedelta(days=1)


def weekly_cutoffs(start: datetime, last: datetime, horizon_days: int) -> list[datetime]:
    """Cutoffs every 7 days from ``start`` whose ``horizon_days`` label window ends by ``last``
    (the rule the dataset builder applies to a schedule without `end`)."""
    stop = last - timedelta(days=horizon_days)
    out, current = [], start
    while current <= stop:
        out.append(current)
        current += timedelta(days=7)
    return out


def as_date(value: datetime) -> date:
    return value.date()
