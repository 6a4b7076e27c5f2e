"""``/predictions``: recent online and batch predictions with filters (problem, entity, model
version, kind, how many), and the online latency over time."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import NotFoundError
from . import _charts, _reads

if TYPE_CHECKING:
    from ..project import Project

KINDS = ("all", "online", "batch")
LIMITS = (50, 200, 1000)


def context(
    project: Project,
    *,
    problem: str | None,
    entity: str | None,
    version: int | None,
    kind: str,
    limit: int,
) -> dict:
    """Raises NotFoundError for an unknown problem or model version (the 404 page)."""
    problem = problem or None
    entity = (entity or "").strip() or None
    if problem is not None:
        project._problem(problem)
    kind = kind if kind in KINDS else "all"
    limit = limit if limit in LIMITS else LIMITS[0]
    models = project.registry.list(problem)
    names = {m.id: m.name for m in models}
    version_id = None
    if version is not None:
        if problem is None:
            raise NotFoundError(
                "a model version filter needs a problem", hint="pick a problem first"
            )
        match = next((m for m in models if m.version == version), None)
        if match is None:
            raise NotFoundError(f"problem {problem!r} has no model version {version}")
        version_id = match.id
    rows = _reads.recent_predictions(
        project, problem=problem, entity=entity, version_id=version_id, source=kind, limit=limit
    )
    for row in rows:
        row["model"] = names.get(row["model_version_id"], f"id {row['model_version_id']}")
    return {
        "title": "Predictions",
        "rows": rows,
        "latency": _charts.latency(_reads.latency_points(project, problem)),
        "filters": {
            "problem": problem or "",
            "entity": entity or "",
            "version": "" if version is None else str(version),
            "kind": kind,
            "limit": limit,
        },
        "problems": list(project.spec.problems),
        "versions": sorted({m.version for m in models}) if problem else [],
        "kinds": KINDS,
        "limits": LIMITS,
    }
