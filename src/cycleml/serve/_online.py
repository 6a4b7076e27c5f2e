"""Online predictions: the model cache, record checks, entity features, scoring and log rows."""

from __future__ import annotations

import math
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from ..data import quote
from ..errors import CycleMLError, InvalidRecordsError
from ..features import FeatureSet
from ..registry import ModelBundle, ModelVersion, Registry
from ..store import Store, utcnow
from ..store.tables import prediction_log


@dataclass
class LoadedModel:
    """A model version in memory; ``extra`` holds what the server derives from it once (the
    request schema)."""

    version: ModelVersion
    bundle: ModelBundle
    extra: dict = field(default_factory=dict)


class ModelCache:
    """The production model per problem.

    Without a refresher, :meth:`get` re-reads the production version every ``ttl_seconds`` on the
    caller's thread. With one (``background=True``, the server), :meth:`get` never touches the
    store once a problem is loaded: :meth:`refresh` (called off the request path) loads a newly
    promoted version completely and then swaps it in with one assignment, so a request uses
    either the old or the new model, never a half-loaded one. A failed reload keeps the old
    model and is reported in :attr:`errors`."""

    def __init__(
        self, registry: Registry, ttl_seconds: float = 2.0, *, on_load=None, background=False
    ) -> None:
        self.registry = registry
        self.ttl = ttl_seconds
        self.on_load = on_load
        self.background = background
        self.errors: dict[str, str] = {}
        self._models: dict[str, LoadedModel] = {}
        self._checked: dict[str, float] = {}
        self._lock = threading.Lock()
        self._versions: dict[tuple[str, int], LoadedModel] = {}  # served experiments (issue 7)

    def peek(self, problem: str) -> LoadedModel | None:
        return self._models.get(problem)

    def loaded(self) -> dict[str, LoadedModel]:
        return dict(self._models)

    def get(self, problem: str) -> LoadedModel:
        loaded = self._models.get(problem)
        if loaded is not None and (
            self.background or time.monotonic() - self._checked.get(problem, 0) < self.ttl
        ):
            return loaded
        return self._load(problem)

    def _load(self, problem: str) -> LoadedModel:
        version = self.registry.get(problem)
        with self._lock:
            loaded = self._models.get(problem)
            if loaded is None or loaded.version.id != version.id:
                fresh = LoadedModel(version, self.registry.load(version))
                if self.on_load is not None:
                    self.on_load(fresh)
                self._models[problem] = loaded = fresh  # the swap: one assignment
            self._checked[problem] = time.monotonic()
        return loaded

    def refresh(self, problems=None) -> None:
        """Check the production version of ``problems`` (default: those loaded) and swap in new
        ones. Never raises: a failure is kept in :attr:`errors` and the old model serves on."""
        for problem in list(problems if problems is not None else self._models):
            try:
                self._load(problem)
                self.errors.pop(problem, None)
            except CycleMLError as exc:
                self.errors[problem] = exc.message
            except Exception as exc:  # noqa: BLE001 - a store outage must not stop the loop
                self.errors[problem] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"

    def version(self, problem: str, number: int) -> LoadedModel:
        """Model version ``number`` of ``problem`` (a served experiment's variant), loaded once
        (sha256 checked) and kept: a version never changes. NotFoundError when it does not
        exist. ``on_load`` is not called (it describes the production model)."""
        key = (problem, number)
        loaded = self._versions.get(key)
        if loaded is None:
            version = self.registry.get(problem, number)
            with self._lock:
                loaded = self._versions.get(key)
                if loaded is None:
                    loaded = LoadedModel(version, self.registry.load(version))
                    self._versions[key] = loaded
        return loaded


def check_records(records: list[dict], bundle: ModelBundle) -> pd.DataFrame:
    """A frame of the model's features; a missing, mistyped or non-finite field is an
    InvalidRecordsError (HTTP 422) naming it."""
    _validate_records(records, bundle)
    return pd.DataFrame.from_records(records, columns=bundle.feature_names)


def _record_inputs(records: list[dict], bundle: ModelBundle) -> list[dict]:
    """The validated records' model inputs, numbers as floats (what the server's parsed
    body gives): scored by the compiled scorer and logged as they are."""
    columns = [(c.name, c.kind == "number") for c in bundle.columns]
    return [
        {
            name: (float(value) if number and value is not None else value)
            for name, number in columns
            for value in (record[name],)
        }
        for record in records
    ]


def _validate_records(records: list[dict], bundle: ModelBundle) -> None:
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


# -- entity features -----------------------------------------------------------------------------


def _online_lookup():
    try:
        from ._online_store import lookup
    except ImportError:  # pragma: no cover - until serve/_online_store.py exists
        return None
    return lookup


def entity_features(
    featureset: FeatureSet,
    store: Store | None,
    entities: list[str],
    as_of: datetime | None,
    *,
    lock: threading.Lock | None = None,
    online: bool = True,
) -> tuple[pd.DataFrame, dict]:
    """Feature rows (entity column + features) for the known ``entities`` among those asked,
    and how fresh they are. Without ``as_of``: from the online store when the problem is
    materialized there (entities it lacks are computed as of now), else computed as of now.
    With ``as_of``: computed by :meth:`FeatureSet.compute`. ``lock`` guards the DuckDB
    connection."""
    unique = list(dict.fromkeys(entities))
    parts: list[pd.DataFrame] = []
    fresh: dict = {}
    missing = unique
    if as_of is None and online and store is not None:
        lookup = _online_lookup()
        if lookup is not None:
            found, info = lookup(store, featureset.name, unique)
            if info:
                fresh = {"source": "online_store", **_iso(info)}
            if found is not None and len(found):
                found = found.copy()
                found[featureset.entity] = found[featureset.entity].astype(str)
                parts.append(found)
                have = set(found[featureset.entity])
                missing = [e for e in unique if e not in have]
    if missing:
        when = _naive_utc(as_of) if as_of is not None else utcnow()
        guard = lock if lock is not None else threading.Lock()
        with guard:
            known = _known_entities(featureset, missing)
            wanted = [e for e in missing if e in known]
            if wanted:
                computed = featureset.compute(wanted, when)
                computed[featureset.entity] = computed[featureset.entity].astype(str)
                parts.append(computed)
        if wanted and not fresh:
            fresh = {"source": "computed", "as_of": when.isoformat()}
        elif wanted:
            fresh["computed_as_of"] = when.isoformat()
    if not parts:
        return pd.DataFrame(columns=[featureset.entity]), fresh
    frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    return frame.reset_index(drop=True), fresh


def _iso(info: dict) -> dict:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in info.items()}


def _naive_utc(when: datetime) -> datetime:
    """The store's time convention: naive UTC (an aware time is converted, a naive one kept)."""
    if when.tzinfo is None:
        return when
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


def score_online(
    reader,
    problem: str,
    loaded: LoadedModel,
    ids: list[str],
    started: float,
    compute_missing,
) -> tuple[dict, list[dict]] | None:
    """The entity answer straight from the online store's JSON (``reader``: an
    :class:`~cycleml.serve._online_store.OnlineReader`): one indexed read, the feature dicts
    scored by the model's compiled scorer, no DataFrame. Entities the store lacks go to
    ``compute_missing(entities) -> (frame, freshness)`` (computed as of now; unknown ones answer
    per item; without it, None). None when this path does not apply (the problem is not
    materialized, the model has no compiled scorer, a feature is stored as a time, too many
    entities): the caller then takes the frame path, which gives the same answer."""
    from ..registry._fastpath import MAX_ROWS

    bundle = loaded.bundle
    unique = list(dict.fromkeys(ids))
    if len(unique) > MAX_ROWS or bundle.fastpath is not None:  # no compiled scorer
        return None
    got = reader.read(problem, unique)
    if got is None:
        return None
    schema, found = got
    names = bundle.feature_names
    if not schema.plain(names):
        return None
    known = [e for e in unique if e in found]
    inputs = [{n: found[e].get(n) for n in names} for e in known]
    fresh = {"source": "online_store", **schema.info}
    if inputs:
        scores, labels = bundle.outputs_records(inputs)
    else:
        scores, labels = np.empty(0), None
    position = {e: i for i, e in enumerate(known)}
    missing = [e for e in unique if e not in found]
    if missing and compute_missing is None:
        return None
    if missing:
        frame, computed = compute_missing(missing)
        if len(frame):
            more_scores, more_labels = bundle.outputs(frame)
            keys = frame[schema.entity].astype(str).tolist()
            position.update((e, len(known) + i) for i, e in enumerate(keys))
            inputs = inputs + _frame_inputs(frame, names)
            scores = np.concatenate([np.asarray(scores), np.asarray(more_scores)])
            if more_labels is not None:
                labels = (
                    more_labels
                    if labels is None
                    else np.concatenate([np.asarray(labels), np.asarray(more_labels)])
                )
        if computed:
            fresh["computed_as_of"] = computed["as_of"]
    answer, rows = score_frame(
        problem,
        loaded,
        None,
        ids,
        [position.get(e) for e in ids],
        entity_name=schema.entity,
        by_entity=True,
        started=started,
        inputs=inputs,
        outputs=(scores, labels),
    )
    answer["features"] = fresh
    return answer, rows


class SharedSources:
    """The project's sources over one DuckDB connection kept open between in-process
    predictions (:meth:`cycleml.Project.predict`): opened at the first call, reopened after
    ``max_age`` seconds (database sources read into memory then see new rows),
    closed by :meth:`close`. ``lock`` guards the connection (not thread-safe)."""

    def __init__(self, spec, path, *, max_age: float = 30.0) -> None:
        self.spec = spec
        self.path = path
        self.max_age = max_age
        self.lock = threading.RLock()
        self._sources = None
        self._opened = 0.0
        self._featuresets: dict[str, FeatureSet] = {}

    def featureset(self, problem: str) -> FeatureSet:
        """The problem's feature code over the shared connection (hold :attr:`lock` to use its
        DuckDB connection)."""
        from ..data import SourceSet

        with self.lock:
            if self._sources is not None and time.monotonic() - self._opened > self.max_age:
                self.close()
            fs = self._featuresets.get(problem)
            if fs is None:
                if self._sources is None:
                    self._sources = SourceSet(
                        self.spec, self.path, threads=self.spec.training.threads
                    )
                    self._opened = time.monotonic()
                fs = self._featuresets[problem] = FeatureSet(self.spec, problem, self._sources)
            return fs

    def close(self) -> None:
        with self.lock:
            if self._sources is not None:
                self._sources.close()
            self._sources = None
            self._featuresets.clear()


# -- scoring and the answer ------------------------------------------------------------------------


def score_frame(
    problem: str,
    loaded: LoadedModel,
    frame: pd.DataFrame | None,
    ids: list[str],
    order: list[int | None],
    *,
    entity_name: str | None,
    by_entity: bool,
    started: float,
    inputs=None,
    outputs: tuple | None = None,
) -> tuple[dict, list[dict]]:
    """Score ``frame`` and build the answer: one item per id, in request order (``order[i]`` is
    the frame row of item ``i``, None for an unknown entity). Returns (answer, log rows).
    ``outputs`` are the bundle's (scores, labels) when the caller scored already (``frame`` is
    then only read for log inputs when ``inputs`` is None)."""
    bundle = loaded.bundle
    if outputs is None:
        outputs = bundle.outputs(frame) if len(frame) else ([], None)
    scores, labels = outputs
    scores = scores.tolist() if hasattr(scores, "tolist") else list(scores)
    labels = labels.tolist() if labels is not None else None
    request_id = uuid.uuid4().hex
    items: list[dict] = []
    logged: list[tuple[dict, int]] = []
    for i, row in enumerate(order):
        item = {"id": ids[i]}
        if by_entity:
            item["entity"] = ids[i]
        if row is None:
            item.update(score=None, label=None, error=f"unknown {entity_name} {ids[i]!r}")
            items.append(item)
            continue
        item["score"] = scores[row]
        item["label"] = labels[row] if labels else None
        items.append(item)
        logged.append((item, row))
    latency = (time.perf_counter() - started) * 1000
    now = utcnow()
    version_id = loaded.version.id
    if inputs is None:
        inputs = _frame_inputs(frame, bundle.feature_names) if logged else []
    rows = [
        {
            "request_id": request_id,
            "problem": problem,
            "model_version_id": version_id,
            "entity": item["id"] if by_entity else None,
            "item_id": None if by_entity else item["id"],
            "inputs": inputs[row],
            "score": item["score"],
            "label": _log_label(item["label"]),
            "class_label": _class_label(item["label"]),
            "latency_ms": latency,
            "created_at": now,
        }
        for item, row in logged
    ]
    answer = {"model_version": loaded.version.name, "request_id": request_id, "predictions": items}
    return answer, rows


def _log_label(label):
    """The log's integer label: 0/1 or an integer class; None for a text class value."""
    if isinstance(label, bool | np.bool_):
        return int(label)
    if isinstance(label, int | np.integer):
        return int(label)
    return None


def _class_label(label):
    """The log's text class: a multiclass model's class value (None for 0/1 labels)."""
    if label is None or isinstance(label, bool | np.bool_ | int | np.integer):
        return None
    return str(label)


def _frame_inputs(frame: pd.DataFrame, names: list[str]) -> list[dict]:
    cols = [n for n in names if n in frame.columns]
    return [_jsonable(r) for r in frame[cols].to_dict("records")]


def _jsonable(record: dict) -> dict:
    out = {}
    for key, value in record.items():
        if (
            isinstance(value, float)
            and not math.isfinite(value)
            or value is pd.NaT
            or value is pd.NA
        ):
            value = None
        elif hasattr(value, "item"):
            value = value.item()
            if isinstance(value, float) and not math.isfinite(value):
                value = None
        elif not isinstance(value, str | int | float | bool) and value is not None:
            value = str(value)
        out[key] = value
    return out


def write_log(store: Store, rows: list[dict]) -> None:
    """Write log rows at once, in one transaction (the in-process path; the server batches)."""
    if rows:
        with store.begin() as conn:
            conn.execute(prediction_log.insert(), rows)


def predict_online(
    cache: ModelCache,
    featureset: FeatureSet,
    store: Store,
    *,
    records: list[dict] | None = None,
    entities: list[str] | None = None,
    as_of: datetime | None = None,
    log: bool = True,
    sink=None,
    lock: threading.Lock | None = None,
) -> dict:
    """Score records (feature values) or entities (features as of ``as_of``; default now, from
    the online store when materialized). Items answer in request order; an unknown entity answers
    ``score: null`` with an ``error`` instead of failing the request. Every scored item is one
    prediction-log row, handed to ``sink`` (a callable taking the rows) or written at once."""
    if (records is None) == (entities is None):
        raise InvalidRecordsError("send exactly one of `records` or `entities`")
    started = time.perf_counter()
    loaded = cache.get(featureset.name)
    bundle = loaded.bundle
    freshness = None
    inputs = outputs = frame = None
    if records is not None:  # scored from the dicts (the compiled scorer), like the server
        _validate_records(records, bundle)
        inputs = _record_inputs(records, bundle)
        outputs = bundle.outputs_records(inputs)
        ids = [
            str(r.get("id", i)) if isinstance(r, dict) else str(i) for i, r in enumerate(records)
        ]
        order: list[int | None] = list(range(len(records)))
    else:
        if not entities:
            raise InvalidRecordsError("entities is empty", hint="send at least one entity id")
        ids = [str(e) for e in entities]
        frame, freshness = entity_features(featureset, store, ids, as_of, lock=lock)
        position = {e: i for i, e in enumerate(frame[featureset.entity])}
        order = [position.get(e) for e in ids]
    answer, rows = score_frame(
        featureset.name,
        loaded,
        frame,
        ids,
        order,
        entity_name=featureset.entity,
        by_entity=entities is not None,
        started=started,
        inputs=inputs,
        outputs=outputs,
    )
    if freshness is not None:
        answer["features"] = freshness
    if log and rows:
        (sink or (lambda r: write_log(store, r)))(rows)
    return answer
