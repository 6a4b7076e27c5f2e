"""`cycleml validate`: the spec checked against the data and the store, every problem at once."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .data import SourceInfo, SourceSet
from .errors import CycleMLError, SpecError, SpecIssue
from .features._groups import compile_group
from .spec import ColumnLabel, Spec
from .store import Store


@dataclass
class ValidationReport:
    spec: Spec
    sources: list[SourceInfo] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "valid": True,
            "name": self.spec.name,
            "sources": [s.to_dict() for s in self.sources],
            "problems": list(self.spec.problems),
            "feature_groups": list(self.spec.features),
        }


def validate_project(spec: Spec, project_dir: Path, store: Store) -> ValidationReport:
    """Raise SpecError listing every mismatch between the spec and the data or store."""
    issues: list[SpecIssue] = []
    infos: list[SourceInfo] = []
    columns: dict[str, dict[str, str]] = {}
    with SourceSet(spec, project_dir) as sources:
        for name, source in spec.sources.items():
            info = sources.describe(name)
            infos.append(info)
            try:
                columns[name] = sources.columns(name)
            except CycleMLError as exc:
                issues.append(SpecIssue(f"sources.{name}", exc.message, exc.hint))
                continue
            for role in ("entity", "time"):
                column = getattr(source, role)
                if column is not None and column not in columns[name]:
                    issues.append(
                        SpecIssue(
                            f"sources.{name}.{role}",
                            f"{role} column {column!r} is not in source {name!r}",
                            f"columns are: {', '.join(columns[name])}",
                        )
                    )
    for gname, group in spec.features.items():
        if group.source not in columns:
            continue  # the source's own problem is reported above
        try:
            compile_group(gname, group, spec.sources[group.source], columns[group.source])
        except SpecError as exc:
            issues.extend(exc.issues or [SpecIssue(f"features.{gname}", exc.message, exc.hint)])
    for pname, problem in spec.problems.items():
        label = problem.label
        cols = columns.get(label.source)
        if isinstance(label, ColumnLabel) and cols is not None and label.column not in cols:
            issues.append(
                SpecIssue(
                    f"problems.{pname}.label.column",
                    f"column {label.column!r} is not in source {label.source!r}",
                    f"columns are: {', '.join(cols)}",
                )
            )
    try:
        store.ping()
    except CycleMLError as exc:
        issues.append(SpecIssue("store", exc.message, exc.hint))
    if issues:
        raise SpecError(
            f"cycleml.yaml does not match the data: {len(issues)} problem(s)", issues=issues
        )
    return ValidationReport(spec, infos)
