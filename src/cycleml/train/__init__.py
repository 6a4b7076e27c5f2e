"""Training: preprocessing inside the pipeline, candidate algorithms, splits, metrics."""

from ._candidates import make_pipeline_for, preprocessor
from ._items import ItemMean, ItemStats
from ._kit import TaskKit, selection_key
from ._metrics import (
    choose_threshold,
    classification_metrics,
    multiclass_metrics,
    regression_metrics,
)
from ._ranking import ranking_key, ranking_metrics, ranking_split
from ._split import Split, make_split
from ._trainer import (
    TrainResult,
    prepare_frame,
    prepare_training_frame,
    split_for,
    train_candidates,
)

__all__ = [
    "ItemMean",
    "ItemStats",
    "Split",
    "TaskKit",
    "TrainResult",
    "choose_threshold",
    "classification_metrics",
    "make_pipeline_for",
    "make_split",
    "multiclass_metrics",
    "prepare_frame",
    "prepare_training_frame",
    "preprocessor",
    "ranking_key",
    "ranking_metrics",
    "ranking_split",
    "regression_metrics",
    "selection_key",
    "split_for",
    "train_candidates",
]
