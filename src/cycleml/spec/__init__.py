"""The project spec: ``cycleml.yaml`` as frozen pydantic models, and its loader."""

from ._cleaning import CleaningStep
from ._durations import duration_seconds, parse_duration
from ._features import FeatureGroupSpec
from ._labels import (
    LABEL_KINDS,
    ClickLabel,
    ColumnLabel,
    CountWithinLabel,
    CutoffSchedule,
    CutoffTable,
    Eligibility,
    EventWithinLabel,
    ForecastLabel,
    InactivityLabel,
    SumWithinLabel,
)
from ._loader import SPEC_FILE, load_spec, parse_spec, spec_hash
from ._models import (
    DaskSpec,
    ExperimentSpec,
    MetricSpec,
    MonitoringSpec,
    ProblemSpec,
    SourceSpec,
    Spec,
    TrainingSpec,
)
from ._schedules import ScheduleSpec

__all__ = [
    "LABEL_KINDS",
    "SPEC_FILE",
    "CleaningStep",
    "ClickLabel",
    "ColumnLabel",
    "CountWithinLabel",
    "CutoffSchedule",
    "CutoffTable",
    "DaskSpec",
    "Eligibility",
    "EventWithinLabel",
    "ExperimentSpec",
    "FeatureGroupSpec",
    "ForecastLabel",
    "InactivityLabel",
    "MetricSpec",
    "MonitoringSpec",
    "ProblemSpec",
    "ScheduleSpec",
    "SourceSpec",
    "Spec",
    "SumWithinLabel",
    "TrainingSpec",
    "duration_seconds",
    "load_spec",
    "parse_duration",
    "parse_spec",
    "spec_hash",
]
