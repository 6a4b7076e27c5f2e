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
        if problem.task != "binary" and problem.label.kind == "inactivity":
            issues.append(
                SpecIssue(
                    f"problems.{pname}.task",
                    f"an inactivity (churn) label is binary, but task is {problem.task!r}",
                    "set `task: binary`",
                )
            )
        if problem.label.kind == "inactivity" and problem.cutoffs is None:
            issues.append(
                SpecIssue(
                    f"problems.{pname}.cutoffs",
                    "an inactivity label needs cutoffs (the times the label is asked about)",
                    "add `cutoffs: {every: 7d, start: YYYY-MM-DD}`",
                )
            )
    for gname, group in spec.features.items():
        if group.source not in spec.sources:
            issues.append(
                unknown_name("source", group.source, spec.sources, f"features.{gname}.source")
            )
    for ename, exp in spec.experiments.items():
        if exp.source not in spec.sources:
            issues.append(
                unknown_name("source", exp.source, spec.sources, f"experiments.{ename}.source")
            )
    return issues


def unknown_name(what: str, name: str, known, path: str) -> SpecIssue:
    known = list(known)
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    hint = f"did you mean {close[0]!r}? " if close else ""
    hint += f"known {what}s: {', '.join(known) or '(none defined)'}"
    return SpecIssue(path, f"unknown {what} {name!r}", hint)
