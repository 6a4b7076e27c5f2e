"""The project spec: ``cycleml.yaml`` as frozen pydantic models, and its loader."""

from ._durations import duration_seconds, parse_duration
from ._loader import SPEC_FILE, load_spec, parse_spec, spec_hash
from ._models import (
    ColumnLabel,
    CutoffSchedule,
    ExperimentSpec,
    FeatureGroupSpec,
    InactivityLabel,
    MetricSpec,
    MonitoringSpec,
    ProblemSpec,
    SourceSpec,
    Spec,
    TrainingSpec,
)

__all__ = [
    "SPEC_FILE",
    "ColumnLabel",
    "CutoffSchedule",
    "ExperimentSpec",
    "FeatureGroupSpec",
    "InactivityLabel",
    "MetricSpec",
    "MonitoringSpec",
    "ProblemSpec",
    "SourceSpec",
    "Spec",
    "TrainingSpec",
    "duration_seconds",
    "load_spec",
    "parse_duration",
    "parse_spec",
    "spec_hash",
]
