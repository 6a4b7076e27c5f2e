"""Recorded cleaning steps applied in a source's DuckDB view.

The row and value fixes of ``cleaning:`` (see :data:`cycleml.spec._cleaning.VIEW_ACTIONS`) wrap
the source's SELECT one step at a time, in the order they are recorded, so every reader of the
view (labels, features, datasets, batch and online scoring, profiles) sees the same cleaned rows.
The source data itself is never modified.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import duckdb

from ..errors import SourceError
from ..spec import SourceSpec
from ..spec._cleaning import (
    VIEW_ACTIONS,
    CurrencyToNumber,
    DropColumns,
    DropDuplicates,
    DropIncompleteRows,
    FixInvalid,
    ForwardFill,
    IsolationForestOutliers,
    NormalizeCase,
    ParseDatetime,
    RemoveOutliers,
    RenameColumns,
)
from ._sources import quote, sql_literal
from ._types import EMAIL_RE, PHONE_RE, ZIP_RE

# What "valid" means for text columns (shared with the rules that suggest fixing them).
# One definition of a valid email, phone number and zip code: the profile's type detectors.
PATTERNS = {"email": EMAIL_RE, "phone": PHONE_RE, "zip": ZIP_RE}
_NUMERIC_PREFIXES = (
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "FLOAT",
    "DOUBLE",
    "DECIMAL",
)


def is_numeric(dtype: str) -> bool:
    return dtype.upper().startswith(_NUMERIC_PREFIXES)


def is_text(dtype: str) -> bool:
    return dtype.upper() in ("VARCHAR", "TEXT")


def valid_text_sql(column_sql: str, kind: str) -> str:
    """A SQL condition: the text value fits ``kind`` (email, phone, zip)."""
    return f"regexp_full_match(trim({column_sql}), {sql_literal(PATTERNS[kind])})"


def currency_sql(column_sql: str) -> str:
    """``$1,234.50`` -> 1234.5; ``(12.00)`` -> -12.0; NULL when no number is left."""
    text = f"trim(CAST({column_sql} AS VARCHAR))"
    sign = f"CASE WHEN regexp_full_match({text}, '^\\(.*\\)$') THEN '-' ELSE '' END"
    digits = f"regexp_replace({text}, '[^0-9.\\-]', '', 'g')"
    return f"TRY_CAST(nullif({sign} || {digits}, '') AS DOUBLE)"


def datetime_sql(column_sql: str, fmt: str | None = None) -> str:
    if fmt:
        return f"try_strptime(CAST({column_sql} AS VARCHAR), {sql_literal(fmt)})"
    return f"TRY_CAST({column_sql} AS TIMESTAMP)"


def apply_view_steps(
    con: duckdb.DuckDBPyConnection,
    name: str,
    source: SourceSpec,
    base_sql: str,
    steps: Sequence,
) -> str:
    """``base_sql`` (the source's SELECT) wrapped by each view step of source ``name``.

    A step naming a column the data does not have (the source changed since the step was
    recorded) raises :class:`SourceError` saying which step and what to do."""
    sql = base_sql
    for step in steps:
        if step.source != name or step.action not in VIEW_ACTIONS:
            continue
        columns = _describe(con, sql)
        missing = [c for c in step.columns_used if c not in columns]
        if missing:
            raise SourceError(
                f"cleaning step {step.id!r} names column(s) {', '.join(map(repr, missing))} that "
                f"source {name!r} does not have",
                hint=f"the data changed since the step was recorded: edit or remove the step "
                f"under `cleaning:` in cycleml.yaml (columns now: {', '.join(columns)})",
            )
        sql = _wrap(con, step, sql, columns, source, name)
    return sql


def _describe(con: duckdb.DuckDBPyConnection, sql: str) -> dict[str, str]:
    return {row[0]: str(row[1]) for row in con.execute(f"DESCRIBE {sql}").fetchall()}


def _wrap(con, step, sql: str, columns: dict[str, str], source: SourceSpec, name: str) -> str:
    inner = f"({sql}) AS _s"

    def select(replace: dict[str, str] | None = None, drop: Sequence[str] = ()) -> str:
        replace = replace or {}
        parts = []
        for col in columns:
            if col in drop:
                continue
            parts.append(f"{replace[col]} AS {quote(col)}" if col in replace else quote(col))
        return ", ".join(parts)

    if isinstance(step, RenameColumns):
        parts = [
            f"{quote(c)} AS {quote(step.mapping[c])}" if c in step.mapping else quote(c)
            for c in columns
        ]
        return f"SELECT {', '.join(parts)} FROM {inner}"
    if isinstance(step, DropColumns):
        kept = select(drop=step.columns)
        if not kept:
            raise SourceError(
                f"cleaning step {step.id!r} drops every column of source {name!r}",
                hint="remove the step from `cleaning:` in cycleml.yaml",
            )
        return f"SELECT {kept} FROM {inner}"
    if isinstance(step, DropDuplicates):
        return f"SELECT DISTINCT * FROM {inner}"
    if isinstance(step, DropIncompleteRows):
        wanted = step.columns or list(columns)
        where = " AND ".join(f"{quote(c)} IS NOT NULL" for c in wanted)
        return f"SELECT * FROM {inner} WHERE {where}"
    if isinstance(step, IsolationForestOutliers):
        return _isolation_forest(con, step, sql, inner)
    if isinstance(step, RemoveOutliers):
        col = quote(step.column)
        return (
            f"SELECT * FROM {inner} WHERE {col} IS NULL OR "
            f"({col} >= {float(step.lower)!r} AND {col} <= {float(step.upper)!r})"
        )
    col = quote(step.column)
    dtype = columns[step.column]
    if isinstance(step, FixInvalid):
        expr = _fix_invalid(col, dtype, step.kind)
    elif isinstance(step, NormalizeCase):
        expr = f"{step.case}(trim(CAST({col} AS VARCHAR)))"
    elif isinstance(step, CurrencyToNumber):
        expr = col if is_numeric(dtype) else currency_sql(col)
    elif isinstance(step, ParseDatetime):
        expr = (
            col
            if dtype.upper().startswith(("TIMESTAMP", "DATE"))
            else datetime_sql(col, step.format)
        )
    elif isinstance(step, ForwardFill):
        if not source.entity or not source.time:
            raise SourceError(
                f"cleaning step {step.id!r} fills forward, but source {name!r} has no "
                "`entity` and `time`",
                hint=f"declare `entity:` and `time:` under `sources.{name}`, or remove the step",
            )
        expr = (
            f"last_value({col} IGNORE NULLS) OVER (PARTITION BY {quote(source.entity)} "
            f"ORDER BY {quote(source.time)} ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)"
        )
    else:  # pragma: no cover - every view action is handled above
        raise AssertionError(step.action)
    return f"SELECT {select({step.column: expr})} FROM {inner}"


def _fix_invalid(col: str, dtype: str, kind: str) -> str:
    if kind in PATTERNS:
        text = f"CAST({col} AS VARCHAR)"
        return f"CASE WHEN {valid_text_sql(text, kind)} THEN {text} END"
    if kind == "number":
        if is_numeric(dtype):
            return f"CASE WHEN isfinite(CAST({col} AS DOUBLE)) THEN {col} END"
        return f"TRY_CAST(trim(CAST({col} AS VARCHAR)) AS DOUBLE)"
    # datetime: text that does not parse, or a time outside the years 1900-2200
    parsed = col if dtype.upper().startswith(("TIMESTAMP", "DATE")) else datetime_sql(col)
    return f"CASE WHEN year({parsed}) BETWEEN 1900 AND 2200 THEN {parsed} END"


IFOREST_FIT_ROWS = 100_000  # the forest is fitted on at most this many rows (a hashed sample)


def _isolation_forest(con: duckdb.DuckDBPyConnection, step, sql: str, inner: str) -> str:
    """Fit the step's IsolationForest on the rows of ``sql`` (read in a fixed order, missing
    values as the column median) and keep the rows it does not flag, through a UDF."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    from sklearn.ensemble import IsolationForest

    values = ", ".join(f"TRY_CAST({quote(c)} AS DOUBLE)" for c in step.columns)
    # The medians over every row, computed in SQL; the forest is fitted on at most
    # IFOREST_FIT_ROWS rows picked by a hash of their values (the same rows for the same data,
    # whatever the file order or thread count), so large sources never come into Python whole.
    median_sql = ", ".join(
        f"median(CASE WHEN isfinite(TRY_CAST({quote(c)} AS DOUBLE)) "
        f"THEN TRY_CAST({quote(c)} AS DOUBLE) END)"
        for c in step.columns
    )
    medians = np.array(
        [
            0.0 if m is None else float(m)
            for m in con.sql(f"SELECT {median_sql} FROM ({sql}) AS _m").fetchall()[0]
        ]
    )
    rows = con.sql(
        f"SELECT {values} FROM ({sql}) AS _f "
        f"ORDER BY hash({values}), {values} LIMIT {IFOREST_FIT_ROWS}"
    ).fetchall()
    data = np.asarray(rows, dtype=float).reshape(len(rows), len(step.columns))
    data[~np.isfinite(data)] = np.nan
    fill = np.where(np.isnan(data), medians, data)
    if len(fill) < 2:
        return f"SELECT * FROM {inner}"
    forest = IsolationForest(
        n_estimators=step.n_estimators,
        contamination=step.contamination,
        random_state=step.random_state,
    ).fit(fill)

    width = len(step.columns)

    def keep(lists):  # one DOUBLE[] per row: the step's columns
        if isinstance(lists, pa.ChunkedArray):
            lists = lists.combine_chunks()
        flat = pc.list_flatten(lists).to_numpy(zero_copy_only=False)
        x = np.array(flat, dtype=float).reshape(-1, width)
        x[~np.isfinite(x)] = np.nan
        x = np.where(np.isnan(x), medians, x)
        return pa.array(forest.predict(x) == 1)

    udf = f"_cycleml_iforest_{uuid.uuid4().hex[:12]}"
    con.create_function(udf, keep, ["DOUBLE[]"], "BOOLEAN", type="arrow")
    return f"SELECT * FROM {inner} WHERE {udf}([{values}])"
