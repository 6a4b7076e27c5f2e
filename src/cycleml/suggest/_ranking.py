"""Ranking / click-through: impressions with a clicked flag (`click` label)."""

from __future__ import annotations

from ..data import quote
from ._context import Context, binary_metric, pct, readiness
from ._features import plan_features
from ._model import ProblemSuggestion
from ._shapes import SourceShape, id_like

CLICK_WORDS = ("click", "tap", "open", "select", "engag", "convert", "like", "accept")
USEFULNESS = 0.85


def click_columns(shape: SourceShape) -> list[str]:
    """Boolean (or 0/1) columns named like a click."""
    out = []
    for column in shape.columns:
        if column in (shape.entity, shape.time):
            continue
        kind = shape.kind(column)
        two_valued = kind == "number" and shape.distinct.get(column, 0) == 2
        if (kind == "boolean" or two_valued) and any(w in column.lower() for w in CLICK_WORDS):
            out.append(column)
    return out


def item_columns(shape: SourceShape) -> list[str]:
    """Id-like columns other than the entity whose values repeat (items shown many times)."""
    return [
        c
        for c in shape.columns
        if c not in (shape.entity, shape.time)
        and id_like(c)
        and 1 < shape.distinct.get(c, 0) < shape.rows
    ]


def suggest_ranking(ctx: Context) -> list[ProblemSuggestion]:
    out = []
    for shape in ctx.shapes.values():
        if shape.error or not shape.entity or not shape.time or not shape.rows:
            continue
        clicks, items = click_columns(shape), item_columns(shape)
        if clicks and items:
            out.append(_ranking(ctx, shape, items[0], clicks[0]))
    return out


def _ranking(ctx: Context, shape: SourceShape, item: str, click: str) -> ProblemSuggestion | None:
    view, col = quote(shape.name), quote(click)
    ent, it = quote(shape.entity or ""), quote(item)
    rows, clicked, items, entities = ctx.sql(
        f"SELECT count(*), count(*) FILTER (WHERE CAST({col} AS INTEGER) = 1), "
        f"count(DISTINCT {it}), count(DISTINCT {ent}) FROM {view} WHERE {col} IS NOT NULL"
    )[0]
    rows, clicked = int(rows), int(clicked)
    rate = clicked / rows if rows else 0.0
    status, score = readiness(rows, min(clicked, rows - clicked), None, needs_cutoffs=False)
    entity = shape.entity or ""
    reuse, new = plan_features(ctx, entity, label_source=shape.name)
    missing = []
    if not any(ctx.spec.sources[s].entity == item for s in ctx.spec.sources):
        missing.append(
            f"no item table keyed by {item}: describing items (category, price) helps ranking"
        )
    else:
        missing.append(
            f"features of the {item} itself are not joined yet (feature groups follow the "
            f"problem's entity, {entity})"
        )
    return ProblemSuggestion(
        family="ranking",
        name=f"{click}_{shape.name}" if click != "clicked" else f"click_{shape.name}",
        title=f"ranking: will a {entity} click the {item} shown in {shape.name}",
        source=shape.name,
        problem={
            "description": f"Which {item} will a {entity} click? (rank by the probability)",
            "entity": entity,
            "task": "ranking",
            "label": {"kind": "click", "source": shape.name, "item": item, "column": click},
            "metric": binary_metric(rate),
            "features": reuse + list(new),
        },
        features=new,
        reuses=reuse,
        evidence=[
            f"{shape.name} has {rows:,} impressions of {int(items):,} {item} to "
            f"{int(entities):,} {entity}",
            f"{clicked:,} ({pct(clicked, rows)}) have {click} = true",
        ],
        readiness={
            "status": status,
            "examples": rows,
            "positives": clicked,
            "positive_rate": round(rate, 4),
            "items": int(items),
        },
        missing=missing,
        figures={"rows": rows, "clicks": clicked, "items": int(items), "item": item},
        usefulness=USEFULNESS,
        score=USEFULNESS * score,
    )
