"""What a model artifact holds: the fitted pipeline and everything needed to use it."""

from __future__ import annotations

from dataclasses import dataclass, field

import joblib
import numpy as np
import pandas as pd

from ..errors import ModelError
from ..features import FeatureColumn
from ..train import prepare_frame
from ..train._kit import predict_scores
from ._fastpath import MAX_ROWS, FastScorer, compile_scorer


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
    classes: list | None = None  # multiclass: class values (JSON ints or strings) by class code

    @property
    def feature_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        """Scores for rows holding the model's input columns: the positive-class probability
        (binary), the probability of the predicted class (multiclass), the relevance score
        (ranking: rows of entity features plus the item column), or the prediction."""
        if self.task == "multiclass":
            return self.probabilities(frame).to_numpy().max(axis=1)
        return self._predict(frame, self.task)

    def probabilities(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Multiclass: one column of probabilities per class value (the frame's row index)."""
        if self.task != "multiclass":
            raise ModelError(
                f"model {self.problem!r} is a {self.task} model: it has no class probabilities",
                hint="probabilities() is for multiclass models; use outputs()",
            )
        classes = self._classes()
        proba = self._predict(frame, "multiclass", len(classes))
        return pd.DataFrame(proba, columns=classes, index=frame.index)

    def outputs(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """``(scores, labels)`` for rows of the model's inputs, whatever the task: what batch
        and online scoring call. Labels: 0/1 at the threshold (binary), the predicted class
        value as in the data (multiclass), None otherwise (regression, forecast, ranking)."""
        if self.task == "multiclass":
            proba = self.probabilities(frame).to_numpy()
            classes = np.empty(len(self._classes()), dtype=object)
            classes[:] = self._classes()
            return proba.max(axis=1), classes[np.argmax(proba, axis=1)]
        scores = self.score(frame)
        return scores, self.labels(scores)

    def outputs_records(self, records: list[dict]) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`outputs` of ``pd.DataFrame.from_records(records)`` (feature names as keys):
        for up to ``MAX_ROWS`` records with a compiled scorer, without building a frame."""
        fast = self._fast_scorer() if len(records) <= MAX_ROWS else None
        if fast is not None:
            try:
                if self.task == "multiclass":
                    classes = self._classes()
                    proba = predict_scores(fast, records, "multiclass", len(classes))
                    values = np.empty(len(classes), dtype=object)
                    values[:] = classes
                    return proba.max(axis=1), values[np.argmax(proba, axis=1)]
                scores = predict_scores(fast, records, self.task)
                return scores, self.labels(scores)
            except Exception as exc:  # never worse than the frame path: fall back, remember
                self.__dict__["fastpath_error"] = f"{type(exc).__name__}: {exc}"
        return self.outputs(pd.DataFrame.from_records(records, columns=self.feature_names))

    def labels(self, scores: np.ndarray) -> np.ndarray | None:
        """Binary labels at the saved threshold; None for the other tasks (multiclass labels
        come from :meth:`outputs`, which sees every class's probability)."""
        if self.task != "binary" or self.threshold is None:
            return None
        return (scores >= self.threshold).astype(int)

    def _predict(self, frame: pd.DataFrame, task: str, n_classes: int = 0) -> np.ndarray:
        """:func:`predict_scores` of the pipeline; through the compiled fast scorer for up to
        ``MAX_ROWS`` rows when the pipeline has one (see :mod:`._fastpath`)."""
        if len(frame) <= MAX_ROWS:
            fast = self._fast_scorer()
            if fast is not None:
                try:
                    return predict_scores(fast, frame, task, n_classes)
                except Exception as exc:  # never worse than the pipeline: fall back, remember
                    self.__dict__["fastpath_error"] = f"{type(exc).__name__}: {exc}"
        x = prepare_frame(frame, self.columns)
        return predict_scores(self.pipeline, x, task, n_classes)

    def _fast_scorer(self) -> FastScorer | None:
        """The compiled scorer, built at first use (not pickled: see ``__getstate__``)."""
        state = self.__dict__
        if "_fastpath" not in state:
            scorer, reason = compile_scorer(self.pipeline, self.columns)
            state["fastpath_reason"] = reason
            state["_fastpath"] = scorer
        return state["_fastpath"]

    @property
    def fastpath(self) -> str | None:
        """Debug: None when small inputs use the compiled scorer, else why they do not."""
        self._fast_scorer()
        return self.__dict__.get("fastpath_reason")

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        for key in ("_fastpath", "fastpath_reason", "fastpath_error"):
            state.pop(key, None)
        return state

    def _classes(self) -> list:
        classes = getattr(self, "classes", None)  # bundles saved before multiclass lack it
        if not classes:
            raise ModelError(f"multiclass model {self.problem!r} has no class list")
        return list(classes)

    def save(self, path) -> None:
        joblib.dump(self, path, compress=3)

    @staticmethod
    def load_unverified(path) -> ModelBundle:
        """Load without checking the hash: only call on a path from ArtifactStore.verified_path."""
        bundle = joblib.load(path)
        if not isinstance(bundle, ModelBundle):
            raise TypeError(f"{path} does not hold a cycleml model")
        bundle._fast_scorer()  # compile now (~10 ms), not on the first request
        return bundle
