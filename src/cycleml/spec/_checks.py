"""Cross-reference checks of a parsed spec (names that must point at something defined)."""

from __future__ import annotations

import difflib

from ..errors import SpecIssue
from ._models import Spec


def cross_check(spec: Spec) -> list[SpecIssue]:
    issues: list[SpecIssue] = []
    for pname, problem in spec.problems.items():
        for index, group in enumerate(problem.features):
            if group not in spec.features:
                issues.append(
                    unknown_name(
                        "feature group", group, spec.features, f"problems.{pname}.features.{index}"
                    )
                )
        if problem.label.source not in spec.sources:
            issues.append(
                unknown_name(
                    "source", problem.label.source, spec.sources, f"problems.{pname}.label.source"
                )
            )
        issues.extend(_label_issues(pname, problem, spec))
    for gname, group in spec.features.items():
        if group.source not in spec.sources:
            issues.append(
                unknown_name("source", group.source, spec.sources, f"features.{gname}.source")
            )
    for ename, exp in spec.experiments.items():
        if exp.source is not None and exp.source not in spec.sources:
            issues.append(
                unknown_name("source", exp.source, spec.sources, f"experiments.{ename}.source")
            )
    issues.extend(_served_experiment_issues(spec))  # served experiments (issue 7)
    # -- schedules (issue 6) --
    for jname, job in spec.schedules.items():
        if job.problem not in spec.problems:
            issues.append(
                unknown_name("problem", job.problem, spec.problems, f"schedules.{jname}.problem")
            )
        if job.to is not None:
            issues.extend(_target_issues(jname, job.to))
    from ._cleaning import check_cleaning

    issues.extend(check_cleaning(spec))
    return issues


# -- schedules (issue 6) --
def _target_issues(jname: str, to: str) -> list[SpecIssue]:
    """A schedule's ``to`` must be a target `predict --batch --to` understands (parsed only:
    nothing is opened or created)."""
    from pathlib import Path

    from ..batch._targets import parse_target

    try:
        parse_target(to, Path("."))
    except Exception as exc:  # TargetError, or a URL SQLAlchemy cannot parse
        return [
            SpecIssue(
                f"schedules.{jname}.to",
                getattr(exc, "message", None) or str(exc).splitlines()[0],
                getattr(exc, "hint", None)
                or "use sqlite:///p.db#table, postgresql://user@host/db#table, "
                "duckdb:///p.duckdb#table or a folder path ending in .parquet",
            )
        ]
    return []


_LABEL_TASKS = {
    "inactivity": ("binary",),
    "event_within": ("binary",),
    "sum_within": ("regression",),
    "count_within": ("regression",),
    "column": ("binary", "multiclass", "regression"),
    "click": ("ranking",),
    "forecast": ("forecast",),
}
_NEEDS_CUTOFFS = ("inactivity", "event_within", "sum_within", "count_within", "forecast")


def _label_issues(pname: str, problem, spec: Spec) -> list[SpecIssue]:
    """A label's task, cutoffs and the sources it names."""
    issues: list[SpecIssue] = []
    label = problem.label
    where = f"problems.{pname}"
    tasks = _LABEL_TASKS[label.kind]
    if problem.task not in tasks:
        what = {"inactivity": "an inactivity (churn) label is binary"}.get(
            label.kind, f"a {label.kind} label is {' or '.join(tasks)}"
        )
        issues.append(
            SpecIssue(
                f"{where}.task",
                f"{what}, but task is {problem.task!r}",
                f"set `task: {tasks[0]}`",
            )
        )
    if label.kind in _NEEDS_CUTOFFS and problem.cutoffs is None:
        issues.append(
            SpecIssue(
                f"{where}.cutoffs",
                f"a {label.kind} label needs cutoffs (the times the label is asked about)",
                "add `cutoffs: {every: 7d, start: YYYY-MM-DD}` or a table of cutoffs "
                "`{source: NAME, time: COLUMN}`",
            )
        )
    cutoff_source = getattr(problem.cutoffs, "source", None)
    if label.kind == "click" and cutoff_source is not None:
        issues.append(
            SpecIssue(
                f"{where}.cutoffs",
                "a click (ranking) label has one row per impression: a cutoff table does not apply",
                "use a schedule (`start`/`end` bound the impressions) or no cutoffs",
            )
        )
    named = [(cutoff_source, f"{where}.cutoffs.source")]
    eligible = getattr(label, "eligible", None)
    named.append((getattr(eligible, "source", None), f"{where}.label.eligible.source"))
    named.append((getattr(label, "clicks", None), f"{where}.label.clicks"))
    for name, path in named:
        if name is not None and name not in spec.sources:
            issues.append(unknown_name("source", name, spec.sources, path))
    return issues


def unknown_name(what: str, name: str, known, path: str) -> SpecIssue:
    known = list(known)
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    hint = f"did you mean {close[0]!r}? " if close else ""
    hint += f"known {what}s: {', '.join(known) or '(none defined)'}"
    return SpecIssue(path, f"unknown {what} {name!r}", hint)


# -- served experiments (issue 7) --
def _served_experiment_issues(spec: Spec) -> list[SpecIssue]:
    """A served experiment's problem, unit and events source; no two served experiments on the
    same unit entity and surface may run at overlapping dates."""
    issues: list[SpecIssue] = []
    placed: list[tuple[str, str, str, object, object]] = []
    for ename, exp in spec.experiments.items():
        if exp.problem is None:
            continue
        where = f"experiments.{ename}"
        problem = spec.problems.get(exp.problem)
        if problem is None:
            issues.append(unknown_name("problem", exp.problem, spec.problems, f"{where}.problem"))
            continue
        if exp.unit is not None and exp.unit != problem.entity:
            issues.append(
                SpecIssue(
                    f"{where}.unit",
                    f"a served experiment splits problem {exp.problem!r} by its entity "
                    f"{problem.entity!r}, not {exp.unit!r}",
                    f"set `unit: {problem.entity}` or leave `unit:` out",
                )
            )
        events = spec.sources.get(exp.events or "")
        if events is None:
            issues.append(unknown_name("source", exp.events, spec.sources, f"{where}.events"))
        elif not events.collect:
            issues.append(
                SpecIssue(
                    f"{where}.events",
                    f"source {exp.events!r} does not collect events",
                    f"add `collect: true` to source {exp.events!r} (it needs `entity` and `time`)",
                )
            )
        unit = problem.entity
        surface = exp.surface or exp.problem
        for other, o_unit, o_surface, o_start, o_end in placed:
            if (o_unit, o_surface) != (unit, surface):
                continue
            if _overlap(exp.start, exp.end, o_start, o_end):
                issues.append(
                    SpecIssue(
                        where,
                        f"experiment {ename!r} overlaps experiment {other!r}: both split "
                        f"{unit!r} units on surface {surface!r} and their dates overlap",
                        "give them dates that do not overlap (`start`/`end`), or different "
                        "`surface:` values when they change different parts of the product",
                    )
                )
        placed.append((ename, unit, surface, exp.start, exp.end))
    return issues


def _overlap(start_a, end_a, start_b, end_b) -> bool:
    """Whether two inclusive date ranges overlap (a missing end is open)."""
    starts = [d for d in (start_a, start_b) if d is not None]
    ends = [d for d in (end_a, end_b) if d is not None]
    return not starts or not ends or max(starts) <= min(ends)


# -- end of served experiments --
