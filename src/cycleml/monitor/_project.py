"""Monitoring inside a project: ``monitor_problem`` (the production model's training data against
what it scored since: the latest batch run's features or the prediction log's inputs) and
``project_drift`` (any two spec sources or files). ``Project.monitor``/``Project.drift`` call
these."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import sqlalchemy as sa

from ..errors import NotFoundError
from ._adhoc import Table, as_frame
from ._chunks import LOG_ID, LOGGED_AT, LogFrame, chunk_drift, chunk_unit, read_log
from ._compare import compare
from ._drift import DriftOptions
from ._quality import volume_findings

if TYPE_CHECKING:
    from ..project import Project

Current = Literal["auto", "batch", "log"]
PREDICTION = "prediction"


def monitor_problem(
    project: Project,
    problem: str,
    *,
    current: Current = "auto",
    since: datetime | None = None,
    chunk: str | int | None = None,
    html: str | Path | None = None,
) -> dict:
    """Compare the production model's training dataset with its latest batch-scored features
    (``current="batch"``) or the prediction log's inputs (``"log"``, optionally ``since``);
    ``"auto"``: the batch run when there is one, else the log. The log is read in bulk and,
    with ``chunk`` (day, week or N rows), each chunk is compared too (``chunks``,
    ``drift_over_time``). ``performance``: realised and estimated metrics per chunk (log) or
    per batch run. Stores the run in ``monitor_runs`` and returns the result (with its
    ``id``)."""
    from ..batch import latest_run
    from ..features import LABEL_COLUMN, get_dataset, load_dataset
    from ..store import utcnow
    from ..store.tables import monitor_runs, predictions

    started = time.perf_counter()
    mv, bundle = project.load_model(problem)
    options = DriftOptions.from_spec(project.spec.monitoring)
    chunk = chunk_unit(chunk or project.spec.monitoring.chunk)
    run = latest_run(project.store, problem) if current in ("auto", "batch") else None
    if current == "batch" and run is None:
        raise NotFoundError(
            f"problem {problem!r} has no batch predictions to monitor yet",
            hint=f"run `cycleml predict {problem} --batch` first",
        )
    dataset = get_dataset(project.store, mv.dataset_version_id)
    if dataset is None:
        raise NotFoundError(f"dataset version {mv.dataset_version_id} of {mv.name} is missing")
    names = bundle.feature_names
    log: LogFrame | None = None
    if run is not None:
        frame = pd.read_parquet(project.artifacts.verified_path(run["features_sha256"]))
        with project.store.connect() as conn:
            scores = pd.read_sql(
                sa.select(predictions.c.entity, predictions.c.score).where(
                    predictions.c.run_id == run["id"]
                ),
                conn,
            )
        described: dict[str, Any] = {
            "source": "batch",
            "prediction_run": run["id"],
            "as_of": run["as_of"].isoformat(),
        }
        if len(scores) == len(frame):
            frame[PREDICTION] = scores["score"].to_numpy()
    else:
        log = read_log(project, problem, mv.id, bundle.columns, since, chunk)
        frame = log.frame if log is not None else None
        if frame is None:
            hint = f"run `cycleml predict {problem} --batch` first, or serve the model"
            raise NotFoundError(
                f"problem {problem!r} has no batch predictions or logged predictions of "
                f"{mv.name} to monitor yet" + (f" since {since:%Y-%m-%d %H:%M}" if since else ""),
                hint=hint,
            )
        described = {"source": "prediction_log", "since": since.isoformat() if since else None}
    reference = load_dataset(dataset, project.artifacts)
    reference[PREDICTION] = bundle.outputs(reference[names])[0]
    if chunk and log is None:
        chunk = None  # a batch run is one point in time
        described["chunk"] = "not chunked: a batch run is scored at one as_of"
    # performance first: its labels also give the target's drift
    perf = _performance(project, problem, mv, since, run, log, frame)
    result = compare(
        reference,
        frame,
        columns=bundle.columns,
        options=options,
        prediction=PREDICTION,
        target=LABEL_COLUMN,
    )
    if log is not None and log.rows:
        result["chunks"], result["drift_over_time"] = chunk_drift(
            reference, log, bundle.columns, options
        )
        result["quality"] += volume_findings(result["chunks"])
        described["chunk"] = chunk
    result["performance"] = perf
    result["reference"].update(dataset_version=dataset.id)
    result["current"].update(described)
    result.update(problem=problem, model=mv.name, alpha=options.alpha)
    result["seconds"] = time.perf_counter() - started
    created = utcnow()
    with project.store.begin() as conn:
        result["id"] = conn.execute(
            monitor_runs.insert()
            .values(
                problem=problem,
                model_version_id=mv.id,
                reference_dataset_id=dataset.id,
                prediction_run_id=run["id"] if run is not None else None,
                drift_share=result["drift_share"],
                drifted=len(result["drifted"]),
                result=_jsonable(result),
                created_at=created,
            )
            .returning(monitor_runs.c.id)
        ).scalar_one()
    result["created_at"] = created.isoformat()
    # alerts (issue 8): monitoring.rules -> alerts rows, log lines, webhook; result["alerts"]
    from ._alerts import evaluate_rules

    evaluate_rules(project, problem, result, result["id"])
    if html:
        from ..reports._drift_report import drift_report

        result["html"] = str(drift_report(html, result))
    return result


def _performance(
    project: Project,
    problem: str,
    mv: Any,
    since: datetime | None,
    run: dict | None,
    log: LogFrame | None,
    frame: pd.DataFrame,
) -> dict:
    """Realised and estimated performance per chunk: of the log's chunks (labels from
    feedback) or of the model version's batch runs (labels from the label definition). Puts
    the labels known for the current rows in ``frame`` as its target column."""
    from ..features import LABEL_COLUMN
    from ._performance import (
        METRICS,
        Chunk,
        PerformanceOptions,
        batch_chunks,
        log_labels,
        performance,
    )

    options = PerformanceOptions.from_spec(project.spec.monitoring)
    task = project.spec.problems[problem].task
    source = "prediction_log" if log is not None else "batch"
    if task not in METRICS:  # multiclass, ranking, forecast: no labels gathered
        return performance(task, [], {}, None, options, source=source, labels_from="")
    if log is not None:
        labels = log_labels(project, problem, mv.id, frame[LOG_ID].to_numpy())
        scores = frame[PREDICTION].to_numpy(float)
        if log.rows:
            parts = list(zip(log.starts, log.ends, log.rows, strict=True))
        else:
            stamps = frame[LOGGED_AT]
            parts = [(stamps.min().to_pydatetime(), stamps.max().to_pydatetime(), slice(None))]
        chunks = [Chunk(a, b, scores[rows], labels[rows]) for a, b, rows in parts]
        note = None
        source, labels_from = "prediction_log", "feedback"
    else:
        chunks, note = batch_chunks(project, problem, mv, since)
        source, labels_from = "batch", "label definition"
        labels = None
        if run is not None:
            same = [c for c in chunks if c.start == run["as_of"] and len(c.labels) == len(frame)]
            labels = same[-1].labels if same else None
    if labels is not None and not np.isnan(labels).all():
        frame[LABEL_COLUMN] = labels
    result = performance(
        task,
        chunks,
        dict(mv.metrics or {}),
        mv.threshold,
        options,
        source=source,
        labels_from=labels_from,
        labels_note=note,
    )
    for entry, chunk in zip(result["chunks"], chunks, strict=True):
        entry["chunk"] = chunk.start.isoformat()
    if log is not None and log.rows:
        for n, entry in enumerate(result["chunks"]):
            entry["chunk"] = log.label(n)
    elif log is not None:
        result["chunks"][0]["chunk"] = "all"
    return result


def project_drift(
    project: Project,
    reference: Table,
    current: Table,
    *,
    html: str | Path | None = None,
    **kwargs: Any,
) -> dict:
    """``cycleml.monitor.drift`` where a name of a spec source reads that source, with the
    spec's ``monitoring:`` settings."""
    frames = {}
    for side, table in (("reference", reference), ("current", current)):
        if isinstance(table, str) and table in project.spec.sources:
            with project.open_sources() as sources:
                frames[side] = sources.con.sql(f"SELECT * FROM {sources.view(table)}").df()
        else:
            frames[side] = as_frame(table)
    options = kwargs.pop("options", None) or DriftOptions.from_spec(project.spec.monitoring)
    chunk = kwargs.pop("chunk", None)
    result = compare(frames["reference"], frames["current"], options=options, chunk=chunk, **kwargs)
    for side, table in (("reference", reference), ("current", current)):
        if not isinstance(table, pd.DataFrame):
            key = "source" if isinstance(table, str) and table in project.spec.sources else "path"
            result[side][key] = str(table)
    if html:
        from ..reports._drift_report import drift_report

        result["html"] = str(drift_report(html, result))
    return result


def _jsonable(value: Any) -> Any:
    """The result as plain JSON types (the store's JSON column)."""
    import math

    import numpy as np

    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
