"""Experiments: deterministic assignment, the analysis of results, and planning."""

from ._analysis import (
    SRM_ALPHA,
    analyze,
    compare,
    decide,
    more_units_needed,
    sample_ratio_check,
    sufficient_stats,
)
from ._assign import assign, bucket
from ._power import plan, power_at
from ._report import write_experiment_report
from ._sequential import halfwidth, mixture_rho2

__all__ = [
    "SRM_ALPHA",
    "analyze",
    "assign",
    "bucket",
    "compare",
    "decide",
    "halfwidth",
    "mixture_rho2",
    "more_units_needed",
    "plan",
    "power_at",
    "sample_ratio_check",
    "sufficient_stats",
    "write_experiment_report",
]
