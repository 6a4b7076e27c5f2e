"""Score model versions on the same test rows, so they can be compared fairly."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..features import LABEL_COLUMN
from ..train import TaskKit
from ..train._kit import HORIZON_COLUMN, class_codes
from ..train._ranking import GROUP_COLUMN
from ._bundle import ModelBundle
from ._registry import ModelVersion


def score_on(
    versions: list[tuple[ModelVersion, ModelBundle]],
    test: pd.DataFrame,
    *,
    key: str,
    higher: bool,
    k: int = 10,
) -> list[dict]:
    """Each version's metrics on ``test`` (rows with the label and the model's inputs), with
    its own saved threshold, ordered as given; ``value`` is the selection metric ``key``
    (ranking: NDCG@``k`` or MAP@``k`` over the test rows' groups)."""
    rows = np.arange(len(test))
    out = []
    for mv, bundle in versions:
        task = bundle.task
        label = test[LABEL_COLUMN]
        classes = list(bundle.classes or []) if task == "multiclass" else None
        if task == "multiclass":
            y = class_codes(label, classes)
            scores = bundle.probabilities(test).to_numpy()
        else:
            y = label.to_numpy().astype(int if task in ("binary", "ranking") else float)
            scores = bundle.score(test)
        kit = TaskKit(
            task,
            key,
            higher,
            test,
            y,
            classes=classes,
            groups=test[GROUP_COLUMN].to_numpy() if task == "ranking" else None,
            horizons=test[HORIZON_COLUMN].to_numpy() if HORIZON_COLUMN in test else None,
            k=k,
        )
        metrics = kit.metrics(rows, scores, bundle.threshold if task == "binary" else None)
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
