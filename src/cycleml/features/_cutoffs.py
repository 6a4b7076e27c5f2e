"""The cutoffs of a training set: a schedule (``every`` from ``start`` to ``end``) or a table of
(entity, cutoff) rows. A cutoff whose label window runs past the end of the data is left out,
and a note says how many and why."""

from __future__ import annotations

from datetime import datetime, timedelta

import pyarrow as pa

from ..data import SourceSet, quote
from ..errors import DataError
from ..spec import CutoffSchedule, CutoffTable, ProblemSpec, parse_duration
from ._groups import AS_OF, ENTITY
from ._labels import check_text_times, text_relation, window_text


def as_datetime(value) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    return datetime(value.year, value.month, value.day)


def _past_the_data(
    name: str, window: timedelta, end_of_data: datetime, first: datetime, what: str
) -> DataError:
    latest = end_of_data - window
    return DataError(
        f"problem {name!r}: no {what} has a complete {window_text(window)} label window: the "
        f"data ends {end_of_data:%Y-%m-%d %H:%M}, so the last usable cutoff is "
        f"{latest:%Y-%m-%d %H:%M}, before the first one ({first:%Y-%m-%d %H:%M})",
        hint=f"move `cutoffs.start` to {latest:%Y-%m-%d} or earlier, shorten the label "
        "horizon, or add newer data",
    )


def schedule_cutoffs(
    name: str, schedule: CutoffSchedule, end_of_data: datetime | None, window: timedelta
) -> tuple[list[datetime], list[str]]:
    """The cutoffs of ``schedule`` whose label window is complete in the data."""
    notes: list[str] = []
    step = parse_duration(schedule.every)
    start = as_datetime(schedule.start)
    last = as_datetime(schedule.end) if schedule.end else None
    if end_of_data is None:
        if last is None:
            raise DataError(
                f"problem {name!r}: the label's source has no rows with a time, so a schedule "
                "without `end` has no end",
                hint="add `end:` to the cutoffs, or check that the source has rows and a `time`",
            )
        limit, final = last, last
    else:
        limit = end_of_data - window
        # Without an `end`, the schedule runs to the end of the data: the cutoffs in its last
        # label window are left out (and counted), just as those past an explicit `end` are.
        final = last or end_of_data
    stop = min(last, limit) if last else limit
    cutoffs, dropped = [], 0
    current = start
    while current <= final:
        if current <= stop:
            cutoffs.append(current)
        else:
            dropped += 1
        current += step
    if dropped and end_of_data is not None:
        notes.append(
            f"left out {dropped} cutoff(s) after {stop:%Y-%m-%d}: their {window_text(window)} "
            f"label window runs past the end of the data ({end_of_data:%Y-%m-%d %H:%M})"
        )
    if not cutoffs:
        assert end_of_data is not None
        raise _past_the_data(name, window, end_of_data, start, f"cutoff from {start:%Y-%m-%d}")
    return cutoffs, notes


def table_spine(
    name: str,
    problem: ProblemSpec,
    table: CutoffTable,
    sources: SourceSet,
    end_of_data: datetime | None,
    window: timedelta,
) -> tuple[pa.Table, list[str]]:
    """One spine row (entity, cutoff) per row of the cutoff table with a complete label window."""
    notes: list[str] = []
    spec = sources.spec.sources[table.source]
    entity = table.entity or spec.entity or problem.entity
    columns = sources.check(table.source)
    for role, column in (("entity", entity), ("time", table.time)):
        if column not in columns:
            raise DataError(
                f"cutoff table {table.source!r} has no {role} column {column!r}",
                hint=f"columns are: {', '.join(columns)}; fix `problems.{name}.cutoffs`",
            )
    view = sources.view(table.source)
    where = f"{table.source}.{table.time}"
    time = quote(table.time)
    check_text_times(sources, text_relation(sources, table.source), table.time, where)
    if columns[table.time].upper() in ("VARCHAR", "TEXT"):
        time = f"timezone('UTC', CAST({time} AS TIMESTAMPTZ))"
    elif not columns[table.time].upper().startswith(("TIMESTAMP", "DATE")):
        raise DataError(
            f"cutoff table column {where} holds {columns[table.time]}, not times",
            hint="name a timestamp or date column in `cutoffs.time`",
        )
    rows = sources.con.sql(
        f"SELECT CAST({quote(entity)} AS VARCHAR) AS {ENTITY}, CAST({time} AS TIMESTAMP) "
        f"AS {AS_OF}, count(*) AS n FROM {view} WHERE {quote(entity)} IS NOT NULL "
        f"AND {quote(table.time)} IS NOT NULL GROUP BY ALL ORDER BY {AS_OF}, {ENTITY}"
    ).to_arrow_table()
    if rows.num_rows == 0:
        raise DataError(
            f"problem {name!r}: the cutoff table {table.source!r} has no rows with an entity "
            "and a time",
            hint=f"check the data of {table.source!r}",
        )
    repeated = sum(n - 1 for n in rows.column("n").to_pylist())
    if repeated:
        notes.append(f"{repeated} repeated (entity, cutoff) row(s) of {table.source!r} kept once")
    spine = rows.select([ENTITY, AS_OF])
    if end_of_data is not None:
        limit = end_of_data - window
        keep = [t <= limit for t in spine.column(AS_OF).to_pylist()]
        dropped = keep.count(False)
        if dropped == len(keep):
            first = min(spine.column(AS_OF).to_pylist())
            raise _past_the_data(name, window, end_of_data, first, "row of the cutoff table")
        if dropped:
            spine = spine.filter(pa.array(keep))
            notes.append(
                f"left out {dropped} of {len(keep)} cutoff row(s) after {limit:%Y-%m-%d %H:%M}: "
                f"their {window_text(window)} label window runs past the end of the data "
                f"({end_of_data:%Y-%m-%d %H:%M})"
            )
    return spine, notes
