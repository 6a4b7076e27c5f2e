"""Online predictions: validate request records against the model's features, score, log."""

from __future__ import annotations

import math
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from ..data import quote
from ..errors import InvalidRecordsError
from ..features import FeatureSet
from ..registry import ModelBundle, ModelVersion, Registry
from ..store import Store, utcnow
from ..store.tables import prediction_log


@dataclass
class LoadedModel:
    version: ModelVersion
    bundle: ModelBundle


class ModelCache:
    """The production model per problem, reloaded when the production version changes."""

    def __init__(self, registry: Registry, ttl_seconds: float = 2.0) -> None:
        self.registry = registry
        self.ttl = ttl_seconds
        self._models: dict[str, LoadedModel] = {}
        self._checked: dict[str, float] = {}
        self._lock = threading.Lock()

    def get(self, problem: str) -> LoadedModel:
        now = time.monotonic()
        loaded = self._models.get(problem)
        if loaded is not None and now - self._checked.get(problem, 0) < self.ttl:
            return loaded
        version = self.registry.get(problem)
        with self._lock:
            loaded = self._models.get(problem)
            if loaded is None or loaded.version.id != version.id:
                loaded = LoadedModel(version, self.registry.load(version))
                self._models[problem] = loaded
            self._checked[problem] = now
        return loaded


def check_records(records: list[dict], bundle: ModelBundle) -> pd.DataFrame:
    """A frame of the model's features; a missing, mistyped or non-finite field is an
    InvalidRecordsError (HTTP 422) naming it."""
    if not records:
        raise InvalidRecordsError("records is empty", hint="send at least one record")
    problems = []
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            problems.append(f"records[{index}] is not an object")
            continue
        for col in bundle.columns:
            if col.name not in record:
                problems.append(f"records[{index}].{col.name} is missing")
                continue
            value = record[col.name]
            if value is None:
                continue
            if col.kind == "number":
                if isinstance(value, bool) or not isinstance(value, int | float):
                    problems.append(f"records[{index}].{col.name} must be a number, got {value!r}")
                elif not math.isfinite(value):
                    problems.append(f"records[{index}].{col.name} must be finite, got {value!r}")
            elif not isinstance(value, str | int | bool):
                problems.append(f"records[{index}].{col.name} must be a string, got {value!r}")
    if problems:
        shown = problems[:20]
        more = f" (and {len(problems) - 20} more)" if len(problems) > 20 else ""
        raise InvalidRecordsError(
            "invalid records: " + "; ".join(shown) + more,
            hint="send every feature of the model (GET /v1/models/{problem} lists them); "
            "null is allowed for a missing value",
        )
    return pd.DataFrame.from_records(records, columns=bundle.feature_names)


def predict_online(
    cache: ModelCache,
    featureset: FeatureSet,
    store: Store,
    *,
    records: list[dict] | None = None,
    entities: list[str] | None = None,
    as_of: datetime | None = None,
    log: bool = True,
) -> dict:
    """Score records (feature values) or entities (features computed as of ``as_of``, default
    now). Items answer in request order; an unknown entity answers ``score: null`` with an
    ``error`` instead of failing the request. Every scored item is one prediction-log row."""
    if (records is None) == (entities is None):
        raise InvalidRecordsError("send exactly one of `records` or `entities`")
    started = time.perf_counter()
    loaded = cache.get(featureset.name)
    bundle = loaded.bundle
    if records is not None:
        frame = check_records(records, bundle)
        ids = [
            str(r.get("id", i)) if isinstance(r, dict) else str(i) for i, r in enumerate(records)
        ]
        inputs = records
        order = list(range(len(records)))
    else:
        if not entities:
            raise InvalidRecordsError("entities is empty", hint="send at least one entity id")
        ids = [str(e) for e in entities]
        when = _naive_utc(as_of) if as_of is not None else utcnow()
        known = _known_entities(featureset, ids)
        unique = list(dict.fromkeys(e for e in ids if e in known))
        if unique:
            computed = featureset.compute(unique, when)
            computed[featureset.entity] = computed[featureset.entity].astype(str)
            frame = computed.set_index(featureset.entity, drop=False).loc[unique]
            frame = frame.reset_index(drop=True)
        else:
            frame = pd.DataFrame(columns=bundle.feature_names)
        position = {e: i for i, e in enumerate(unique)}
        order = [position.get(e) for e in ids]
        inputs = (
            frame[bundle.feature_names]
            .astype(object)
            .where(frame[bundle.feature_names].notna(), None)
            .to_dict("records")
        )
    scores = bundle.score(frame) if len(frame) else []
    labels = bundle.labels(scores) if len(frame) else None
    request_id = uuid.uuid4().hex
    items = []
    logged_items, logged_inputs = [], []
    for i, row in enumerate(order):
        if row is None:
            items.append(
                {
                    "id": ids[i],
                    "score": None,
                    "label": None,
                    "error": f"unknown {featureset.entity} {ids[i]!r}",
                }
            )
            continue
        item = {
            "id": ids[i],
            "score": float(scores[row]),
            "label": int(labels[row]) if labels is not None else None,
        }
        items.append(item)
        logged_items.append(item)
        logged_inputs.append(inputs[row])
    latency = (time.perf_counter() - started) * 1000
    if log and logged_items:
        log_predictions(
            store,
            featureset.name,
            loaded.version.id,
            request_id,
            logged_items,
            logged_inputs,
            latency,
            entities is not None,
        )
    return {
        "model_version": loaded.version.name,
        "request_id": request_id,
        "predictions": items,
    }


def _naive_utc(when: datetime) -> datetime:
    """The store's time convention: naive UTC (an aware time is converted, a naive one kept)."""
    if when.tzinfo is None:
        return when
    from datetime import UTC

    return when.astimezone(UTC).replace(tzinfo=None)


def _known_entities(featureset: FeatureSet, entities: list[str]) -> set[str]:
    """The entities present in any source the problem reads (features or label)."""
    spec = featureset.spec
    problem = featureset.problem
    names = [spec.features[g].source for g in problem.features] + [problem.label.source]
    sources = featureset.sources
    wanted = sorted(set(entities))
    found: set[str] = set()
    for name in dict.fromkeys(names):
        column = spec.sources[name].entity
        if not column:
            continue
        col = f"CAST({quote(column)} AS VARCHAR)"
        rows = sources.con.execute(
            f"SELECT DISTINCT {col} FROM {sources.view(name)} WHERE {col} IN (SELECT unnest(?))",
            [wanted],
        ).fetchall()
        found.update(r[0] for r in rows)
        if len(found) == len(wanted):
            break
    return found


def log_predictions(
    store, problem, model_id, request_id, items, inputs, latency, by_entity
) -> None:
    now = utcnow()
    rows = [
        {
            "request_id": request_id,
            "problem": problem,
            "model_version_id": model_id,
            "entity": item["id"] if by_entity else None,
            "inputs": _jsonable(inputs[i]),
            "score": item["score"],
            "label": item["label"],
            "latency_ms": latency,
            "created_at": now,
        }
        for i, item in enumerate(items)
    ]
    with store.begin() as conn:
        conn.execute(prediction_log.insert(), rows)


def _jsonable(record: dict) -> dict:
    out = {}
    for key, value in record.items():
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        elif hasattr(value, "item"):
            value = value.item()
        elif not isinstance(value, str | int | float | bool) and value is not None:
            value = str(value)
        out[key] = value
    return out
