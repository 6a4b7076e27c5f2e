"""Labels compiled to SQL: who is eligible at a cutoff, and what their label is.

Windows are half-open: features see [as_of - W, as_of), the label sees [as_of, as_of + days), so
no row belongs to both and none falls between them.
"""

from __future__ import annotations

from datetime import datetime

from ..data import SourceSet, quote
from ..errors import DataError
from ..spec import ColumnLabel, InactivityLabel, ProblemSpec
from ._groups import AS_OF, ENTITY

CUTOFFS = "_cutoffs"


def eligible_sql(problem: ProblemSpec, sources: SourceSet) -> str:
    """SELECT __entity, __as_of of the entities eligible at each row of table _cutoffs(__as_of)."""
    label = problem.label
    src = sources.view(label.source)
    spec = sources.spec.sources[label.source]
    ent = quote(spec.entity or problem.entity)
    if isinstance(label, InactivityLabel):
        ts = quote(_time_column(sources, label.source))
        days = label.active_days or label.days
        types = _event_type_filter(label, sources)
        return (
            f"SELECT DISTINCT e.{ent} AS {ENTITY}, c.{AS_OF} FROM {CUTOFFS} c JOIN {src} e "
            f"ON e.{ts} < c.{AS_OF} AND e.{ts} >= c.{AS_OF} - to_days({int(days)}){types}"
        )
    assert isinstance(label, ColumnLabel)
    visible = ""
    if spec.time:
        visible = f" AND r.{quote(spec.time)} < c.{AS_OF}"
    return (
        f"SELECT DISTINCT r.{ent} AS {ENTITY}, c.{AS_OF} FROM {CUTOFFS} c JOIN {src} r "
        f"ON r.{quote(label.column)} IS NOT NULL{visible}"
    )


def label_sql(problem: ProblemSpec, sources: SourceSet, spine: str) -> str:
    """SELECT __entity, __as_of, label for every row of ``spine``."""
    label = problem.label
    src = sources.view(label.source)
    spec = sources.spec.sources[label.source]
    ent = quote(spec.entity or problem.entity)
    if isinstance(label, InactivityLabel):
        ts = quote(_time_column(sources, label.source))
        types = _event_type_filter(label, sources)
        return (
            f"SELECT s.{ENTITY}, s.{AS_OF}, CAST(count(e.{ts}) = 0 AS INTEGER) AS label "
            f"FROM {spine} s LEFT JOIN {src} e ON e.{ent} = s.{ENTITY} "
            f"AND e.{ts} >= s.{AS_OF} AND e.{ts} < s.{AS_OF} + to_days({int(label.days)}){types} "
            f"GROUP BY s.{ENTITY}, s.{AS_OF}"
        )
    assert isinstance(label, ColumnLabel)
    return (
        f"SELECT s.{ENTITY}, s.{AS_OF}, any_value(r.{quote(label.column)}) AS label "
        f"FROM {spine} s JOIN {src} r ON r.{ent} = s.{ENTITY} GROUP BY s.{ENTITY}, s.{AS_OF}"
    )


def label_horizon_days(problem: ProblemSpec) -> int:
    label = problem.label
    return int(label.days) if isinstance(label, InactivityLabel) else 0


def data_end(problem: ProblemSpec, sources: SourceSet) -> datetime | None:
    """The time of the last row of the label's source (None when it has no time column)."""
    spec = sources.spec.sources[problem.label.source]
    if not spec.time:
        return None
    value = sources.con.execute(
        # A DATE column gives a date: make it a timestamp so it compares with the cutoffs.
        f"SELECT CAST(max({quote(spec.time)}) AS TIMESTAMP) FROM "
        f"{sources.view(problem.label.source)}"
    ).fetchall()[0][0]
    return value


def _time_column(sources: SourceSet, name: str) -> str:
    time = sources.spec.sources[name].time
    if not time:
        raise DataError(
            f"source {name!r} has no `time` column, but the label counts events over time",
            hint=f"add `time: <column>` to sources.{name}",
        )
    return time


def _event_type_filter(label: InactivityLabel, sources: SourceSet) -> str:
    if not label.event_types:
        return ""
    values = ", ".join("'" + t.replace("'", "''") + "'" for t in label.event_types)
    return f" AND e.{quote(label.type_column)} IN ({values})"
