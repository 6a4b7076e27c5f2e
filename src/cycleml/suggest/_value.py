"""Value / lifetime value: the sum of an amount over the next N days (`sum_within` label)."""

from __future__ import annotations

from datetime import timedelta

from ..data import quote
from ._context import Context, entity_table_note, fit_horizon, history_note, pct, readiness
from ._conversion import exists_cutoff_sql
from ._features import plan_features, type_column, value_columns
from ._model import ProblemSuggestion
from ._shapes import SourceShape, ceil_day, weekly_cutoffs

HORIZON = 30
USEFULNESS = 0.9


def value_counts(
    ctx: Context, shape: SourceShape, column: str, days: int, cutoffs: list
) -> tuple[int, int, float]:
    """(entity-cutoff rows of entities existing at the cutoff; rows whose sum of ``column`` over
    [cutoff, cutoff + days) is not 0; the mean of that sum, 0 for no rows)."""
    if not cutoffs:
        return 0, 0, 0.0
    ent, ts, view, col = (
        quote(shape.entity or ""),
        quote(shape.time or ""),
        quote(shape.name),
        quote(column),
    )
    with ctx.cutoffs(cutoffs) as cut:
        row = ctx.sql(
            f"WITH elig AS ({exists_cutoff_sql(shape, cut)}), "
            f"d AS (SELECT {ent} AS e, CAST(CAST({ts} AS DATE) AS TIMESTAMP) AS t, "
            f"sum({col}) AS s FROM {view} WHERE {col} <> 0 GROUP BY 1, 2), "
            f"v AS (SELECT x.e, c.c, sum(x.s) AS s FROM {cut} c JOIN d x "
            f"ON x.t >= c.c AND x.t < c.c + to_days({days}) GROUP BY 1, 2) "
            "SELECT count(*), count(*) FILTER (WHERE coalesce(v.s, 0) <> 0), "
            "avg(coalesce(v.s, 0)) FROM elig LEFT JOIN v ON v.e = elig.e AND v.c = elig.c"
        )[0]
    return int(row[0]), int(row[1]), float(row[2] or 0.0)


def suggest_value(ctx: Context) -> list[ProblemSuggestion]:
    out = []
    for shape in ctx.shapes.values():
        if shape.error or not shape.is_event_log:
            continue
        for column in value_columns(shape)[:2]:
            suggestion = _value(ctx, shape, column)
            if suggestion is not None:
                out.append(suggestion)
    return out


def _value(ctx: Context, shape: SourceShape, column: str) -> ProblemSuggestion | None:
    view, col = quote(shape.name), quote(column)
    nonzero, total, amount = ctx.sql(
        f"SELECT count(*) FILTER (WHERE {col} <> 0), count(*), sum({col}) FROM {view}"
    )[0]
    if not nonzero:
        return None
    entity = shape.entity or ""
    evidence = [
        f"{shape.name}.{column} is not 0 on {nonzero:,} of {total:,} rows "
        f"({pct(nonzero, total)}); it sums to {float(amount):,.2f}"
    ]
    types_col = type_column(shape)
    if types_col:
        by_type = ctx.sql(
            f"SELECT CAST({quote(types_col)} AS VARCHAR), count(*) FROM {view} "
            f"WHERE {col} <> 0 GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 3"
        )
        evidence.append(
            f"rows with a {column}: " + ", ".join(f"{t} ({int(n):,})" for t, n in by_type)
        )
    span = shape.span_days
    days = fit_horizon(HORIZON, span)
    missing = []
    if days is None or days < HORIZON:
        missing.append(history_note(f"the {column} of the next N days", HORIZON, span))
    days = days or 7
    assert shape.first is not None and shape.last is not None
    start = ceil_day(shape.first) + timedelta(days=days)
    cutoffs = weekly_cutoffs(start, shape.last, days)
    examples, with_value, mean = value_counts(ctx, shape, column, days, cutoffs)
    # Rows with some value carry the signal; all rows having one is no weakness.
    status, score = readiness(examples, with_value, len(cutoffs))
    evidence.append(
        f"{pct(with_value, examples)} of {entity}-cutoff rows have a {column} in the next {days} "
        f"days ({with_value:,} of {examples:,}); the mean {days}-day {column} is {mean:,.2f}"
    )
    if examples and with_value / examples < 0.05:
        missing.append(
            f"only {pct(with_value, examples)} of rows have any {column}: a regression on "
            "mostly zeros is hard; consider the conversion problem first"
        )
    reuse, new = plan_features(ctx, entity, label_source=shape.name)
    missing += entity_table_note(ctx, entity)
    return ProblemSuggestion(
        family="value",
        name=f"{column}_{days}d",
        title=f"value: the sum of {shape.name}.{column} per {entity} over the next {days} days",
        source=shape.name,
        problem={
            "description": f"How much {column} will each {entity} bring in the next {days} days?",
            "entity": entity,
            "task": "regression",
            "label": {"kind": "sum_within", "source": shape.name, "column": column, "days": days},
            "cutoffs": {"every": "7d", "start": start.date()},
            "metric": {"name": "mae"},
            "features": reuse + list(new),
        },
        features=new,
        reuses=reuse,
        evidence=evidence,
        readiness={
            "status": status,
            "examples": examples,
            "with_value": with_value,
            "with_value_rate": round(with_value / examples, 4) if examples else 0.0,
            "mean": round(mean, 4),
            "cutoffs": len(cutoffs),
            "horizon_days": days,
            "history_days": round(span, 1),
        },
        missing=missing,
        figures={
            "column": column,
            "nonzero_rows": int(nonzero),
            "rows": int(total),
            "sum": float(amount),
            "horizon_days": days,
            "cutoff_start": start.date().isoformat(),
        },
        usefulness=USEFULNESS,
        score=USEFULNESS * score,
    )
