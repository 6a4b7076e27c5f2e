"""The model registry: versions with lineage, stages, integrity-checked artifacts."""

from ._bundle import ModelBundle
from ._registry import STAGES, ModelVersion, Registry

__all__ = ["STAGES", "ModelBundle", "ModelVersion", "Registry"]
