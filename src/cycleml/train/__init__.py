"""Training: preprocessing inside the pipeline, candidate algorithms, splits, metrics."""

from ._candidates import make_pipeline_for, preprocessor
from ._metrics import choose_threshold, classification_metrics, regression_metrics
from ._split import Split, make_split
from ._trainer import TrainResult, prepare_frame, train_candidates

__all__ = [
    "Split",
    "TrainResult",
    "choose_threshold",
    "classification_metrics",
    "make_pipeline_for",
    "make_split",
    "prepare_frame",
    "preprocessor",
    "regression_metrics",
    "train_candidates",
]
