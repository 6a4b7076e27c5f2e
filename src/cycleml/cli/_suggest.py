"""`cycleml suggest`: the problems the data can support; `--apply N` adds one to the spec."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from ._common import JsonOpt, ProjectOpt, _default_project, _print_json, _project, app, command, out

_STATUS_STYLE = {"ready": "green", "limited": "yellow", "not ready": "red"}
_READINESS_KEYS = (
    "examples",
    "positives",
    "positive_rate",
    "with_value_rate",
    "classes",
    "cutoffs",
    "horizon_days",
    "history_days",
    "items",
    "series",
)


@app.command()
@command
def suggest(
    apply: Annotated[
        str | None,
        typer.Option(
            "--apply",
            metavar="N",
            help="Add suggestion N (its number or its name) to cycleml.yaml.",
        ),
    ] = None,
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Suggest what the data can predict (churn, conversion, value, forecast, ranking, column
    problems), ranked, with evidence, readiness and a ready-to-use problem block."""
    proj = _project(project or _default_project())
    if apply is not None:
        applied = proj.apply_suggestion(apply)
        if as_json:
            _print_json(applied.to_dict())
            return
        s = applied.suggestion
        out.print(f"added problem [bold]{escape(s.name)}[/] to {escape(str(applied.spec_path))}")
        if applied.added_features:
            out.print(f"new feature groups: {escape(', '.join(applied.added_features))}")
        if s.reuses:
            out.print(f"reuses feature groups: {escape(', '.join(s.reuses))}")
        out.print(f"next: cycleml validate && cycleml dataset build {escape(s.name)}")
        return
    report = proj.suggest()
    if as_json:
        _print_json(report.to_dict())
        return
    for s in report.suggestions:
        style = _STATUS_STYLE.get(s.status, "white")
        line = f"[bold]{s.rank}. {escape(s.name)}[/] — {escape(s.title)} [{style}]({s.status})[/]"
        if s.defined_as:
            line += f" [dim]already in cycleml.yaml as {escape(s.defined_as)}[/]"
        out.print(line)
        for text in s.evidence:
            out.print(f"   why: {escape(text)}")
        figures = [f"{k}={s.readiness[k]}" for k in _READINESS_KEYS if k in s.readiness]
        out.print(f"   readiness: {escape(', '.join(figures))}")
        for text in s.missing:
            out.print(f"   [yellow]missing:[/] {escape(text)}")
        for block_line in s.yaml().splitlines():
            out.print(f"     {block_line}", markup=False, highlight=False, soft_wrap=True)
        out.print()
    for note in report.notes:
        out.print(f"note: {escape(note)}")
    if report.suggestions:
        out.print("apply one: cycleml suggest --apply N")
