"""Conversion: an event of a given type happens within N days (`event_within` label)."""

from __future__ import annotations

from datetime import timedelta

from ..data import quote, sql_literal
from ._context import (
    Context,
    binary_metric,
    entity_table_note,
    fit_horizon,
    history_note,
    noun,
    pct,
    readiness,
)
from ._features import plan_features, type_column
from ._model import ProblemSuggestion
from ._shapes import SourceShape, ceil_day, weekly_cutoffs

GOAL_WORDS = (
    "purchase",
    "order",
    "buy",
    "checkout",
    "subscri",
    "upgrade",
    "signup",
    "sign_up",
    "register",
    "convert",
    "conversion",
    "pay",
    "book",
    "trial",
    "renew",
    "deposit",
    "donat",
    "install",
    "activat",
)
HORIZON = 30
MAX_PER_SOURCE = 3
MAX_ROW_SHARE = 0.2  # an event type making up more of the rows than this is activity, not a goal


def exists_cutoff_sql(shape: SourceShape, cut: str) -> str:
    """(e, c): every entity with a row before cutoff c (it exists at c)."""
    ent, ts, view = quote(shape.entity or ""), quote(shape.time or ""), quote(shape.name)
    return (
        f"SELECT f.e, c.c FROM {cut} c JOIN (SELECT {ent} AS e, min({ts}) AS f FROM {view} "
        f"WHERE {ent} IS NOT NULL AND {ts} IS NOT NULL GROUP BY 1) f ON f.f < c.c"
    )


def event_types(ctx: Context, shape: SourceShape, column: str) -> list[tuple[str, int, int]]:
    """(type, rows, entities) of each event type, most rows first."""
    ent, view, col = quote(shape.entity or ""), quote(shape.name), quote(column)
    rows = ctx.sql(
        f"SELECT CAST({col} AS VARCHAR), count(*), count(DISTINCT {ent}) FROM {view} "
        f"WHERE {col} IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1"
    )
    return [(str(t), int(n), int(e)) for t, n, e in rows]


def conversion_counts(
    ctx: Context, shape: SourceShape, column: str, event: str, days: int, cutoffs: list
) -> tuple[int, int]:
    """(entity-cutoff rows of entities existing at the cutoff; of those, rows with an event of
    type ``event`` in [cutoff, cutoff + days))."""
    if not cutoffs:
        return 0, 0
    ent, ts, view = quote(shape.entity or ""), quote(shape.time or ""), quote(shape.name)
    with ctx.cutoffs(cutoffs) as cut:
        row = ctx.sql(
            f"WITH elig AS ({exists_cutoff_sql(shape, cut)}), "
            f"d AS (SELECT DISTINCT {ent} AS e, CAST(CAST({ts} AS DATE) AS TIMESTAMP) AS t "
            f"FROM {view} WHERE CAST({quote(column)} AS VARCHAR) = {sql_literal(event)}), "
            f"hit AS (SELECT DISTINCT x.e, c.c FROM {cut} c JOIN d x "
            f"ON x.t >= c.c AND x.t < c.c + to_days({days})) "
            "SELECT count(*), count(h.e) FROM elig LEFT JOIN hit h ON h.e = elig.e AND h.c = elig.c"
        )[0]
    return int(row[0]), int(row[1])


def suggest_conversion(ctx: Context) -> list[ProblemSuggestion]:
    out = []
    for shape in ctx.shapes.values():
        if shape.error or not shape.is_event_log:
            continue
        column = type_column(shape)
        if column is None:
            continue
        types = event_types(ctx, shape, column)
        total = sum(n for _, n, _ in types)
        goals = [t for t in types if _is_goal(t[0])]
        others = [t for t in types if not _is_goal(t[0]) and t[1] <= MAX_ROW_SHARE * total]
        for event, rows, entities in (goals + others)[:MAX_PER_SOURCE]:
            out.append(_conversion(ctx, shape, column, event, rows, entities, total))
    return out


def _is_goal(event: str) -> bool:
    lowered = event.lower()
    return any(word in lowered for word in GOAL_WORDS)


def _conversion(
    ctx: Context,
    shape: SourceShape,
    column: str,
    event: str,
    rows: int,
    entities: int,
    total: int,
) -> ProblemSuggestion:
    entity = shape.entity or ""
    span = shape.span_days
    days = fit_horizon(HORIZON, span)
    missing = []
    if days is None or days < HORIZON:
        missing.append(history_note(f"{event} within N days", HORIZON, span))
    days = days or 7
    assert shape.first is not None and shape.last is not None
    start = ceil_day(shape.first) + timedelta(days=days)
    cutoffs = weekly_cutoffs(start, shape.last, days)
    examples, positives = conversion_counts(ctx, shape, column, event, days, cutoffs)
    status, score = readiness(examples, min(positives, examples - positives), len(cutoffs))
    rate = positives / examples if examples else 0.0
    goal = _is_goal(event)
    usefulness = 0.95 if goal else 0.6
    label = {"kind": "event_within", "source": shape.name, "event_types": [event], "days": days}
    if column != "event_type":
        label["type_column"] = column
    reuse, new = plan_features(ctx, entity, label_source=shape.name)
    missing += entity_table_note(ctx, entity)
    slug = "".join(ch if ch.isalnum() else "_" for ch in event.lower()).strip("_") or "event"
    return ProblemSuggestion(
        family="conversion",
        name=f"{slug}_within_{days}d",
        title=f"conversion: a {event!r} event by a {noun(entity)} within {days} days",
        source=shape.name,
        problem={
            "description": f"Which {noun(entity, True)} will have a {event!r} event in the next "
            f"{days} days?",
            "entity": entity,
            "task": "binary",
            "label": label,
            "cutoffs": {"every": "7d", "start": start.date()},
            "metric": binary_metric(rate),
            "features": reuse + list(new),
        },
        features=new,
        reuses=reuse,
        evidence=[
            f"{shape.name}.{column} = {event!r} on {rows:,} of {total:,} rows "
            f"({pct(rows, total)}), by {entities:,} of {shape.entities:,} {entity}",
            f"{pct(positives, examples)} of {noun(entity, True)} have a {event!r} event in the "
            f"{days} days after a cutoff ({positives:,} of {examples:,} {entity}-cutoff rows)",
        ],
        readiness={
            "status": status,
            "examples": examples,
            "positives": positives,
            "positive_rate": round(rate, 4),
            "cutoffs": len(cutoffs),
            "horizon_days": days,
            "history_days": round(span, 1),
        },
        missing=missing,
        figures={
            "type_column": column,
            "event_type": event,
            "event_rows": rows,
            "event_entities": entities,
            "rows": total,
            "horizon_days": days,
            "cutoff_start": start.date().isoformat(),
        },
        usefulness=usefulness,
        score=usefulness * score,
    )
