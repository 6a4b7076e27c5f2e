"""Labels and features compiled to SQL, point-in-time correct, one definition for every use."""

from ._dataset import DatasetVersion, build_dataset, get_dataset, latest_dataset, load_dataset
from ._featureset import AS_OF_COLUMN, LABEL_COLUMN, FeatureSet, TrainingFrame
from ._groups import FeatureColumn

__all__ = [
    "DatasetVersion",
    "build_dataset",
    "get_dataset",
    "latest_dataset",
    "load_dataset",
    "AS_OF_COLUMN",
    "LABEL_COLUMN",
    "FeatureColumn",
    "FeatureSet",
    "TrainingFrame",
]
