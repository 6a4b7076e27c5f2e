"""Demand forecast: a quantity per item per day (`forecast` label)."""

from __future__ import annotations

from datetime import timedelta

from ..data import quote
from ._context import Context, readiness
from ._features import plan_features, value_columns
from ._model import ProblemSuggestion
from ._shapes import SourceShape, ceil_day, weekly_cutoffs

ITEM_WORDS = ("item", "product", "sku", "store", "article", "shop", "location", "sku")
HORIZON = 7
MIN_COVERAGE = 0.5  # share of days an average series has rows on, for a time series
USEFULNESS = 0.85


def series_coverage(ctx: Context, shape: SourceShape) -> float:
    """The average share of the span's days on which a series (entity) has rows."""
    ent, ts, view = quote(shape.entity or ""), quote(shape.time or ""), quote(shape.name)
    days = max(1.0, shape.span_days + 1)
    value = ctx.sql(
        f"SELECT avg(n) FROM (SELECT count(DISTINCT CAST({ts} AS DATE)) AS n FROM {view} "
        f"WHERE {ent} IS NOT NULL AND {ts} IS NOT NULL GROUP BY {ent})"
    )[0][0]
    return min(1.0, float(value or 0) / days)


def suggest_forecast(ctx: Context) -> list[ProblemSuggestion]:
    out = []
    for shape in ctx.shapes.values():
        if shape.error or not shape.is_event_log:
            continue
        item_named = any(w in (shape.entity or "").lower() for w in ITEM_WORDS)
        coverage = series_coverage(ctx, shape)
        if not item_named and coverage < MIN_COVERAGE:
            continue
        out.append(_forecast(ctx, shape, coverage))
    return out


def _forecast(ctx: Context, shape: SourceShape, coverage: float) -> ProblemSuggestion:
    entity = shape.entity or ""
    values = value_columns(shape)
    column = values[0] if values else None
    span = shape.span_days
    missing = []
    if span < 8 * HORIZON:
        missing.append(
            f"a {HORIZON}-day forecast needs at least {8 * HORIZON} days of history (a few "
            f"weeks of seasonality before each cutoff); you have {span:.0f}"
        )
    assert shape.first is not None and shape.last is not None
    start = ceil_day(shape.first) + timedelta(days=28)
    cutoffs = weekly_cutoffs(start, shape.last, HORIZON)
    examples = shape.entities * len(cutoffs) * HORIZON
    status, score = readiness(examples, examples, len(cutoffs))
    what = f"the daily sum of {column}" if column else "the daily number of rows"
    label = {"kind": "forecast", "source": shape.name, "horizon": HORIZON}
    if column:
        label["column"] = column
    else:
        missing.append(f"no quantity column in {shape.name}: the forecast counts rows per day")
    reuse, new = plan_features(ctx, entity, label_source=shape.name)
    return ProblemSuggestion(
        family="forecast",
        name=f"{column or shape.name}_forecast_{HORIZON}d",
        title=f"demand forecast: {what} per {entity}, {HORIZON} days ahead",
        source=shape.name,
        problem={
            "description": f"What will {what} be per {entity} on each of the next {HORIZON} days?",
            "entity": entity,
            "task": "forecast",
            "label": label,
            "cutoffs": {"every": "7d", "start": start.date()},
            "metric": {"name": "mae"},
            "features": reuse + list(new),
        },
        features=new,
        reuses=reuse,
        evidence=[
            f"{shape.name} has {shape.timed_rows:,} rows for {shape.entities:,} {entity} over "
            f"{span:.0f} days",
            f"an average {entity} has rows on {coverage:.0%} of the days",
        ],
        readiness={
            "status": status,
            "examples": examples,
            "series": shape.entities,
            "cutoffs": len(cutoffs),
            "horizon_days": HORIZON,
            "history_days": round(span, 1),
        },
        missing=missing,
        figures={"coverage": round(coverage, 4), "column": column},
        usefulness=USEFULNESS,
        score=USEFULNESS * score,
    )
