"""Feature groups compiled to DuckDB SQL over a spine of (entity, as_of) rows.

Each group reads only rows of its source with time < as_of (an entity table with
``valid_from``/``valid_to``: the row valid at as_of): the same SQL serves training (as of each
cutoff), batch scoring (as of a date) and online requests (as of now).

Entity-table groups live in :mod:`._group_entity`, event groups in :mod:`._group_events`, date
parts and holidays in :mod:`._group_dates`, SQL expression features in :mod:`._group_sql`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ..data import quote, sql_literal
from ..errors import DataError, SpecError, SpecIssue
from ..spec import FeatureGroupSpec, SourceSpec, duration_seconds
from ._group_events import AS_OF, ENTITY, SPINE, Agg, EventPlan, event_block, pick_strategy
from ._group_sql import check_sql_feature

if TYPE_CHECKING:
    from ._featureset import FeatureSet

__all__ = [
    "AS_OF",
    "ENTITY",
    "SPINE",
    "CompiledGroup",
    "FeatureColumn",
    "compile_group",
    "group_blocks",
    "training_notes",
]


@dataclass(frozen=True)
class FeatureColumn:
    name: str
    group: str
    kind: str  # "number" or "category"


@dataclass(frozen=True)
class CompiledGroup:
    name: str
    sql: str  # SELECT __entity, __as_of, <features> FROM _spine ... (the default strategy)
    columns: list[FeatureColumn]
    plan: EventPlan | None = None  # event groups: what group_blocks merges per source
    tables: dict[str, pa.Table] = field(default_factory=dict)  # small tables the SQL reads
    notes: list[str] = field(default_factory=list)
    resolved: dict[str, Any] = field(default_factory=dict)  # e.g. the values `by: auto` chose


def compile_group(
    name: str,
    group: FeatureGroupSpec,
    source: SourceSpec,
    source_columns: dict[str, str],
    featureset: FeatureSet | None = None,
) -> CompiledGroup:
    """Compile one group. ``featureset`` (its sources and cutoffs) is needed by the keys that
    look at the data: ``by: {column: auto}`` and ``holidays``."""
    if source.entity is None:
        raise SpecError(
            f"feature group {name!r} reads source {group.source!r}, which has no `entity`",
            issues=[
                SpecIssue(f"sources.{group.source}.entity", "missing", "name the entity column")
            ],
        )
    derived = {
        feature: check_sql_feature(name, feature, expr, group.source, source_columns)
        for feature, expr in group.sql.items()
    }
    _check_columns(name, group, source_columns, derived)
    if group.windows or group.recency:
        return _event_group(name, group, source, source_columns, derived, featureset)
    from ._group_entity import entity_group

    return entity_group(name, group, source, source_columns, derived, featureset)


def _check_columns(
    name: str, group: FeatureGroupSpec, source_columns: dict[str, str], derived: dict[str, str]
) -> None:
    known = {**source_columns, **dict.fromkeys(derived, "")}
    wanted = list(group.columns) + list(group.dates) + list(group.by)
    wanted += [col for _, col in group.aggregate_items() if col != "*"]
    if group.holidays and group.holidays.country_column:
        wanted.append(group.holidays.country_column)
    missing = [col for col in wanted if col not in known]
    if missing:
        raise SpecError(
            f"feature group {name!r} names column(s) its source {group.source!r} does not have",
            issues=[
                SpecIssue(
                    f"features.{name}",
                    f"unknown column {col!r}",
                    f"columns of {group.source!r}: {', '.join(known)}",
                )
                for col in missing
            ],
        )
    if group.windows:
        unused = set(derived) - set(group.by) - {c for _, c in group.aggregate_items()}
        if unused:
            raise SpecError(
                f"feature group {name!r}: SQL column(s) {', '.join(sorted(unused))} are computed "
                "per event but not used",
                issues=[
                    SpecIssue(
                        f"features.{name}.sql.{col}",
                        "in an event group a SQL expression is a per-row column",
                        f"aggregate it (e.g. `aggregate: {{sum: {col}}}`) or group by it",
                    )
                    for col in sorted(unused)
                ],
            )


def kind_of(dtype: str) -> str:
    upper = dtype.upper()
    if upper in ("VARCHAR", "BOOLEAN", "TEXT") or upper.startswith("ENUM"):
        return "category"
    return "number"


def _slug(value: str) -> str:
    out = "".join(ch if ch.isalnum() else "_" for ch in str(value).lower()).strip("_")
    return out or "blank"


def first_cutoff(featureset: FeatureSet) -> datetime:
    """The earliest cutoff of the problem's training set: `by: auto` looks only before it."""
    cached = getattr(featureset, "_cycleml_first_cutoff", None)
    if cached is None:
        cutoffs, _ = featureset.cutoff_times()
        cached = min(cutoffs)
        featureset._cycleml_first_cutoff = cached  # type: ignore[attr-defined]
    return cached


def _auto_values(
    name: str, group: FeatureGroupSpec, source: SourceSpec, column: str, featureset: FeatureSet
) -> tuple[list[str], str]:
    if featureset is None or source.time is None:
        raise SpecError(
            f"feature group {name!r}: `by: {{{column}: auto}}` needs the data and a `time` column",
            issues=[SpecIssue(f"features.{name}.by.{column}", "cannot pick values", "list them")],
        )
    before = first_cutoff(featureset)
    view = featureset.sources.view(group.source)
    col, ts = quote(column), quote(source.time)
    rows = featureset.sources.con.sql(
        f"SELECT CAST({col} AS VARCHAR) AS v, count(*) AS n FROM {view} "
        f"WHERE {ts} < {sql_literal(before.isoformat(sep=' '))}::TIMESTAMP AND {col} IS NOT NULL "
        f"GROUP BY 1 ORDER BY n DESC, v LIMIT {int(group.auto_top)}"
    ).fetchall()
    if not rows:
        raise DataError(
            f"feature group {name!r}: `by: {{{column}: auto}}` found no {column!r} value in "
            f"{group.source!r} before the first cutoff {before:%Y-%m-%d %H:%M}",
            hint=f"list the values instead: `by: {{{column}: [a, b]}}`",
        )
    values = [r[0] for r in rows]
    note = (
        f"feature group {name!r}: `by: {{{column}: auto}}` chose {', '.join(values)} (the "
        f"{len(values)} most frequent values in rows before the first cutoff "
        f"{before:%Y-%m-%d %H:%M})"
    )
    return values, note


def _event_group(
    name: str,
    group: FeatureGroupSpec,
    source: SourceSpec,
    source_columns: dict[str, str],
    derived: dict[str, str],
    featureset: FeatureSet | None,
) -> CompiledGroup:
    if source.time is None:
        raise SpecError(
            f"feature group {name!r} aggregates over windows, but source {group.source!r} has no "
            "`time` column",
            issues=[SpecIssue(f"sources.{group.source}.time", "missing", "name the time column")],
        )
    internal = {col: f"__x_{name}_{col}" for col in derived}

    def ref(column: str) -> str:
        return internal.get(column, column)

    notes: list[str] = []
    resolved: dict[str, Any] = {}
    filters: list[tuple[str, str | None]] = [("", None)]
    for column, values in group.by.items():
        if values == "auto":
            values, note = _auto_values(name, group, source, column, featureset)
            resolved[column] = values
            notes.append(note)
        for value in values:
            filters.append(
                (f"_{column}_{_slug(value)}", f"e.{quote(ref(column))} = {sql_literal(value)}")
            )
    windows = sorted({(duration_seconds(w), w.strip()) for w in group.windows})
    aggs: list[Agg] = []
    for seconds, label in windows:
        for suffix, cond in filters:
            for op, column in group.aggregate_items():
                if op == "count":
                    feature = f"{name}_count" if column == "*" else f"{name}_count_{column}"
                elif op == "count_distinct":
                    feature = f"{name}_distinct_{column}"
                else:
                    feature = f"{name}_{op}_{column}"
                col = "*" if column == "*" else ref(column)
                aggs.append(Agg(op, col, seconds, cond, f"{feature}_{label}{suffix}"))
    trends: list[tuple[str, str, str]] = []
    if group.trend:
        (short, short_label), (long, long_label) = windows[0], windows[-1]
        ends = []
        for seconds, label in ((short, short_label), (long, long_label)):
            existing = [a for a in aggs if a.op == "count" and a.column == "*" and a.cond is None]
            match = [a for a in existing if a.seconds == seconds]
            if match:
                ends.append(match[0].feature)
            else:
                hidden = f"__trend_{name}_{label}"
                aggs.append(Agg("count", "*", seconds, None, hidden))
                ends.append(hidden)
        trends.append((f"{name}_trend_{short_label}_{long_label}", ends[0], ends[1]))
    recency = (f"{name}_days_since_last", f"{name}_days_since_first") if group.recency else None
    plan = EventPlan(
        group=name,
        source=quote(group.source),
        entity=quote(source.entity or ""),
        time=quote(source.time),
        derived={internal[c]: expr for c, expr in derived.items()},
        aggs=aggs,
        recency=recency,
        trends=trends,
        strategy=group.strategy,
    )
    sql, outputs = event_block([plan], pick_strategy(plan, None))
    columns = [FeatureColumn(f, name, "number") for f in outputs]
    return CompiledGroup(name, sql, columns, plan=plan, notes=notes, resolved=resolved)


def group_blocks(
    groups: list[CompiledGroup], cutoffs_per_entity: float | None = None
) -> list[tuple[str, list[str]]]:
    """The SQL blocks that compute ``groups`` over ``_spine``: every event group of one source
    that uses the same strategy is merged into one pass. Each block is (SQL, feature names)."""
    blocks: list[tuple[str, list[str]]] = []
    merged: dict[tuple[str, str, str, str], list[EventPlan]] = {}
    order: list[Any] = []
    for group in groups:
        if group.plan is None:
            order.append(group)
            continue
        strategy = pick_strategy(group.plan, cutoffs_per_entity)
        key = (group.plan.source, group.plan.entity, group.plan.time, strategy)
        if key not in merged:
            merged[key] = []
            order.append(key)
        merged[key].append(group.plan)
    for item in order:
        if isinstance(item, CompiledGroup):
            blocks.append((item.sql, [c.name for c in item.columns]))
        else:
            blocks.append(event_block(merged[item], item[3]))
    return blocks


def training_notes(featureset: FeatureSet, cutoffs: list[datetime]) -> list[str]:
    """Notes for the dataset version: values `by: auto` chose, windows longer than the history
    before the first cutoffs, `by` values that never occur in the source."""
    notes: list[str] = []
    if not cutoffs:
        return notes
    con = featureset.sources.con
    for group in featureset.groups:
        notes += group.notes
        spec = featureset.spec.features[group.name]
        source = featureset.spec.sources[spec.source]
        if group.plan is None or source.time is None:
            continue
        view = featureset.sources.view(spec.source)
        start = con.sql(
            f"SELECT CAST(min({quote(source.time)}) AS TIMESTAMP) FROM {view}"
        ).fetchall()[0][0]
        if start is not None:
            for window in sorted(set(spec.windows), key=duration_seconds):
                seconds = duration_seconds(window)
                short = [c for c in cutoffs if (c - start).total_seconds() < seconds]
                if short:
                    notes.append(
                        f"feature group {group.name!r}: window {window} is longer than the "
                        f"history at {len(short)} of {len(cutoffs)} cutoff(s) (source "
                        f"{spec.source!r} starts {start:%Y-%m-%d %H:%M}): there the {window} "
                        "features cover only the history there is"
                    )
        for column, values in spec.by.items():
            if values == "auto":
                continue
            col = quote(column if column not in spec.sql else f"__x_{group.name}_{column}")
            derived = "".join(f", {expr} AS {quote(n)}" for n, expr in group.plan.derived.items())
            seen = con.sql(
                f"SELECT CAST({col} AS VARCHAR) AS v, count(*) AS n FROM "
                f"(SELECT *{derived} FROM {view}) GROUP BY 1 ORDER BY n DESC, v LIMIT 20"
            ).fetchall()
            present = {str(v) for v, _ in seen}
            for value in [v for v in values if str(v) not in present]:
                occurs = con.sql(
                    f"SELECT count(*) FROM (SELECT *{derived} FROM {view}) "
                    f"WHERE CAST({col} AS VARCHAR) = {sql_literal(value)}"
                ).fetchall()[0][0]
                if occurs:
                    continue
                listed = ", ".join(str(v) for v, _ in seen if v is not None)
                notes.append(
                    f"feature group {group.name!r}: `by` value {value!r} of {column!r} never "
                    f"occurs in source {spec.source!r}, so its features ({group.name}_..._{column}_"
                    f"{_slug(value)}) are always 0 or empty; values that occur: {listed}"
                )
    return notes
