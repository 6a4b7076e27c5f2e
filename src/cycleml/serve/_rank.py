"""Ranking: score candidate items for one entity and answer them best first."""

from __future__ import annotations

import time
import uuid

import pandas as pd

from ..errors import RequestError
from ..spec._labels import ClickLabel
from ..store import utcnow
from ._online import _frame_inputs, entity_features
from ._state import ServingState


def rank_items(
    state: ServingState, problem: str, body, started: float | None = None, loaded=None
) -> dict:
    """The items of ``body`` (a RankRequest) ordered by score, best first. The entity's features
    come from the shared feature code (the online store when materialized, else computed as of
    now or ``as_of``); the item column is the item id; values an item object carries override
    the computed ones."""
    started = started if started is not None else time.perf_counter()
    fs = state.featureset(problem)
    label = fs.problem.label
    if not isinstance(label, ClickLabel):
        raise RequestError(
            f"problem {problem!r} is not a ranking problem (its label kind is {label.kind!r})",
            hint=f"use POST /v1/models/{problem}/predict; rank serves problems with a click label",
        )
    loaded = loaded if loaded is not None else state.model(problem)  # the body was parsed for it
    schema = loaded.extra["schema"]
    frame, fresh = entity_features(
        fs, state.store, [str(body.entity)], body.as_of, lock=state.sources_lock
    )
    known = len(frame) > 0
    base = {n: frame.iloc[0][n] for n in schema.names if known and n in frame.columns}
    rows = []
    ids = []
    for item in body.items:
        if isinstance(item, str):
            ids.append(item)
            values = {}
        else:
            ids.append(str(getattr(item, schema.id_field)))
            values = {
                n: getattr(item, f)
                for n, f in zip(schema.names, schema.fields, strict=True)
                if getattr(item, f) is not None
            }
        rows.append({**base, label.item: ids[-1], **values})
    candidates = pd.DataFrame(rows)
    for name in schema.names:
        if name not in candidates.columns:
            candidates[name] = None
    scores, _ = loaded.bundle.outputs(candidates)
    scores = scores.tolist()
    order = sorted(range(len(ids)), key=lambda i: -scores[i])
    request_id = uuid.uuid4().hex
    items = [{"id": ids[i], "score": scores[i], "rank": r + 1} for r, i in enumerate(order)]
    latency = (time.perf_counter() - started) * 1000
    inputs = _frame_inputs(candidates, schema.names)
    now = utcnow()
    state.logger.put(
        [
            {
                "request_id": request_id,
                "problem": problem,
                "model_version_id": loaded.version.id,
                "entity": str(body.entity),
                "item_id": ids[i],
                "inputs": inputs[i],
                "score": scores[i],
                "label": None,
                "latency_ms": latency,
                "created_at": now,
            }
            for i in range(len(ids))
        ]
    )
    state.metrics.predictions.labels(problem, "rank").inc(len(ids))
    answer = {
        "model_version": loaded.version.name,
        "request_id": request_id,
        "entity": str(body.entity),
        "items": items,
        "features": fresh,
    }
    if not known:
        answer["warning"] = f"unknown {fs.entity} {str(body.entity)!r}: ranked without its features"
    return answer
