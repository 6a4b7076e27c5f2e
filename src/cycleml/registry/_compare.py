"""Score model versions on the same test rows, so they can be compared fairly."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..features import LABEL_COLUMN
from ..train import classification_metrics, regression_metrics
from ._bundle import ModelBundle
from ._registry import ModelVersion


def score_on(
    versions: list[tuple[ModelVersion, ModelBundle]],
    test: pd.DataFrame,
    *,
    key: str,
    higher: bool,
) -> list[dict]:
    """Each version's metrics on ``test`` (rows with the label and the features), with its own
    saved threshold, ordered as given; ``value`` is the selection metric ``key``."""
    y = test[LABEL_COLUMN].to_numpy()
    out = []
    for mv, bundle in versions:
        scores = bundle.score(test)
        if bundle.task == "binary":
            metrics = classification_metrics(
                y.astype(int), scores, bundle.threshold if bundle.threshold is not None else 0.5
            )
        else:
            metrics = regression_metrics(y.astype(float), scores)
        metrics.pop("calibration", None)
        out.append(
            {
                "model": mv.name,
                "version": mv.version,
                "stage": mv.stage,
                "algorithm": mv.algorithm,
                "dataset_version": mv.dataset_version_id,
                "metrics": metrics,
                "value": metrics.get(key),
            }
        )
    values = [o["value"] for o in out if o["value"] is not None]
    if values:
        best = max(values) if higher else min(values)
        for o in out:
            o["best"] = o["value"] is not None and bool(np.isclose(o["value"], best))
    return out
