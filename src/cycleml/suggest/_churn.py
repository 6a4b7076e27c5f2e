"""Churn: an entity of an event log stops producing events (`inactivity` label)."""

from __future__ import annotations

from datetime import timedelta

from ..data import quote
from ._context import (
    HORIZONS,
    Context,
    binary_metric,
    entity_table_note,
    fit_horizon,
    history_note,
    noun,
    pct,
    readiness,
)
from ._features import plan_features
from ._forecast import MIN_COVERAGE, series_coverage
from ._model import ProblemSuggestion
from ._shapes import SourceShape, ceil_day, weekly_cutoffs

USEFULNESS = 1.0


def return_gap_p90(ctx: Context, shape: SourceShape) -> tuple[float | None, int]:
    """The 90th percentile (linear interpolation) of the days between an entity's consecutive
    active days, and how many such gaps there are."""
    ent, ts, view = quote(shape.entity or ""), quote(shape.time or ""), quote(shape.name)
    row = ctx.sql(
        f"WITH d AS (SELECT DISTINCT {ent} AS e, CAST({ts} AS DATE) AS day FROM {view} "
        f"WHERE {ent} IS NOT NULL AND {ts} IS NOT NULL), "
        "g AS (SELECT day - lag(day) OVER (PARTITION BY e ORDER BY day) AS gap FROM d) "
        "SELECT quantile_cont(gap, 0.9), count(gap) FROM g WHERE gap IS NOT NULL"
    )[0]
    return (float(row[0]) if row[0] is not None else None), int(row[1])


def churn_counts(ctx: Context, shape: SourceShape, days: int, cutoffs: list) -> tuple[int, int]:
    """(entity-cutoff rows eligible: an event in the `days` before the cutoff; of those, rows
    with no event in [cutoff, cutoff + days))."""
    if not cutoffs:
        return 0, 0
    ent, ts, view = quote(shape.entity or ""), quote(shape.time or ""), quote(shape.name)
    # Cutoffs are midnights, so comparing days is exact, and there are far fewer active
    # (entity, day) pairs than rows. (Two ASOF joins over entities x cutoffs measured slower
    # than these range joins on the demo product at 1.2M events.)
    with ctx.cutoffs(cutoffs) as cut:
        row = ctx.sql(
            f"WITH d AS MATERIALIZED (SELECT DISTINCT {ent} AS e, "
            f"CAST(CAST({ts} AS DATE) AS TIMESTAMP) AS t "
            f"FROM {view} WHERE {ent} IS NOT NULL AND {ts} IS NOT NULL), "
            f"elig AS (SELECT DISTINCT x.e, c.c FROM {cut} c JOIN d x "
            f"ON x.t < c.c AND x.t >= c.c - to_days({days})), "
            f"act AS (SELECT DISTINCT x.e, c.c FROM {cut} c JOIN d x "
            f"ON x.t >= c.c AND x.t < c.c + to_days({days})) "
            "SELECT count(*), count(*) FILTER (WHERE a.e IS NULL) FROM elig "
            "LEFT JOIN act a ON a.e = elig.e AND a.c = elig.c"
        )[0]
    return int(row[0]), int(row[1])


def suggest_churn(ctx: Context) -> list[ProblemSuggestion]:
    # A time series (rows on most days for every entity) is forecast, not churn.
    logs = [
        s
        for s in ctx.shapes.values()
        if not s.error and s.is_event_log and series_coverage(ctx, s) < MIN_COVERAGE
    ]
    out = []
    for shape in logs:
        # Churn is about the main activity log of an entity (the one with the most rows);
        # a secondary log (impressions, notifications) gets a lower rank.
        main = max((s for s in logs if s.entity == shape.entity), key=lambda s: s.timed_rows)
        out.append(_churn(ctx, shape, USEFULNESS if main is shape else USEFULNESS / 2))
    return out


def _churn(ctx: Context, shape: SourceShape, usefulness: float) -> ProblemSuggestion:
    entity = shape.entity or ""
    p90, gaps = return_gap_p90(ctx, shape)
    # The horizon: long enough that inactivity is unusual for an active entity (most returns
    # come sooner), 30 days when returns are too few to tell.
    wanted = next((h for h in HORIZONS if p90 is not None and h >= p90), HORIZONS[-1])
    if p90 is None:
        wanted = 30
    span = shape.span_days
    days = fit_horizon(wanted, span)
    missing = []
    if days is None or days < wanted:
        missing.append(history_note("churn", wanted, span))
    days = days or 7
    assert shape.first is not None and shape.last is not None
    start = ceil_day(shape.first) + timedelta(days=days)
    cutoffs = weekly_cutoffs(start, shape.last, days)
    examples, churned = churn_counts(ctx, shape, days, cutoffs)
    status, score = readiness(examples, min(churned, examples - churned), len(cutoffs))
    rate = churned / examples if examples else 0.0
    evidence = [
        f"{shape.name} has {shape.timed_rows:,} timestamped rows for {shape.entities:,} "
        f"{entity} over {span:.0f} days",
    ]
    if p90 is not None:
        evidence.append(
            f"90% of the returns of a {noun(entity)} come within {p90:.0f} day(s) "
            f"({gaps:,} gaps between active days), so {days} days without an event is unusual"
        )
    evidence.append(
        f"{pct(churned, examples)} of active {noun(entity, True)} go {days} days without an event "
        f"({churned:,} of {examples:,} {entity}-cutoff rows)"
    )
    reuse, new = plan_features(ctx, entity, label_source=shape.name)
    if not reuse and not new:
        missing.append("no feature group fits: features would be limited to nothing")
    missing += entity_table_note(ctx, entity)
    problem = {
        "description": f"Which active {noun(entity, True)} will have no {shape.name} in the "
        f"next {days} days?",
        "entity": entity,
        "task": "binary",
        "label": {"kind": "inactivity", "source": shape.name, "days": days},
        "cutoffs": {"every": "7d", "start": start.date()},
        "metric": binary_metric(rate),
        "features": reuse + list(new),
    }
    return ProblemSuggestion(
        family="churn",
        name=f"churn_{days}d" if shape.name == "events" else f"{shape.name}_churn_{days}d",
        title=f"churn: {noun(entity, True)} inactive for {days} days in {shape.name}",
        source=shape.name,
        problem=problem,
        features=new,
        reuses=reuse,
        evidence=evidence,
        readiness={
            "status": status,
            "examples": examples,
            "positives": churned,
            "positive_rate": round(rate, 4),
            "cutoffs": len(cutoffs),
            "horizon_days": days,
            "history_days": round(span, 1),
        },
        missing=missing,
        figures={
            "rows": shape.timed_rows,
            "entities": shape.entities,
            "span_days": round(span, 4),
            "return_gap_p90_days": p90,
            "horizon_days": days,
            "cutoff_start": start.date().isoformat(),
        },
        usefulness=usefulness,
        score=usefulness * score,
    )
