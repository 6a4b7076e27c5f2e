"""Experiments: deterministic assignment, served experiments (exposures), the analysis of
results, and planning."""

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
from ._exposures import ExposureWriter, read_exposures, record_exposures
from ._power import detectable_effect, plan, power_at
from ._report import write_experiment_report
from ._sequential import halfwidth, mixture_rho2
from ._served import check_models, is_active, served_stats, variant_of

__all__ = [
    "SRM_ALPHA",
    "ExposureWriter",
    "analyze",
    "assign",
    "bucket",
    "check_models",
    "compare",
    "decide",
    "detectable_effect",
    "halfwidth",
    "is_active",
    "mixture_rho2",
    "more_units_needed",
    "plan",
    "power_at",
    "read_exposures",
    "record_exposures",
    "sample_ratio_check",
    "served_stats",
    "sufficient_stats",
    "variant_of",
    "write_experiment_report",
]
