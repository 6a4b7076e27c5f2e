"""Batch predictions into the store's predictions table."""

from ._batch import PredictionRun, latest_run, score_batch

__all__ = ["PredictionRun", "latest_run", "score_batch"]
