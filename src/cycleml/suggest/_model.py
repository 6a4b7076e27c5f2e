"""What a problem suggestion holds, and how its YAML blocks are written."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

FAMILIES = ("churn", "conversion", "value", "forecast", "ranking", "column")
"""The problem families cycleml suggests, in the order it explains them."""


@dataclass
class ProblemSuggestion:
    """One problem the data can support, with its evidence and a ready-to-use spec block.

    ``problem`` and ``features`` are the plain dicts written under ``problems.<name>`` and
    ``features.<group>`` (only the groups that are new; ``reuses`` lists existing ones)."""

    family: str
    name: str
    title: str
    source: str
    problem: dict[str, Any]
    features: dict[str, dict[str, Any]] = field(default_factory=dict)
    reuses: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    readiness: dict[str, Any] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    usefulness: float = 0.5
    score: float = 0.0
    rank: int = 0
    defined_as: str | None = None  # an existing problem with the same label

    @property
    def status(self) -> str:
        return str(self.readiness.get("status", "not ready"))

    def yaml(self) -> str:
        """The blocks to add: ``problems:`` (and ``features:`` for new groups)."""
        text = "problems:\n" + entry_block(self.name, self.problem, indent=2)
        if self.features:
            text += "features:\n" + "".join(
                entry_block(name, group, indent=2) for name, group in self.features.items()
            )
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "name": self.name,
            "family": self.family,
            "title": self.title,
            "source": self.source,
            "status": self.status,
            "score": round(self.score, 4),
            "evidence": list(self.evidence),
            "readiness": dict(self.readiness),
            "missing": list(self.missing),
            "figures": dict(self.figures),
            "problem": self.problem,
            "features": self.features,
            "reuses": list(self.reuses),
            "defined_as": self.defined_as,
            "yaml": self.yaml(),
        }


@dataclass
class SuggestionReport:
    """The ranked suggestions (numbered from 1) and notes on what the data cannot support."""

    suggestions: list[ProblemSuggestion]
    notes: list[str] = field(default_factory=list)
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __iter__(self):
        return iter(self.suggestions)

    def __len__(self) -> int:
        return len(self.suggestions)

    def __getitem__(self, index: int) -> ProblemSuggestion:
        return self.suggestions[index]

    def to_dict(self) -> dict[str, Any]:
        return {
            "suggestions": [s.to_dict() for s in self.suggestions],
            "notes": list(self.notes),
            "sources": self.sources,
        }


def flow(value: Any) -> str:
    """One value in YAML flow style on one line (``{kind: inactivity, days: 30}``)."""
    text = yaml.safe_dump(
        value, default_flow_style=True, sort_keys=False, width=10**9, allow_unicode=True
    ).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def entry_block(name: str, body: dict[str, Any], *, indent: int) -> str:
    """``name:`` followed by its keys one per line (nested values in flow style)."""
    pad = " " * indent
    lines = [f"{pad}{name}:"]
    for key, value in body.items():
        lines.append(f"{pad}  {key}: {flow(value)}")
    return "\n".join(lines) + "\n"
