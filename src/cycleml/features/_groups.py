"""Feature groups compiled to DuckDB SQL over a spine of (entity, as_of) rows.

Each group reads only rows of its source with time < as_of: the same SQL serves training (as of
each cutoff), batch scoring (as of a date) and online requests (as of now).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..data import quote, sql_literal
from ..errors import SpecError, SpecIssue
from ..spec import FeatureGroupSpec, SourceSpec, duration_seconds

SPINE = "_spine"
ENTITY = "__entity"
AS_OF = "__as_of"

_DATE_PARTS = {
    "year": "year({c})",
    "quarter": "quarter({c})",
    "month": "month({c})",
    "day": "day({c})",
    "weekday": "isodow({c})",
    "weekend": "CAST(isodow({c}) >= 6 AS INTEGER)",
    "days_since": "date_diff('second', {c}, s.{as_of}) / 86400.0",
}


@dataclass(frozen=True)
class FeatureColumn:
    name: str
    group: str
    kind: str  # "number" or "category"


@dataclass(frozen=True)
class CompiledGroup:
    name: str
    sql: str  # SELECT __entity, __as_of, <features> FROM _spine ...
    columns: list[FeatureColumn]


def compile_group(
    name: str, group: FeatureGroupSpec, source: SourceSpec, source_columns: dict[str, str]
) -> CompiledGroup:
    if source.entity is None:
        raise SpecError(
            f"feature group {name!r} reads source {group.source!r}, which has no `entity`",
            issues=[
                SpecIssue(f"sources.{group.source}.entity", "missing", "name the entity column")
            ],
        )
    _check_columns(name, group, source_columns)
    if group.windows:
        return _event_group(name, group, source, source_columns)
    return _entity_group(name, group, source, source_columns)


def _check_columns(name: str, group: FeatureGroupSpec, source_columns: dict[str, str]) -> None:
    wanted = list(group.columns) + list(group.dates) + list(group.by)
    wanted += [col for _, col in group.aggregate_items() if col != "*"]
    missing = [col for col in wanted if col not in source_columns]
    if missing:
        raise SpecError(
            f"feature group {name!r} names column(s) its source {group.source!r} does not have",
            issues=[
                SpecIssue(
                    f"features.{name}",
                    f"unknown column {col!r}",
                    f"columns of {group.source!r}: {', '.join(source_columns)}",
                )
                for col in missing
            ],
        )


def _kind(dtype: str) -> str:
    upper = dtype.upper()
    if upper in ("VARCHAR", "BOOLEAN", "TEXT") or upper.startswith("ENUM"):
        return "category"
    return "number"


def _entity_group(
    name: str, group: FeatureGroupSpec, source: SourceSpec, source_columns: dict[str, str]
) -> CompiledGroup:
    ent, src = quote(source.entity or ""), quote(group.source)
    selects: list[str] = []
    columns: list[FeatureColumn] = []
    for column in group.columns:
        selects.append(f"r.{quote(column)} AS {quote(column)}")
        columns.append(FeatureColumn(column, name, _kind(source_columns[column])))
    for column, parts in group.dates.items():
        for part in parts:
            expr = _DATE_PARTS[part].format(c=f"r.{quote(column)}", as_of=AS_OF)
            feature = f"{column}_{part}"
            selects.append(f"{expr} AS {quote(feature)}")
            columns.append(FeatureColumn(feature, name, "number"))
    # The latest row of the entity visible at as_of (an entity table may hold history).
    if source.time:
        join = (
            f"ASOF LEFT JOIN (SELECT * FROM {src} WHERE {quote(source.time)} IS NOT NULL) r "
            f"ON s.{ENTITY} = r.{ent} AND s.{AS_OF} > r.{quote(source.time)}"
        )
    else:
        join = f"LEFT JOIN {src} r ON s.{ENTITY} = r.{ent}"
    sql = f"SELECT s.{ENTITY}, s.{AS_OF}, {', '.join(selects)} FROM {SPINE} s {join}"
    return CompiledGroup(name, sql, columns)


def _window_filter(seconds: int) -> str:
    return f"e.__t >= s.{AS_OF} - to_seconds({seconds})"


def _event_group(
    name: str, group: FeatureGroupSpec, source: SourceSpec, source_columns: dict[str, str]
) -> CompiledGroup:
    if source.time is None:
        raise SpecError(
            f"feature group {name!r} aggregates over windows, but source {group.source!r} has no "
            "`time` column",
            issues=[SpecIssue(f"sources.{group.source}.time", "missing", "name the time column")],
        )
    ent, src, ts = quote(source.entity or ""), quote(group.source), quote(source.time)
    windows = sorted({(duration_seconds(w), w) for w in group.windows})
    longest = windows[-1][0]
    selects: list[str] = []
    columns: list[FeatureColumn] = []

    def add(expr: str, feature: str) -> None:
        selects.append(f"{expr} AS {quote(feature)}")
        columns.append(FeatureColumn(feature, name, "number"))

    filters: list[tuple[str, str]] = [("", "TRUE")]
    for column, values in group.by.items():
        for value in values:
            filters.append(
                (f"_{column}_{_slug(value)}", f"e.{quote(column)} = {sql_literal(value)}")
            )
    for seconds, label in windows:
        window = _window_filter(seconds)
        for suffix, condition in filters:
            for op, column in group.aggregate_items():
                value = "e.__t" if column == "*" else f"e.{quote(column)}"
                where = f"{window} AND {condition}" if condition != "TRUE" else window
                if op == "count":
                    expr = f"count({value}) FILTER (WHERE {where})"
                    feature = f"{name}_count" if column == "*" else f"{name}_count_{column}"
                elif op == "count_distinct":
                    expr = f"count(DISTINCT {value}) FILTER (WHERE {where})"
                    feature = f"{name}_distinct_{column}"
                elif op == "sum":
                    expr = f"coalesce(sum({value}) FILTER (WHERE {where}), 0)"
                    feature = f"{name}_sum_{column}"
                else:
                    fn = {"mean": "avg", "min": "min", "max": "max"}[op]
                    expr = f"{fn}({value}) FILTER (WHERE {where})"
                    feature = f"{name}_{op}_{column}"
                add(expr, f"{feature}_{label}{suffix}")
    recent = (
        f"SELECT s.{ENTITY}, s.{AS_OF}, {', '.join(selects)} FROM {SPINE} s "
        f"LEFT JOIN (SELECT *, {ts} AS __t FROM {src}) e ON e.{ent} = s.{ENTITY} "
        f"AND e.__t < s.{AS_OF} AND e.__t >= s.{AS_OF} - to_seconds({longest}) "
        f"GROUP BY s.{ENTITY}, s.{AS_OF}"
    )
    if not group.recency:
        return CompiledGroup(name, recent, columns)
    last, first = f"{name}_days_since_last", f"{name}_days_since_first"
    columns += [FeatureColumn(last, name, "number"), FeatureColumn(first, name, "number")]
    sql = (
        f"WITH agg AS ({recent}), "
        f"lastev AS (SELECT s.{ENTITY}, s.{AS_OF}, e.__t AS __last FROM {SPINE} s "
        f"ASOF LEFT JOIN (SELECT {ent} AS __k, {ts} AS __t FROM {src} WHERE {ts} IS NOT NULL) e "
        f"ON s.{ENTITY} = e.__k AND s.{AS_OF} > e.__t), "
        f"firstev AS (SELECT {ent} AS __k, min({ts}) AS __first FROM {src} GROUP BY 1) "
        f"SELECT agg.*, date_diff('second', l.__last, agg.{AS_OF}) / 86400.0 AS {quote(last)}, "
        f"CASE WHEN f.__first < agg.{AS_OF} THEN date_diff('second', f.__first, agg.{AS_OF}) "
        f"/ 86400.0 END AS {quote(first)} "
        f"FROM agg JOIN lastev l ON l.{ENTITY} = agg.{ENTITY} AND l.{AS_OF} = agg.{AS_OF} "
        f"LEFT JOIN firstev f ON f.__k = agg.{ENTITY}"
    )
    return CompiledGroup(name, sql, columns)


def _slug(value: str) -> str:
    out = "".join(ch if ch.isalnum() else "_" for ch in str(value).lower()).strip("_")
    return out or "blank"
