"""A first profile of a source: row count and per-column statistics, computed in DuckDB."""

from __future__ import annotations

import math
from typing import Any

import duckdb

from ..errors import SourceError
from ._sources import SourceSet, quote

_NUMERIC = {
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
}


# Up to this many rows, distinct counts are exact; above, DuckDB's HyperLogLog estimate (exact
# counts of high-cardinality columns would double the time of a profile of millions of rows).
EXACT_DISTINCT_ROWS = 1_000_000


def profile_source(sources: SourceSet, name: str, *, top: int = 5) -> dict[str, Any]:
    """Statistics of every column of source ``name``; see :func:`_profile`. A source that cannot
    be read raises :class:`SourceError`."""
    view = sources.view(name)
    try:
        return _profile(sources, name, view, top)
    except duckdb.Error as exc:  # e.g. a malformed row past what the reader sniffed
        raise SourceError(
            f"source {name!r} cannot be profiled: {str(exc).strip().splitlines()[0]}",
            hint="check the file is complete and the format is right",
        ) from None


def _profile(sources: SourceSet, name: str, view: str, top: int) -> dict[str, Any]:
    """Statistics of every column of source ``name`` over all its rows: exact row and null
    counts, distinct counts (exact up to ``EXACT_DISTINCT_ROWS`` rows), min/max/mean/std/median for
    numbers (DuckDB ``SUMMARIZE``; its median is approximate), and the most frequent non-null
    values of categories, booleans and numbers with few distinct values."""
    spec = sources.spec.sources[name]
    summary = sources.con.sql(f"SUMMARIZE SELECT * FROM {view}").df()
    names = [str(c) for c in summary["column_name"]]
    rows = int(sources.con.execute(f"SELECT count(*) FROM {view}").fetchall()[0][0])
    exact = rows <= EXACT_DISTINCT_ROWS
    parts = [
        f"count({quote(c)})" + (f", count(DISTINCT {quote(c)})" if exact else "") for c in names
    ]
    counts = (
        sources.con.execute(f"SELECT {', '.join(parts)} FROM {view}").fetchall()[0] if parts else ()
    )
    step = 2 if exact else 1
    columns: list[dict[str, Any]] = []
    for i, record in enumerate(summary.to_dict("records")):
        column, dtype = record["column_name"], str(record["column_type"])
        kind = _kind(dtype)
        non_null = int(counts[step * i])
        approx = min(int(record["approx_unique"] or 0), non_null)
        distinct = int(counts[step * i + 1]) if exact else approx
        entry: dict[str, Any] = {
            "name": column,
            "type": dtype,
            "kind": kind,
            "count": rows,
            "nulls": rows - non_null,
            "null_rate": round((rows - non_null) / rows, 6) if rows else 0.0,
            "distinct": distinct,
            "distinct_exact": exact,
            "distinct_approx": approx,
        }
        if kind == "number":
            entry.update(
                min=_num(record["min"]),
                max=_num(record["max"]),
                mean=_num(record["avg"]),
                std=_num(record["std"]),
                median=_num(record["q50"]),
            )
        elif kind == "datetime":
            entry.update(min=str(record["min"]), max=str(record["max"]))
        if kind in ("category", "boolean") or (kind == "number" and distinct <= 20):
            # Nulls are counted by null_rate, not listed as a value.
            top_rows = sources.con.execute(
                f"SELECT {quote(column)} AS v, count(*) AS n FROM {view} "
                f"WHERE {quote(column)} IS NOT NULL GROUP BY 1 ORDER BY n DESC, v LIMIT {int(top)}"
            ).fetchall()
            entry["top"] = [{"value": _plain(v), "count": int(n)} for v, n in top_rows]
        columns.append(entry)
    return {
        "source": name,
        "rows": rows,
        "columns": columns,
        "entity": spec.entity,
        "time": spec.time,
        "empty_columns": [c["name"] for c in columns if rows and c["nulls"] == rows],
    }


def _kind(dtype: str) -> str:
    upper = dtype.upper()
    if upper.split("(")[0] in _NUMERIC:
        return "number"
    if upper.startswith(("TIMESTAMP", "DATE")):
        return "datetime"
    if upper == "BOOLEAN":
        return "boolean"
    if upper == "VARCHAR":
        return "category"
    return "other"


def _num(value: Any) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else round(number, 6)


def _plain(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)
