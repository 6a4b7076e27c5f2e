"""Propose the problems the sources can support, ranked by readiness and usefulness."""

from __future__ import annotations

from pathlib import Path

from ..data import SourceSet
from ..spec import ProblemSpec, Spec
from ._churn import suggest_churn
from ._column import suggest_column
from ._context import Context
from ._conversion import suggest_conversion
from ._forecast import suggest_forecast
from ._model import FAMILIES, ProblemSuggestion, SuggestionReport
from ._ranking import suggest_ranking
from ._shapes import SourceShape, measure
from ._value import suggest_value

_FINDERS = (
    suggest_churn,
    suggest_conversion,
    suggest_value,
    suggest_forecast,
    suggest_ranking,
    suggest_column,
)
_STATUS_ORDER = {"ready": 0, "limited": 1, "not ready": 2}


def suggest_problems(
    spec: Spec, project_dir: str | Path, *, threads: int | None = None
) -> SuggestionReport:
    """Measure every source in DuckDB and propose the problems its data supports: churn,
    conversion, value, demand forecast, ranking and column problems, numbered 1..N from the
    most ready and useful. Problems already in the spec are listed with ``defined_as`` set."""
    with SourceSet(spec, project_dir, threads=threads or spec.training.threads) as sources:
        shapes = {name: measure(sources, name) for name in spec.sources}
        ctx = Context(spec, sources, shapes)
        found: list[ProblemSuggestion] = []
        for finder in _FINDERS:
            found.extend(finder(ctx))
    _name_and_match(spec, found)
    found.sort(
        key=lambda s: (_STATUS_ORDER.get(s.status, 3), -s.score, FAMILIES.index(s.family), s.name)
    )
    for rank, suggestion in enumerate(found, start=1):
        suggestion.rank = rank
    return SuggestionReport(
        found,
        notes=_notes(shapes, found),
        sources={name: shape.to_dict() for name, shape in shapes.items()},
    )


def _name_and_match(spec: Spec, found: list[ProblemSuggestion]) -> None:
    """Mark suggestions whose label a problem of the spec already has; give the others names
    that clash with nothing."""
    taken = set(spec.problems)
    for suggestion in found:
        label = ProblemSpec.model_validate(suggestion.problem).label
        same = [name for name, p in spec.problems.items() if p.label == label]
        if same:
            suggestion.defined_as = suggestion.name if suggestion.name in same else same[0]
            if suggestion.name not in same:
                suggestion.name = _free(suggestion.name, taken)
        else:
            suggestion.name = _free(suggestion.name, taken)
        taken.add(suggestion.name)


def _free(name: str, taken: set[str]) -> str:
    if name not in taken:
        return name
    i = 2
    while f"{name}_{i}" in taken:
        i += 1
    return f"{name}_{i}"


def _notes(shapes: dict[str, SourceShape], found: list[ProblemSuggestion]) -> list[str]:
    notes: list[str] = []
    used = {s.source for s in found}
    for name, shape in shapes.items():
        if shape.error:
            notes.append(f"{name}: left out: {shape.error}")
            continue
        if not shape.rows:
            notes.append(f"{name}: has no rows, so it supports no problem")
            continue
        if not shape.entity:
            ids = shape.entity_candidates()
            notes.append(
                f"{name}: no entity column, so no prediction can say whom it is about; "
                + (
                    f"{', '.join(ids)} look(s) like an identifier: declare it as "
                    f"`entity:` in sources.{name}"
                    if ids
                    else "none is declared and no column is named like an identifier "
                    "(id, *_id, *_key)"
                )
            )
        if not shape.time:
            times = shape.time_candidates()
            notes.append(
                f"{name}: no time column, so no problem over time (churn, conversion, value, "
                "demand forecast, ranking); "
                + (
                    f"it has timestamp column(s) {', '.join(times)}: declare one as `time:` "
                    f"in sources.{name}"
                    if times
                    else "none is declared and no column holds timestamps"
                )
            )
        elif shape.entity and not shape.is_event_log and not shape.is_entity_table:
            notes.append(f"{name}: too few timestamped rows per {shape.entity} for an event log")
        if shape.entity and name not in used and shape.is_entity_table:
            notes.append(
                f"{name}: no column works as a target (a category with 2-20 values of at least "
                "10 rows each, a flag, or a number), or nothing else describes the entity"
            )
    if not shapes:
        notes.append("cycleml.yaml has no sources: add the tables to learn from under `sources:`")
    if not found:
        notes.insert(0, "nothing to predict: no source has the shape any problem needs")
    return notes
