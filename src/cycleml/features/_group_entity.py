"""Entity-table groups: columns, SQL expressions and date parts of the row valid at as_of.

The row valid at as_of is, for a source with ``valid_from``/``valid_to``, the row with
``valid_from <= as_of < valid_to`` (a null ``valid_to`` is open-ended); for a source with a
``time`` column, the latest row with ``time < as_of``; otherwise the entity's row."""

from __future__ import annotations

from typing import TYPE_CHECKING

import duckdb

from ..data import quote
from ..errors import SpecError, SpecIssue
from ..spec import FeatureGroupSpec, SourceSpec
from ._group_dates import DATE_PARTS, holiday_table
from ._group_events import AS_OF, ENTITY, SPINE
from ._groups import CompiledGroup, FeatureColumn, kind_of

if TYPE_CHECKING:
    from ._featureset import FeatureSet


def entity_group(
    name: str,
    group: FeatureGroupSpec,
    source: SourceSpec,
    source_columns: dict[str, str],
    derived: dict[str, str],
    featureset: FeatureSet | None,
) -> CompiledGroup:
    ent, src = quote(source.entity or ""), quote(group.source)
    if (source.valid_from is None) != (source.valid_to is None):
        raise SpecError(
            f"source {group.source!r} has only one of `valid_from` / `valid_to`",
            issues=[SpecIssue(f"sources.{group.source}", "incomplete validity", "give both")],
        )
    for role in ("valid_from", "valid_to"):
        column = getattr(source, role)
        if column is not None and column not in source_columns:
            raise SpecError(
                f"source {group.source!r}: {role} column {column!r} is not in the data",
                issues=[
                    SpecIssue(
                        f"sources.{group.source}.{role}",
                        f"unknown column {column!r}",
                        f"columns: {', '.join(source_columns)}",
                    )
                ],
            )
    extra = "".join(f", {expr} AS {quote(col)}" for col, expr in derived.items())
    relation = f"(SELECT *{extra} FROM {src})"
    valid = None
    if source.valid_from is not None:
        start, end = quote(source.valid_from), quote(source.valid_to or "")
        join = (
            f"ASOF LEFT JOIN (SELECT * FROM {relation} WHERE {start} IS NOT NULL) r "
            f"ON s.{ENTITY} = CAST(r.{ent} AS VARCHAR) AND s.{AS_OF} >= r.{start}"
        )
        valid = f"(r.{end} IS NULL OR s.{AS_OF} < r.{end})"
    elif source.time:
        join = (
            f"ASOF LEFT JOIN (SELECT * FROM {relation} WHERE {quote(source.time)} IS NOT NULL) r "
            f"ON s.{ENTITY} = CAST(r.{ent} AS VARCHAR) AND s.{AS_OF} > r.{quote(source.time)}"
        )
    else:
        join = f"LEFT JOIN {relation} r ON s.{ENTITY} = CAST(r.{ent} AS VARCHAR)"

    def row(column: str) -> str:
        value = f"r.{quote(column)}"
        return value if valid is None else f"CASE WHEN {valid} THEN {value} END"

    selects: list[str] = []
    columns: list[FeatureColumn] = []
    for column in group.columns:
        selects.append(f"{row(column)} AS {quote(column)}")
        columns.append(FeatureColumn(column, name, kind_of(source_columns[column])))
    if derived:
        kinds = _derived_kinds(featureset, relation, derived)
        for column in derived:
            selects.append(f"{row(column)} AS {quote(column)}")
            columns.append(FeatureColumn(column, name, kinds.get(column, "number")))
    holidays: list[tuple[int, str]] = []  # (hidden day column index, column)
    for column, parts in group.dates.items():
        for part in parts:
            feature = f"{column}_{part}"
            if part in ("days_to_holiday", "days_since_holiday"):
                if not any(c == column for _, c in holidays):
                    holidays.append((len(holidays), column))
                columns.append(FeatureColumn(feature, name, "number"))
                continue
            expr = DATE_PARTS[part].format(c=row(column), as_of=f"s.{AS_OF}")
            selects.append(f"{expr} AS {quote(feature)}")
            columns.append(FeatureColumn(feature, name, "number"))
    for index, column in holidays:
        selects.append(f"CAST({row(column)} AS DATE) AS __hd{index}")
    hol = group.holidays
    if hol is not None and hol.country_column:
        selects.append(f"CAST({row(hol.country_column)} AS VARCHAR) AS __hc")
    inner = f"SELECT s.{ENTITY}, s.{AS_OF}, {', '.join(selects)} FROM {SPINE} s {join}"
    if not holidays:
        return CompiledGroup(name, inner, columns)
    if featureset is None:
        raise SpecError(
            f"feature group {name!r}: holiday features need the project's data",
            issues=[SpecIssue(f"features.{name}.holidays", "no data", "compute via a FeatureSet")],
        )
    notes: list[str] = []
    table_name, table = holiday_table(
        featureset.sources.con, name, group, featureset.sources.view(group.source), notes
    )
    table_q = quote(table_name)
    joins = []
    country = "hn{i}.country = x.__hc AND " if hol and hol.country_column else ""
    for index, _column in holidays:
        cn = country.replace("hn{i}", f"hn{index}")
        cp = country.replace("hn{i}", f"hp{index}")
        joins.append(
            f"ASOF LEFT JOIN {table_q} hn{index} ON {cn}x.__hd{index} <= hn{index}.day "
            f"ASOF LEFT JOIN {table_q} hp{index} ON {cp}x.__hd{index} >= hp{index}.day"
        )
    by_name = {}
    for index, column in holidays:
        by_name[f"{column}_days_to_holiday"] = f"date_diff('day', x.__hd{index}, hn{index}.day)"
        by_name[f"{column}_days_since_holiday"] = f"date_diff('day', hp{index}.day, x.__hd{index})"
    outer = [f"x.{ENTITY}", f"x.{AS_OF}"]
    for col in columns:
        expr = by_name.get(col.name, f"x.{quote(col.name)}")
        outer.append(f"{expr} AS {quote(col.name)}")
    sql = f"SELECT {', '.join(outer)} FROM ({inner}) x {' '.join(joins)}"
    return CompiledGroup(name, sql, columns, tables={table_name: table}, notes=notes)


def _derived_kinds(
    featureset: FeatureSet | None, relation: str, derived: dict[str, str]
) -> dict[str, str]:
    if featureset is None:
        return {}
    cols = ", ".join(quote(c) for c in derived)
    try:
        rows = featureset.sources.con.sql(f"DESCRIBE SELECT {cols} FROM {relation}").fetchall()
    except duckdb.Error as exc:
        raise SpecError(
            f"a SQL feature ({', '.join(derived)}) cannot be computed: {str(exc).splitlines()[0]}",
            issues=[SpecIssue("features", "SQL error", "check the expression and column types")],
        ) from None
    return {r[0]: kind_of(str(r[1])) for r in rows}
