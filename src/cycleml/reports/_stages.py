"""The report of each stage, built from the same dicts the CLI prints with --json."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ._html import Section, Table, fmt, write_report

if TYPE_CHECKING:
    from ..project import TrainOutcome


def train_report(path: Path, outcome: TrainOutcome) -> Path:
    from ._train_report import write_train_report

    return write_train_report(path, outcome.to_dict())


def summary_report(path: Path, title: str, stages: dict[str, dict]) -> Path:
    """One section per stage, each a table of that stage's headline figures."""
    sections = []
    for stage, figures in stages.items():
        flat = {k: v for k, v in figures.items() if not isinstance(v, dict | list)}
        sections.append(
            Section(stage, "", [Table(["figure", "value"], [[k, fmt(v)] for k, v in flat.items()])])
        )
    return write_report(path, title, sections)
