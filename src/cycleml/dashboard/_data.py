"""``/data``: the sources, their latest stored profiles with charts, the stored cleaning
suggestions (each with an apply button) and the problem suggestions."""

from __future__ import annotations

import re
import threading
from typing import TYPE_CHECKING, Any

from . import _charts, _reads
from ._common import fmt

if TYPE_CHECKING:
    from ..project import Project

CHARTS_PER_SOURCE = 40  # per-column charts drawn per source (the table lists every column)


class SuggestionCache:
    """Problem suggestions (:meth:`Project.suggest`, which reads the data) are kept until the
    spec or a source's latest profile changes, so the page does not read the data each time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple | None = None
        self._value: dict | None = None

    def get(self, project: Project, profiled: dict) -> dict:
        from ..spec import spec_hash

        key = (spec_hash(project.spec), tuple(sorted(profiled.items())))
        with self._lock:
            if self._key != key or self._value is None:
                try:
                    report = project.suggest().to_dict()
                    self._value = {"suggestions": report["suggestions"], "error": None}
                except Exception as exc:  # noqa: BLE001 - shown on the page, not a 500
                    message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
                    self._value = {"suggestions": [], "error": message}
                self._key = key
            return self._value


def context(project: Project, suggestions: SuggestionCache) -> dict:
    spec = project.spec
    stored = _reads.latest_profiles(project)
    recorded = {step.id for step in spec.cleaning}
    sources = []
    for name, source in spec.sources.items():
        profile = stored.get(name)
        location = source.path or _safe_url(source.url, source.table)
        item: dict[str, Any] = {
            "name": name,
            "location": str(location),
            "entity": getattr(source, "entity", None),
            "time": getattr(source, "time", None),
            "profile": None,
        }
        if profile is not None:
            item["profile"] = _profile_view(name, profile, recorded)
        sources.append(item)
    profiled = {s: p["profiled_at"] for s, p in stored.items()}
    problem_suggestions = suggestions.get(project, profiled) if spec.sources else None
    return {
        "title": "Data",
        "sources": sources,
        "unprofiled": [s["name"] for s in sources if s["profile"] is None],
        "problem_suggestions": problem_suggestions,
        "defined": set(spec.problems),
    }


def _safe_url(url: str | None, table: str | None) -> str:
    """A database source's location with any password hidden."""
    if not url:
        return table or "(collected events)"
    shown = re.sub(r"(//[^/:@]*):[^/@]*@", r"\1:***@", url)
    return f"{shown} table {table}" if table else shown


def _profile_view(source: str, profile: dict, recorded: set[str]) -> dict:
    columns = profile.get("columns") or []
    charts = []
    missing = _charts.missingness(source, columns) if profile.get("rows") else None
    for column in columns:
        if len(charts) >= CHARTS_PER_SOURCE:
            break
        chart = _charts.histogram(source, column)
        if chart is None and column.get("semantic") != "identifier":
            chart = _charts.top_values(source, column)
        if chart is not None:
            charts.append(chart)
    rows = [
        [
            c["name"],
            f"{c.get('semantic')} ({c.get('type')})",
            f"{(c.get('null_rate') or 0):.1%}",
            fmt(c.get("distinct")),
            fmt(c.get("min")),
            fmt(c.get("max")),
            fmt(c.get("mean")),
        ]
        for c in columns
    ]
    suggestions = [
        {
            "id": s.get("id", ""),
            "title": s.get("title", ""),
            "applies_in": s.get("applies_in") or "",
            "note": s.get("note") or "",
            "actionable": bool(s.get("action")),
            "recorded": s.get("id") in recorded,
            "fingerprint": s.get("fingerprint") or profile.get("fingerprint") or "",
        }
        for s in profile.get("cleaning_suggestions") or []
    ]
    return {
        "rows": profile.get("rows"),
        "shape": profile.get("shape"),
        "duplicates": profile.get("duplicate_rows"),
        "profiled_at": profile["profiled_at"],
        "notes": profile.get("notes") or [],
        "missing": missing,
        "charts": charts,
        "charts_capped": len(columns) > len(charts) and len(charts) >= CHARTS_PER_SOURCE,
        "columns": rows,
        "suggestions": suggestions,
        "suggested": profile.get("cleaning_suggestions") is not None,
    }
