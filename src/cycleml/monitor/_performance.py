"""Performance over time: per chunk, the metrics the labels realise (from feedback on the
prediction log, or from the problem's own label definition once a batch run's label window has
passed) against the model version's test metrics from training, and, before labels arrive,
the metrics CBPE estimates from the scores of a calibrated binary classifier."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from ._cbpe import ESTIMATED, estimate, expected_calibration_error

if TYPE_CHECKING:
    from ..project import Project
    from ..registry import ModelVersion

HIGHER_IS_BETTER = ("roc_auc", "accuracy", "precision", "recall", "f1", "r2")
LOWER_IS_BETTER = ("log_loss", "brier", "mae", "rmse")
METRICS = {
    "binary": ("roc_auc", "accuracy", "precision", "recall", "f1", "log_loss", "brier"),
    "regression": ("mae", "rmse", "r2"),
}


@dataclass
class PerformanceOptions:
    """``monitoring.performance`` of the spec (see docs/monitoring.md)."""

    tolerance: float = 0.05
    min_labels: int = 30
    max_ece: float = 0.05
    estimate: bool = True
    interval: float = 0.95

    @classmethod
    def from_spec(cls, monitoring: Any) -> PerformanceOptions:
        spec = getattr(monitoring, "performance", None)
        if spec is None:
            return cls()
        return cls(**{k: getattr(spec, k) for k in cls.__dataclass_fields__ if hasattr(spec, k)})


@dataclass
class Chunk:
    """One chunk of scored rows: its bounds, every score, and the labels known (NaN: none)."""

    start: datetime
    end: datetime
    scores: np.ndarray
    labels: np.ndarray
    note: str | None = None  # why no label is known yet


def realised_metrics(task: str, labels: np.ndarray, scores: np.ndarray, threshold: float | None):
    """The task's metrics on labelled rows (training's own metric code)."""
    from ..train._metrics import classification_metrics, regression_metrics

    if task == "binary":
        out = classification_metrics(labels.astype(int), scores, threshold or 0.5)
        out.pop("calibration", None)
        return out
    return regression_metrics(labels, scores)


def performance(
    task: str,
    chunks: list[Chunk],
    reference: dict,
    threshold: float | None,
    options: PerformanceOptions,
    *,
    source: str,
    labels_from: str,
    labels_note: str | None = None,
) -> dict:
    """The ``performance`` part of a monitor result (see docs/monitoring.md)."""
    names = METRICS.get(task)
    out: dict[str, Any] = {
        "task": task,
        "source": source,
        "labels_from": labels_from,
        "tolerance": options.tolerance,
        "min_labels": options.min_labels,
        "threshold": threshold,
    }
    if names is None:
        out.update(reference={}, chunks=[], skipped=f"not computed for {task} models yet")
        return out
    out["reference"] = {k: reference.get(k) for k in names if reference.get(k) is not None}
    out["reference"]["rows"] = reference.get("rows")
    estimating, note = _can_estimate(task, reference, threshold, options)
    out["estimated_status"] = "estimated" if estimating else note
    if task == "binary":
        out["calibration"] = {
            "ece": expected_calibration_error(reference.get("calibration") or []),
            "max_ece": options.max_ece,
        }
    entries = []
    for chunk in chunks:
        known = ~np.isnan(chunk.labels)
        entry: dict[str, Any] = {
            "start": chunk.start.isoformat(),
            "end": chunk.end.isoformat(),
            "n": len(chunk.scores),
            "n_labelled": int(known.sum()),
            "realised": None,
            "estimated": None,
        }
        if entry["n_labelled"] == 0:
            entry["realised_note"] = chunk.note or labels_note or "no labels yet"
        elif entry["n_labelled"] < options.min_labels:
            entry["realised_note"] = (
                f"too few labels: {entry['n_labelled']} labelled rows, at least "
                f"{options.min_labels} needed (monitoring.performance.min_labels)"
            )
        else:
            entry["realised"] = realised_metrics(
                task, chunk.labels[known], chunk.scores[known], threshold
            )
        if estimating and len(chunk.scores):
            entry["estimated"] = estimate(chunk.scores, float(threshold or 0.5), options.interval)
        entry["drop"] = _drops(out["reference"], entry, options.tolerance)
        entry["dropped"] = [m for m, d in entry["drop"].items() if d.get("dropped")]
        entries.append(entry)
    out["chunks"] = entries
    labelled = sum(e["n_labelled"] for e in entries)
    out["n"] = sum(e["n"] for e in entries)
    out["n_labelled"] = labelled
    if labelled == 0:
        out["realised_status"] = labels_note or "no labels yet"
    else:
        out["realised_status"] = f"{labelled} labelled rows"
    return out


def _can_estimate(
    task: str, reference: dict, threshold: float | None, options: PerformanceOptions
) -> tuple[bool, str]:
    if not options.estimate:
        return False, "not estimated: monitoring.performance.estimate is false"
    if task != "binary":
        return False, f"not estimated: CBPE applies to binary classifiers, this is {task}"
    ece = expected_calibration_error(reference.get("calibration") or [])
    if ece is None:
        return False, "not estimated: the model has no calibration figures from training"
    if ece > options.max_ece:
        return False, (
            f"not estimated: model not calibrated (ECE {ece:.3f} on its test data, above "
            f"monitoring.performance.max_ece {options.max_ece})"
        )
    return True, "estimated"


def _drops(reference: dict, entry: dict, tolerance: float) -> dict:
    """Per metric: the training value, the realised and estimated ones and their change; a
    score (ROC-AUC, accuracy, ...) dropped when it fell more than ``tolerance`` below the
    training value, an error (log loss, Brier, MAE, RMSE) when it rose more than
    ``tolerance`` x 100% above it."""
    out = {}
    for metric, base in reference.items():
        if metric == "rows" or base is None:
            continue
        item: dict[str, Any] = {"training": base}
        for side in ("realised", "estimated"):
            value = (entry.get(side) or {}).get(metric)
            if value is None:
                continue
            change = value - base
            item[side] = value
            item[f"{side}_change"] = change
            worse = (
                -change > tolerance
                if metric in HIGHER_IS_BETTER
                else change > tolerance * abs(base)
            )
            item["dropped" if side == "realised" else "estimated_dropped"] = bool(worse)
        if len(item) > 1:
            out[metric] = item
    return out


# -- labels ----------------------------------------------------------------------------------------


def log_labels(
    project: Project, problem: str, model_version_id: int, log_ids: np.ndarray
) -> np.ndarray:
    """The label of each prediction-log row ``log_ids`` from ``feedback`` (NaN: none). Feedback
    naming a request (and item) labels that row; feedback naming only an entity labels the
    entity's latest logged prediction made at or before the feedback arrived. When several
    labels name one row, the latest wins."""
    from ..store.tables import feedback, prediction_log

    f, log = feedback.c, prediction_log.c
    by_request = (
        sa.select(log.id.label("log_id"), f.id.label("fid"), f.label)
        .select_from(
            feedback.join(
                prediction_log,
                sa.and_(
                    log.request_id == f.request_id,
                    sa.or_(f.item_id.is_(None), log.item_id == f.item_id),
                    sa.or_(f.entity.is_(None), log.entity.is_(None), log.entity == f.entity),
                ),
            )
        )
        .where(
            f.problem == problem,
            f.request_id.is_not(None),
            log.problem == problem,
            log.model_version_id == model_version_id,
        )
    )
    with project.store.connect() as conn:
        matched = pd.DataFrame(conn.execute(by_request).all(), columns=["log_id", "fid", "label"])
        by_entity = pd.DataFrame(
            conn.execute(
                sa.select(f.id.label("fid"), f.entity, f.label, f.created_at).where(
                    f.problem == problem, f.request_id.is_(None), f.entity.is_not(None)
                )
            ).all(),
            columns=["fid", "entity", "label", "created_at"],
        )
        if len(by_entity):
            entities = sorted(set(by_entity["entity"]))
            rows = []
            for start in range(0, len(entities), 500):
                rows += conn.execute(
                    sa.select(log.id, log.entity, log.created_at).where(
                        log.problem == problem,
                        log.model_version_id == model_version_id,
                        log.entity.in_(entities[start : start + 500]),
                    )
                ).all()
            logged = pd.DataFrame(rows, columns=["log_id", "entity", "logged_at"])
            if len(logged):
                left = by_entity.sort_values("created_at")
                right = logged.sort_values("logged_at")
                joined = pd.merge_asof(
                    left,
                    right,
                    left_on="created_at",
                    right_on="logged_at",
                    by="entity",
                    direction="backward",
                    allow_exact_matches=True,
                ).dropna(subset=["log_id"])
                joined["log_id"] = joined["log_id"].astype(np.int64)
                matched = pd.concat([matched, joined[["log_id", "fid", "label"]]])
    labels = np.full(len(log_ids), np.nan)
    if len(matched) == 0:
        return labels
    latest = matched.sort_values("fid").drop_duplicates("log_id", keep="last")
    lookup = pd.Series(latest["label"].to_numpy(float), index=latest["log_id"].to_numpy(np.int64))
    found = lookup.reindex(np.asarray(log_ids, dtype=np.int64)).to_numpy(float)
    return found


def batch_chunks(
    project: Project, problem: str, mv: ModelVersion, since: datetime | None
) -> tuple[list[Chunk], str | None]:
    """One chunk per batch prediction run of ``mv`` (by ``as_of``), labelled by the problem's
    label definition where the label window has passed in the data; the note says when none
    has."""
    from ..features._group_events import AS_OF, ENTITY
    from ..features._labels import data_end, label_sql, label_window, window_text
    from ..store.tables import prediction_runs, predictions

    runs_q = sa.select(prediction_runs.c.id, prediction_runs.c.as_of).where(
        prediction_runs.c.problem == problem, prediction_runs.c.model_version_id == mv.id
    )
    if since is not None:
        runs_q = runs_q.where(prediction_runs.c.as_of >= since)
    with project.store.connect() as conn:
        runs = conn.execute(runs_q.order_by(prediction_runs.c.as_of)).all()
        scored = {
            run.id: pd.DataFrame(
                conn.execute(
                    sa.select(predictions.c.entity, predictions.c.score).where(
                        predictions.c.run_id == run.id, predictions.c.horizon.is_(None)
                    )
                ).all(),
                columns=["entity", "score"],
            )
            for run in runs
        }
    spec = project.spec.problems[problem]
    window = label_window(spec)
    chunks: list[Chunk] = []
    notes: list[str] = []
    with project.open_sources() as sources:
        end = data_end(spec, sources)
        for run in runs:
            frame = scored[run.id]
            labels = np.full(len(frame), np.nan)
            due = run.as_of + window
            note = None
            if end is None or due > end:
                note = (
                    f"no labels yet: the {window_text(window)} label window of the run as of "
                    f"{run.as_of:%Y-%m-%d %H:%M} ends {due:%Y-%m-%d %H:%M}, the data "
                    + (f"ends {end:%Y-%m-%d %H:%M}" if end else "has no time")
                )
                notes.append(note)
            elif len(frame):
                spine = pd.DataFrame(
                    {ENTITY: frame["entity"].astype(str), AS_OF: pd.Timestamp(run.as_of)}
                )
                sources.con.register("__monitor_spine", spine)
                try:
                    known = sources.con.sql(label_sql(spec, sources, "__monitor_spine")).df()
                finally:
                    sources.con.unregister("__monitor_spine")
                got = dict(zip(known[ENTITY], known["label"], strict=True))
                labels = np.array([got.get(e, np.nan) for e in frame["entity"]], dtype=float)
            chunks.append(Chunk(run.as_of, run.as_of, frame["score"].to_numpy(float), labels, note))
    return chunks, (notes[-1] if notes and len(notes) == len(runs) else None)


def reference_metrics(mv: ModelVersion) -> dict:
    """The model version's test metrics from training."""
    return dict(mv.metrics or {})


__all__ = [
    "ESTIMATED",
    "Chunk",
    "PerformanceOptions",
    "batch_chunks",
    "log_labels",
    "performance",
    "realised_metrics",
    "reference_metrics",
]
