"""A first profile of a source: row count and per-column statistics, computed in DuckDB."""

from __future__ import annotations

import math
from typing import Any

from ._sources import SourceSet, quote

_NUMERIC = (
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "FLOAT",
    "DOUBLE",
    "DECIMAL",
    "UBIGINT",
    "UINTEGER",
)


def profile_source(sources: SourceSet, name: str, *, top: int = 5) -> dict[str, Any]:
    """Statistics of every column of source ``name`` over all its rows (DuckDB ``SUMMARIZE``)."""
    view = sources.view(name)
    spec = sources.spec.sources[name]
    rows = int(sources.con.execute(f"SELECT count(*) FROM {view}").fetchall()[0][0])
    summary = sources.con.sql(f"SUMMARIZE SELECT * FROM {view}").df()
    columns: list[dict[str, Any]] = []
    for record in summary.to_dict("records"):
        column, dtype = record["column_name"], str(record["column_type"])
        kind = _kind(dtype)
        entry: dict[str, Any] = {
            "name": column,
            "type": dtype,
            "kind": kind,
            "count": int(record["count"]),
            "null_rate": round(float(record["null_percentage"]) / 100.0, 6),
            "distinct_approx": int(record["approx_unique"]),
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
        if kind in ("category", "boolean") or (kind == "number" and entry["distinct_approx"] <= 20):
            top_rows = sources.con.execute(
                f"SELECT {quote(column)} AS v, count(*) AS n FROM {view} "
                f"GROUP BY 1 ORDER BY n DESC, v LIMIT {int(top)}"
            ).fetchall()
            entry["top"] = [{"value": _plain(v), "count": int(n)} for v, n in top_rows]
        columns.append(entry)
    return {
        "source": name,
        "rows": rows,
        "columns": columns,
        "entity": spec.entity,
        "time": spec.time,
        "empty_columns": [c["name"] for c in columns if c["null_rate"] >= 0.999999],
    }


def _kind(dtype: str) -> str:
    upper = dtype.upper()
    if upper.startswith(_NUMERIC):
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
