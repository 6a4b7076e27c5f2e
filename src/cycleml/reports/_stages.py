"""The report of each stage, built from the same dicts the CLI prints with --json."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ._html import Section, Table, fmt, table_from_records, write_report

if TYPE_CHECKING:
    from ..project import TrainOutcome


def train_report(path: Path, outcome: TrainOutcome) -> Path:
    data = outcome.to_dict()
    board = [
        {
            "algorithm": b["algorithm"] + (" (chosen)" if b["chosen"] else ""),
            **{f"test {k}": v for k, v in b["test"].items()},
        }
        for b in data["leaderboard"]
    ]
    metrics = [
        {"metric": k, "value": v} for k, v in data["metrics"].items() if not isinstance(v, dict)
    ]
    sections = [
        Section(
            "Leaderboard",
            f"Selected by {data['split']['selected_by']}.",
            [table_from_records(board)],
        ),
        Section(
            "Test metrics of the chosen model",
            data.get("threshold_note") or "",
            [table_from_records(metrics)],
        ),
        Section("Split", "", [table_from_records([data["split"]])]),
        Section(
            "Notes", "", [Table(["note"], [[n] for n in data["notes"]])] if data["notes"] else []
        ),
    ]
    return write_report(
        path, f"Model {data['model']}", sections, f"dataset version {data['dataset_version']}"
    )


def summary_report(path: Path, title: str, stages: dict[str, dict]) -> Path:
    """One section per stage, each a table of that stage's headline figures."""
    sections = []
    for stage, figures in stages.items():
        flat = {k: v for k, v in figures.items() if not isinstance(v, dict | list)}
        sections.append(
            Section(stage, "", [Table(["figure", "value"], [[k, fmt(v)] for k, v in flat.items()])])
        )
    return write_report(path, title, sections)
