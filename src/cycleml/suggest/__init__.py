"""Problem suggestions: what the sources can predict, with evidence, readiness, what is
missing, and a ready-to-use spec block (``cycleml suggest``, ``cycleml suggest --apply N``)."""

from ._apply import AppliedSuggestion, SuggestionConflictError, apply_suggestion, pick
from ._model import FAMILIES, ProblemSuggestion, SuggestionReport
from ._suggest import suggest_problems

__all__ = [
    "FAMILIES",
    "AppliedSuggestion",
    "ProblemSuggestion",
    "SuggestionConflictError",
    "SuggestionReport",
    "apply_suggestion",
    "pick",
    "suggest_problems",
]
