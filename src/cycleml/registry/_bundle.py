"""What a model artifact holds: the fitted pipeline and everything needed to use it."""

from __future__ import annotations

from dataclasses import dataclass, field

import joblib
import numpy as np
import pandas as pd

from ..features import FeatureColumn
from ..train import prepare_frame


@dataclass
class ModelBundle:
    problem: str
    task: str
    algorithm: str
    pipeline: object
    columns: list[FeatureColumn]
    threshold: float | None
    entity: str
    metadata: dict = field(default_factory=dict)

    @property
    def feature_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        """Scores for rows holding the model's feature columns (positive-class probability for
        classifiers, the prediction for regressors)."""
        x = prepare_frame(frame, self.columns)
        if self.task == "binary":
            return self.pipeline.predict_proba(x)[:, 1]
        return np.asarray(self.pipeline.predict(x), dtype=float)

    def outputs(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """``(scores, labels)`` for rows of the model's features, whatever the task: what batch
        and online scoring call. Labels are None when the task has none (regression)."""
        scores = self.score(frame)
        return scores, self.labels(scores)

    def labels(self, scores: np.ndarray) -> np.ndarray | None:
        if self.task != "binary" or self.threshold is None:
            return None
        return (scores >= self.threshold).astype(int)

    def save(self, path) -> None:
        joblib.dump(self, path, compress=3)

    @staticmethod
    def load_unverified(path) -> ModelBundle:
        """Load without checking the hash: only call on a path from ArtifactStore.verified_path."""
        bundle = joblib.load(path)
        if not isinstance(bundle, ModelBundle):
            raise TypeError(f"{path} does not hold a cycleml model")
        return bundle
