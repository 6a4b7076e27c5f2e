"""Experiments: deterministic assignment and the analysis of results."""

from ._analysis import SRM_ALPHA, analyze, compare, sample_ratio_check, sufficient_stats
from ._assign import assign, bucket

__all__ = [
    "SRM_ALPHA",
    "analyze",
    "assign",
    "bucket",
    "compare",
    "sample_ratio_check",
    "sufficient_stats",
]
