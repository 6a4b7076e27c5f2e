"""Batch predictions into the store's predictions table, a database table or Parquet files."""

from ._batch import DEFAULT_CHUNK_ROWS, PredictionRun, latest_run, score_batch
from ._targets import ROW_SCHEMA, Target, TargetError, parse_target

__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "ROW_SCHEMA",
    "PredictionRun",
    "Target",
    "TargetError",
    "latest_run",
    "parse_target",
    "score_batch",
]
