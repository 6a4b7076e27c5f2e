"""Classification or regression on a column of an entity table (`column` label)."""

from __future__ import annotations

from ..data import quote
from ._context import Context, pct, readiness
from ._features import plan_features
from ._model import ProblemSuggestion
from ._shapes import SourceShape, id_like

TARGET_WORDS = (
    "churn",
    "convert",
    "upgrade",
    "plan",
    "tier",
    "label",
    "target",
    "outcome",
    "status",
    "segment",
    "score",
    "rating",
    "revenue",
    "ltv",
    "spend",
    "price",
    "fraud",
    "default",
    "class",
    "category",
)
MAX_CLASSES = 20
MIN_CLASS_ROWS = 10
MAX_PER_SOURCE = 3


def suggest_column(ctx: Context) -> list[ProblemSuggestion]:
    out = []
    for shape in ctx.shapes.values():
        if shape.error or not shape.is_entity_table:
            continue
        found = [s for c in _targets(shape) if (s := _column(ctx, shape, c)) is not None]
        found.sort(key=lambda s: -s.score)
        out.extend(found[:MAX_PER_SOURCE])
    return out


def _targets(shape: SourceShape) -> list[str]:
    return [
        c
        for c in shape.columns
        if c not in (shape.entity, shape.time)
        and not id_like(c)
        and shape.kind(c) in ("number", "boolean", "text")
        and shape.distinct.get(c, 0) >= 2
    ]


def _column(ctx: Context, shape: SourceShape, column: str) -> ProblemSuggestion | None:
    kind, distinct = shape.kind(column), shape.distinct[column]
    view, col = quote(shape.name), quote(column)
    labelled = shape.rows - shape.nulls.get(column, 0)
    entity = shape.entity or ""
    if kind == "boolean" or distinct == 2 or (kind == "text" and distinct <= MAX_CLASSES):
        classes = ctx.sql(
            f"SELECT CAST({col} AS VARCHAR), count(*) FROM {view} WHERE {col} IS NOT NULL "
            "GROUP BY 1 ORDER BY 2 DESC, 1"
        )
        smallest = min(int(n) for _, n in classes)
        if smallest < MIN_CLASS_ROWS:
            return None
        task = "binary" if len(classes) == 2 else "multiclass"
        balance = ", ".join(f"{v} {pct(int(n), labelled)}" for v, n in classes[:5])
        what = f"{len(classes)} classes: {balance}"
        metric = {"name": "roc_auc" if task == "binary" else "accuracy"}
        minority = smallest
        stats = {
            "classes": len(classes),
            "class_counts": {str(v): int(n) for v, n in classes},
            "smallest_class": smallest,
        }
    elif kind == "number" and distinct > MAX_CLASSES:
        mean, std = ctx.sql(f"SELECT avg({col}), stddev_samp({col}) FROM {view}")[0]
        task, metric, minority = "regression", {"name": "mae"}, labelled
        what = f"numbers with {distinct:,} distinct values, mean {mean:,.2f}, std {std:,.2f}"
        stats = {"mean": float(mean), "std": float(std or 0)}
    else:
        return None
    reuse, new = plan_features(ctx, entity, label_source=shape.name, target=column)
    if not reuse and not new:
        return None  # nothing to predict it from
    status, score = readiness(labelled, minority, None, needs_cutoffs=False)
    useful = any(w in column.lower() for w in TARGET_WORDS)
    usefulness = 0.6 if useful else 0.4
    missing = []
    if task == "multiclass":
        missing.append("multiclass training comes with a later cycleml version (the spec is ready)")
    if shape.nulls.get(column):
        missing.append(
            f"{shape.nulls[column]:,} {entity} have no {column}; they are left out of training"
        )
    return ProblemSuggestion(
        family="column",
        name=f"{shape.name}_{column}",
        title=f"{'regression' if task == 'regression' else 'classification'}: "
        f"{shape.name}.{column} per {entity}",
        source=shape.name,
        problem={
            "description": f"Predict {column} of a {entity} from what else is known about it.",
            "entity": entity,
            "task": task,
            "label": {"kind": "column", "source": shape.name, "column": column},
            "metric": metric,
            "features": reuse + list(new),
        },
        features=new,
        reuses=reuse,
        evidence=[
            f"{shape.name} has one row per {entity} ({shape.rows:,} rows)",
            f"{column} is known for {labelled:,} of them: {what}",
        ],
        readiness={"status": status, "examples": labelled, "task": task, **stats},
        missing=missing,
        figures={"labelled": labelled, "distinct": distinct, **stats},
        usefulness=usefulness,
        score=usefulness * score,
    )
