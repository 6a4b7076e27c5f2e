"""Labels compiled to SQL: who is eligible at a cutoff, and what their label is.

Windows are half-open: features see [as_of - W, as_of), the label sees [as_of, as_of + days), so
no row belongs to both and none falls between them.

Every function here reads the spine tables the feature set registers: ``_cutoffs(__as_of)`` for
eligibility, and a spine ``(__entity, __as_of)`` for the label. Ranking (``click``) labels have
their own spine, the impressions (:func:`impressions_sql`); forecast labels expand each spine row
by the horizon ``h`` (:func:`label_sql` returns a ``__h`` column for them).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb

from ..data import SourceSet, quote, sql_literal
from ..errors import DataError
from ..spec import (
    ClickLabel,
    ColumnLabel,
    CountWithinLabel,
    EventWithinLabel,
    ForecastLabel,
    InactivityLabel,
    ProblemSpec,
    SumWithinLabel,
    duration_seconds,
)
from ._groups import AS_OF, ENTITY

CUTOFFS = "_cutoffs"
HORIZON = "__h"
ITEM = "__item"
GROUP = "__group"

WINDOW_KINDS = (InactivityLabel, EventWithinLabel, SumWithinLabel, CountWithinLabel)
"""Labels over a window [cutoff, cutoff + days) of an event source."""


# -- horizons and the end of the data ----------------------------------------------------------


def label_window(problem: ProblemSpec) -> timedelta:
    """How far past a cutoff (or an impression) its label looks."""
    label = problem.label
    if isinstance(label, WINDOW_KINDS):
        return timedelta(days=int(label.days))
    if isinstance(label, ForecastLabel):
        return timedelta(days=int(label.horizon))
    if isinstance(label, ClickLabel) and label.clicks is not None:
        return timedelta(seconds=duration_seconds(label.within))
    return timedelta(0)


def label_horizon_days(problem: ProblemSpec) -> int:
    """The label window in whole days (rounded up): the gap a time split leaves."""
    window = label_window(problem)
    return window.days + (1 if window.seconds or window.microseconds else 0)


def window_text(window: timedelta) -> str:
    if window.seconds == 0 and window.microseconds == 0:
        return f"{window.days}-day"
    return f"{window.total_seconds() / 3600:g}-hour"


def end_source(problem: ProblemSpec) -> str:
    """The source whose last row bounds the label windows."""
    label = problem.label
    if isinstance(label, ClickLabel) and label.clicks is not None:
        return label.clicks
    return label.source


def data_end(problem: ProblemSpec, sources: SourceSet) -> datetime | None:
    """The time of the last row of the source the label reads (None when it has no time)."""
    name = end_source(problem)
    spec = sources.spec.sources[name]
    if not spec.time:
        return None
    return sources.con.execute(
        # A DATE column gives a date: make it a timestamp so it compares with the cutoffs.
        f"SELECT CAST(max({quote(spec.time)}) AS TIMESTAMP) FROM {sources.view(name)}"
    ).fetchall()[0][0]


# -- eligibility --------------------------------------------------------------------------------


def _entity_column(problem: ProblemSpec, sources: SourceSet, name: str) -> str:
    return quote(sources.spec.sources[name].entity or problem.entity)


def active_days(problem: ProblemSpec) -> int | None:
    """The N of "active in the N days before the cutoff" (None: no activity needed)."""
    label = problem.label
    eligible = getattr(label, "eligible", None)
    if eligible is not None and eligible.active_days:
        return int(eligible.active_days)
    if isinstance(label, InactivityLabel):
        return int(label.active_days or label.days)
    return None


def eligible_sql(problem: ProblemSpec, sources: SourceSet) -> str:
    """SELECT __entity, __as_of of the entities eligible at each row of table _cutoffs(__as_of).

    An entity exists at a cutoff when the eligibility source (``eligible.source``, default: the
    label's source) has a row of it with time < cutoff (any row when that source has no time);
    with ``active_days`` N (churn: default ``days``) it also needs a row of the label's source in
    [cutoff - N days, cutoff)."""
    label = problem.label
    if isinstance(label, ClickLabel):
        raise AssertionError("click labels have impressions as their spine")
    eligible = getattr(label, "eligible", None)
    exist_name = eligible.source if eligible is not None and eligible.source else label.source
    exist_time = row_time(sources, exist_name)
    ent = _entity_column(problem, sources, exist_name)
    visible = f" AND r.{quote(exist_time)} < c.{AS_OF}" if exist_time else ""
    exists = (
        f"SELECT DISTINCT CAST(r.{ent} AS VARCHAR) AS {ENTITY}, c.{AS_OF} FROM {CUTOFFS} c "
        f"JOIN {sources.view(exist_name)} r ON r.{ent} IS NOT NULL{visible}"
    )
    days = active_days(problem)
    if days is None:
        return exists
    ts = quote(time_column(sources, label.source))
    types = _event_type_filter(label) if isinstance(label, InactivityLabel) else ""
    ent = _entity_column(problem, sources, label.source)
    active = (
        f"SELECT DISTINCT CAST(e.{ent} AS VARCHAR) AS {ENTITY}, c.{AS_OF} FROM {CUTOFFS} c "
        f"JOIN {sources.view(label.source)} e "
        f"ON e.{ts} < c.{AS_OF} AND e.{ts} >= c.{AS_OF} - to_days({days}){types}"
    )
    if exist_name == label.source:
        return active  # a row in the N days before the cutoff is a row before it
    return f"({exists}) INTERSECT ({active})"


# -- labels -------------------------------------------------------------------------------------


def label_sql(problem: ProblemSpec, sources: SourceSet, spine: str) -> str:
    """SELECT __entity, __as_of, label for every row of ``spine`` (forecast: also __h)."""
    label = problem.label
    src = sources.view(label.source)
    ent = _entity_column(problem, sources, label.source)
    if isinstance(label, ColumnLabel):
        return _column_label_sql(label, sources, spine)
    if isinstance(label, ForecastLabel):
        return _forecast_label_sql(label, sources, spine, ent)
    if isinstance(label, ClickLabel):
        raise AssertionError("click labels come with the impressions (impressions_sql)")
    ts = quote(time_column(sources, label.source))
    types = _event_type_filter(label)
    if isinstance(label, InactivityLabel):
        value = f"CAST(count(e.{ts}) = 0 AS INTEGER)"
    elif isinstance(label, EventWithinLabel):
        value = f"CAST(count(e.{ts}) > 0 AS INTEGER)"
    elif isinstance(label, CountWithinLabel):
        value = f"count(e.{ts})"
    else:
        assert isinstance(label, SumWithinLabel)
        value = f"coalesce(sum(e.{quote(label.column)}), 0)"
    return (
        f"SELECT s.{ENTITY}, s.{AS_OF}, {value} AS label "
        f"FROM {spine} s LEFT JOIN {src} e ON CAST(e.{ent} AS VARCHAR) = s.{ENTITY} "
        f"AND e.{ts} >= s.{AS_OF} AND e.{ts} < s.{AS_OF} + to_days({int(label.days)}){types} "
        f"GROUP BY s.{ENTITY}, s.{AS_OF}"
    )


def _column_label_sql(label: ColumnLabel, sources: SourceSet, spine: str) -> str:
    spec = sources.spec.sources[label.source]
    src = sources.view(label.source)
    ent = quote(spec.entity or "")
    col = quote(label.column)
    time = row_time(sources, label.source)
    if time:
        # The row valid at the cutoff: the latest one with time (valid_from) <= cutoff, and
        # for a table with `valid_to`, still valid then.
        ts = quote(time)
        until, still = "NULL", ""
        if spec.valid_to:
            until = quote(spec.valid_to)
            still = f" AND (r.__until IS NULL OR r.__until > s.{AS_OF})"
        return (
            f"SELECT s.{ENTITY}, s.{AS_OF}, r.{col} AS label FROM {spine} s ASOF JOIN "
            f"(SELECT CAST({ent} AS VARCHAR) AS __k, {ts} AS __t, {until} AS __until, {col} "
            f"FROM {src} WHERE {ts} IS NOT NULL) r ON s.{ENTITY} = r.__k AND s.{AS_OF} >= r.__t "
            f"WHERE r.{col} IS NOT NULL{still}"
        )
    return (
        f"SELECT s.{ENTITY}, s.{AS_OF}, r.{col} AS label FROM {spine} s JOIN {src} r "
        f"ON CAST(r.{ent} AS VARCHAR) = s.{ENTITY} WHERE r.{col} IS NOT NULL"
    )


def _forecast_label_sql(label: ForecastLabel, sources: SourceSet, spine: str, ent: str) -> str:
    src = sources.view(label.source)
    ts = quote(time_column(sources, label.source))
    value = f"sum(e.{quote(label.column)})" if label.column else "count(*)"
    horizon = int(label.horizon)
    # Day h (1..horizon) of a cutoff is [cutoff + (h - 1) days, cutoff + h days).
    return (
        f"WITH base AS (SELECT DISTINCT {ENTITY}, {AS_OF} FROM {spine}), "
        f"days AS (SELECT b.{ENTITY}, b.{AS_OF}, "
        f"CAST(floor(date_diff('second', b.{AS_OF}, e.{ts}) / 86400) AS INTEGER) + 1 AS {HORIZON}, "
        f"{value} AS v FROM base b JOIN {src} e ON CAST(e.{ent} AS VARCHAR) = b.{ENTITY} "
        f"AND e.{ts} >= b.{AS_OF} AND e.{ts} < b.{AS_OF} + to_days({horizon}) GROUP BY ALL) "
        f"SELECT b.{ENTITY}, b.{AS_OF}, h.range AS {HORIZON}, coalesce(d.v, 0) AS label "
        f"FROM base b CROSS JOIN range(1, {horizon + 1}) h LEFT JOIN days d "
        f"ON d.{ENTITY} = b.{ENTITY} AND d.{AS_OF} = b.{AS_OF} AND d.{HORIZON} = h.range"
    )


def impressions_sql(problem: ProblemSpec, sources: SourceSet, where: str) -> str:
    """SELECT __entity, __as_of, __item, __group, label: one row per impression (ranking).

    ``where`` filters the impressions (alias ``i``) by time."""
    label = problem.label
    assert isinstance(label, ClickLabel)
    spec = sources.spec.sources[label.source]
    src = sources.view(label.source)
    ent = quote(spec.entity or problem.entity)
    ts = quote(time_column(sources, label.source))
    item = quote(label.item)
    if label.group:
        group = f"CAST(i.{quote(label.group)} AS VARCHAR)"
    else:
        group = f"CAST(i.{ent} AS VARCHAR) || '@' || strftime(i.{ts}, '%Y-%m-%dT%H:%M:%S.%f')"
    if label.column is not None:
        value = f"CAST(i.{quote(label.column)} AS INTEGER)"
    else:
        assert label.clicks is not None
        cspec = sources.spec.sources[label.clicks]
        cent = quote(cspec.entity or problem.entity)
        cts = quote(time_column(sources, label.clicks))
        within = duration_seconds(label.within)
        value = (
            f"CAST(EXISTS (SELECT 1 FROM {sources.view(label.clicks)} c "
            f"WHERE c.{cent} = i.{ent} AND c.{item} = i.{item} AND c.{cts} >= i.{ts} "
            f"AND c.{cts} < i.{ts} + to_seconds({within})) AS INTEGER)"
        )
    return (
        f"SELECT CAST(i.{ent} AS VARCHAR) AS {ENTITY}, CAST(i.{ts} AS TIMESTAMP) AS {AS_OF}, "
        f"i.{item} AS {ITEM}, {group} AS {GROUP}, {value} AS label FROM {src} i "
        f"WHERE i.{ts} IS NOT NULL AND i.{ent} IS NOT NULL AND {where}"
    )


# -- checks of the label's data -----------------------------------------------------------------


def time_column(sources: SourceSet, name: str) -> str:
    time = sources.spec.sources[name].time
    if not time:
        raise DataError(
            f"source {name!r} has no `time` column, but the label counts events over time",
            hint=f"add `time: <column>` to sources.{name}",
        )
    return time


def row_time(sources: SourceSet, name: str) -> str | None:
    """The column that says from when a row of ``name`` exists (``time``, else
    ``valid_from``)."""
    spec = sources.spec.sources[name]
    return spec.time or getattr(spec, "valid_from", None)


def _event_type_filter(label) -> str:
    if not getattr(label, "event_types", None):
        return ""
    values = ", ".join(sql_literal(t) for t in label.event_types)
    return f" AND e.{quote(label.type_column)} IN ({values})"


def check_label_data(problem: ProblemSpec, sources: SourceSet) -> list[str]:
    """Check the data the label reads; raise a DataError for what would give a wrong label and
    return notes for what is merely surprising."""
    label = problem.label
    notes: list[str] = []
    for name in {label.source, end_source(problem)}:
        spec = sources.spec.sources[name]
        if spec.time:
            sources.check(name)
            check_text_times(
                sources, text_relation(sources, name), spec.time, f"{name}.{spec.time}"
            )
    if isinstance(label, ColumnLabel):
        check_unique_keys(sources, label.source)
    if getattr(label, "event_types", None):
        notes += check_event_types(label, sources)
    return notes


_ZONE = r"(Z|[+-]\d\d(:?\d\d)?)$"


def text_relation(sources: SourceSet, name: str) -> str:
    """The source's rows as read, before the view parses times: a CSV file read as text (its
    reader would quietly take times without a zone as UTC next to times with one), else the
    raw view."""
    spec = sources.spec.sources[name]
    sources.view(name)
    if spec.kind == "file":
        files = sources.files(name)
        fmt = spec.format or ("csv" if files[0].lower().endswith((".csv", ".tsv")) else None)
        if fmt == "csv":
            listed = ", ".join(sql_literal(f) for f in files)
            return f"read_csv([{listed}], all_varchar = true)"
    return quote(f"_raw_{name}")


def check_text_times(sources: SourceSet, relation: str, column: str, where: str) -> None:
    """A time column stored as text: every value must parse, and either all or none of them
    carry a time zone (mixing them leaves the naive ones ambiguous)."""
    con = sources.con
    view = relation
    try:
        described = con.execute(f"DESCRIBE SELECT * FROM {view}").fetchall()
    except duckdb.CatalogException:  # the source is not held as a raw view (read elsewhere)
        return
    types = {row[0]: str(row[1]) for row in described}
    if types.get(column, "").upper() not in ("VARCHAR", "TEXT"):
        return
    col = quote(column)
    text = f"trim(CAST({col} AS VARCHAR))"
    bad, example, zoned, naive = con.execute(
        f"SELECT count(*) FILTER (WHERE TRY_CAST({col} AS TIMESTAMPTZ) IS NULL), "
        f"any_value({col}) FILTER (WHERE TRY_CAST({col} AS TIMESTAMPTZ) IS NULL), "
        f"count(*) FILTER (WHERE regexp_matches({text}, '{_ZONE}')), "
        f"count(*) FILTER (WHERE NOT regexp_matches({text}, '{_ZONE}')) "
        f"FROM {view} WHERE {col} IS NOT NULL AND {text} <> ''"
    ).fetchall()[0]
    if bad:
        raise DataError(
            f"time column {where}: {bad} value(s) cannot be read as a time (for example "
            f"{example!r})",
            hint="write times as ISO 8601 (2024-03-01 12:00:00, optionally with +02:00), or "
            "remove those rows",
        )
    if zoned and naive:
        raise DataError(
            f"time column {where} mixes time zones: {zoned} value(s) carry a zone offset and "
            f"{naive} do not, so the latter are ambiguous",
            hint="write every time with its offset (or every time in UTC without one)",
        )


def check_unique_keys(sources: SourceSet, name: str) -> None:
    """An entity table read by a column label: one row per key (per key and time with history)."""
    spec = sources.spec.sources[name]
    if not spec.entity:
        raise DataError(
            f"source {name!r} has no `entity` column, so its rows cannot be matched to entities",
            hint=f"add `entity: <column>` to sources.{name}",
        )
    time = row_time(sources, name)
    keys = [quote(spec.entity)] + ([quote(time)] if time else [])
    rows = sources.con.execute(
        f"SELECT {', '.join(keys)}, count(*) AS n, count(*) OVER () AS dupes "
        f"FROM {sources.view(name)} GROUP BY ALL HAVING count(*) > 1 ORDER BY n DESC LIMIT 1"
    ).fetchall()
    if not rows:
        return
    key, count, dupes = rows[0][0], rows[0][-2], rows[0][-1]
    if time:
        raise DataError(
            f"source {name!r} has {dupes} (entity, time) pair(s) with more than one row, for "
            f"example {key!r} at {rows[0][1]} ({count} rows): the row valid then is ambiguous",
            hint=f"keep one row per {spec.entity} and {time}",
        )
    raise DataError(
        f"source {name!r} has {dupes} duplicated {spec.entity} key(s), for example {key!r} "
        f"({count} rows): the label of that entity is ambiguous",
        hint="keep one row per key, or give the source a `time` (valid from) column so the "
        "row valid at each cutoff is used",
    )


def check_event_types(label, sources: SourceSet) -> list[str]:
    """Every type in ``event_types`` should occur; none occurring is an error."""
    columns = sources.columns(label.source)
    if label.type_column not in columns:
        raise DataError(
            f"the label filters on {label.source}.{label.type_column}, which does not exist",
            hint=f"set `type_column` to one of: {', '.join(columns)}",
        )
    present = [
        str(row[0])
        for row in sources.con.execute(
            f"SELECT DISTINCT {quote(label.type_column)} FROM {sources.view(label.source)} "
            f"WHERE {quote(label.type_column)} IS NOT NULL ORDER BY 1 LIMIT 51"
        ).fetchall()
    ]
    missing = [t for t in label.event_types if t not in present]
    if not missing:
        return []
    listed = ", ".join(present[:50]) + (", ..." if len(present) > 50 else "")
    text = f"event type(s) {', '.join(map(repr, missing))} never occur in {label.source}."
    text += f"{label.type_column}"
    if len(missing) == len(label.event_types):
        raise DataError(
            f"the label's {text}, so every label would be the same",
            hint=f"types that occur: {listed or '(none)'}",
        )
    return [f"the label's {text} (types that occur: {listed})"]
