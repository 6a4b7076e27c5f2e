"""SQL expression features (``sql: {name: expression}``), checked with SQLGlot.

An expression is evaluated per row of the group's source, like a computed column: in an
entity-table group it is a feature (taken from the row valid at as_of); in an event group it is a
derived column that ``aggregate`` and ``by`` can name. It may only reference columns of its own
source: no other table, no subquery, no aggregate or window function (a row sees only itself).
"""

from __future__ import annotations

import re

import sqlglot
from sqlglot import exp

from ..errors import SpecError, SpecIssue

_TABLE_FUNCTIONS = re.compile(r"^(read_|scan_|parquet_|sqlite_|postgres_|query|glob|getenv)", re.I)


def check_sql_feature(
    group: str, feature: str, expression: str, source: str, source_columns: dict[str, str]
) -> str:
    """The expression as DuckDB SQL, or a SpecError naming the feature and the fix."""
    path = f"features.{group}.sql.{feature}"

    def fail(what: str, hint: str) -> SpecError:
        return SpecError(
            f"SQL feature {feature!r} of group {group!r}: {what}",
            issues=[SpecIssue(path, what, hint)],
        )

    try:
        parsed = [p for p in sqlglot.parse(expression, read="duckdb") if p is not None]
    except sqlglot.errors.SqlglotError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise fail(
            f"not valid SQL ({first})", "write one SQL expression, e.g. value * 1.2"
        ) from None
    if len(parsed) != 1:
        raise fail("holds more than one statement", "write one SQL expression, no `;`")
    tree = parsed[0]
    own = f"columns of {source!r}: {', '.join(source_columns)}"
    if tree.find(exp.Query, exp.Subquery) is not None or tree.find(exp.Table) is not None:
        tables = sorted({t.name for t in tree.find_all(exp.Table)}) or ["a subquery"]
        raise fail(
            f"reads {', '.join(tables)}; a SQL feature may only use columns of its source "
            f"{source!r}",
            f"compute it in a feature group whose `source` is that table, or add that table's "
            f"columns to {source!r} upstream; {own}",
        )
    qualified = sorted({c.table for c in tree.find_all(exp.Column) if c.table})
    if any(t != source for t in qualified):
        others = [t for t in qualified if t != source]
        raise fail(
            f"references another table ({', '.join(others)}); a SQL feature may only use "
            f"columns of its source {source!r}",
            f"make a feature group with `source: {others[0]}` for it, or drop the table "
            f"prefix; {own}",
        )
    if tree.find(exp.AggFunc, exp.Window) is not None:
        raise fail(
            "uses an aggregate or window function; a SQL feature is computed per row",
            "aggregate it with `windows` + `aggregate` in an event group instead",
        )
    for func in tree.find_all(exp.Func):
        name = func.name if isinstance(func, exp.Anonymous) else func.sql_name().lower()
        if _TABLE_FUNCTIONS.match(name):
            raise fail(
                f"calls {name}(), which reads outside its source",
                f"a SQL feature may only use columns of {source!r}",
            )
    unknown = sorted({c.name for c in tree.find_all(exp.Column)} - set(source_columns))
    if unknown:
        raise fail(f"unknown column(s) {', '.join(unknown)}", own)
    for column in tree.find_all(exp.Column):
        column.set("table", None)
    return tree.sql(dialect="duckdb")
