"""The feature groups a suggested problem uses: existing groups that fit, else new ones."""

from __future__ import annotations

from typing import Any

from ..spec import FeatureGroupSpec
from ._context import Context
from ._shapes import SourceShape, id_like

WINDOWS = (7, 30, 90)
VALUE_WORDS = (
    "value",
    "amount",
    "revenue",
    "price",
    "total",
    "spend",
    "sales",
    "sale",
    "quantity",
    "qty",
    "units",
    "cost",
    "gmv",
    "payment",
    "profit",
    "demand",
)


def value_columns(shape: SourceShape) -> list[str]:
    """Numeric columns named like an amount or a quantity."""
    out = []
    for column in shape.columns:
        if (
            column in (shape.entity, shape.time)
            or id_like(column)
            or shape.kind(column) != "number"
        ):
            continue
        words = column.lower().replace("-", "_").split("_")
        if any(w in VALUE_WORDS or w.rstrip("s") in VALUE_WORDS for w in words):
            out.append(column)
    return out


def type_column(shape: SourceShape) -> str | None:
    """The column holding the kind of each event (``event_type`` first), or None."""
    candidates = [
        c
        for c in shape.columns
        if c not in (shape.entity, shape.time)
        and shape.kind(c) == "text"
        and not id_like(c)
        and 2 <= shape.distinct.get(c, 0) <= 50
    ]
    if "event_type" in candidates:
        return "event_type"
    for word in ("type", "event", "action", "kind", "name"):
        for c in candidates:
            if word in c.lower():
                return c
    return None


def plan_features(
    ctx: Context, entity: str, *, label_source: str, target: str | None = None
) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """(existing groups to reuse, new groups to add) for a problem about ``entity``.

    A group fits when its source's entity column is ``entity``; for a column label, a group of
    the label's source that reads the target column does not (that would be leakage)."""
    reuse: list[str] = []
    for name, group in ctx.spec.features.items():
        source = ctx.spec.sources.get(group.source)
        if source is None or source.entity != entity:
            continue
        if target and group.source == label_source and target in _reads(group):
            continue
        shape = ctx.shapes.get(group.source)
        if shape is None or shape.error:
            continue
        reuse.append(name)
    new: dict[str, dict[str, Any]] = {}
    covered = {ctx.spec.features[n].source for n in reuse}
    taken = set(ctx.spec.features)
    # Entity-table features are named after their column: a new group must not repeat one.
    used_columns = {c for n in reuse for c in ctx.spec.features[n].columns}
    used_columns |= {
        f"{c}_{p}" for n in reuse for c, ps in ctx.spec.features[n].dates.items() for p in ps
    }
    shapes = sorted(ctx.shapes.values(), key=lambda s: s.name != label_source)
    for shape in shapes:
        if shape.error or shape.entity != entity or shape.name in covered or not shape.rows:
            continue
        if reuse and shape.name != label_source:
            continue  # existing groups already describe the entity; add only the label source
        group = _propose(shape, target if shape.name == label_source else None, used_columns)
        if group is None:
            continue
        name = _free_name(f"{shape.name}_{'activity' if 'windows' in group else 'profile'}", taken)
        existing = _same_group(ctx, group)
        if existing:
            reuse.append(existing)
            continue
        taken.add(name)
        new[name] = group
    return reuse, new


def _reads(group: FeatureGroupSpec) -> set[str]:
    cols = set(group.columns) | set(group.dates) | set(group.by)
    cols |= {c for _, c in group.aggregate_items()}
    return cols


def _propose(shape: SourceShape, target: str | None, used: set[str]) -> dict[str, Any] | None:
    if shape.is_event_log and target is None:
        windows = [f"{w}d" for w in WINDOWS if w <= max(shape.span_days, 1)] or ["7d"]
        aggregate: dict[str, Any] = {"count": "*"}
        values = value_columns(shape)
        if values:
            aggregate["sum"] = values[0] if len(values) == 1 else values[:2]
        group: dict[str, Any] = {"source": shape.name, "windows": windows, "aggregate": aggregate}
        return group | {"recency": True}
    columns, dates = [], {}
    for column in shape.columns:
        if column in (shape.entity, target) or column in used or id_like(column):
            continue
        kind = shape.kind(column)
        if kind == "time":
            if not {f"{column}_month", f"{column}_days_since"} & used:
                dates[column] = ["month", "days_since"]
        elif kind in ("number", "boolean") or (
            kind == "text" and 2 <= shape.distinct.get(column, 0) <= 50
        ):
            columns.append(column)
    if not columns and not dates:
        return None
    used.update(columns)
    used.update(f"{c}_{p}" for c, parts in dates.items() for p in parts)
    group = {"source": shape.name}
    if columns:
        group["columns"] = columns
    if dates:
        group["dates"] = dates
    return group


def _same_group(ctx: Context, group: dict[str, Any]) -> str | None:
    wanted = FeatureGroupSpec.model_validate(group)
    for name, existing in ctx.spec.features.items():
        if existing == wanted:
            return name
    return None


def _free_name(name: str, taken: set[str]) -> str:
    if name not in taken:
        return name
    i = 2
    while f"{name}_{i}" in taken:
        i += 1
    return f"{name}_{i}"
