"""Monitoring inside a project: ``monitor_problem`` (the production model's training data against
what it scored since: the latest batch run's features or the prediction log's inputs) and
``project_drift`` (any two spec sources or files). ``Project.monitor``/``Project.drift`` call
these."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd
import sqlalchemy as sa

from ..errors import NotFoundError
from ._adhoc import Table, as_frame
from ._compare import compare
from ._drift import DriftOptions

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
    chunk: str | None = None,
    html: str | Path | None = None,
) -> dict:
    """Compare the production model's training dataset with its latest batch-scored features
    (``current="batch"``) or the prediction log's inputs (``"log"``, optionally ``since``);
    ``"auto"``: the batch run when there is one, else the log. Stores the run in
    ``monitor_runs`` and returns the result (with its ``id``)."""
    from ..batch import latest_run
    from ..features import LABEL_COLUMN, get_dataset, load_dataset
    from ..store import utcnow
    from ..store.tables import monitor_runs, predictions

    mv, bundle = project.load_model(problem)
    options = DriftOptions.from_spec(project.spec.monitoring)
    chunk = chunk or project.spec.monitoring.chunk
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
    time_column = None
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
        frame = _log_frame(project, problem, mv.id, since)
        if frame is None:
            hint = f"run `cycleml predict {problem} --batch` first, or serve the model"
            raise NotFoundError(
                f"problem {problem!r} has no batch predictions or logged predictions of "
                f"{mv.name} to monitor yet" + (f" since {since:%Y-%m-%d %H:%M}" if since else ""),
                hint=hint,
            )
        described = {"source": "prediction_log", "since": since.isoformat() if since else None}
        time_column = "__logged_at"
    reference = load_dataset(dataset, project.artifacts)
    reference[PREDICTION] = bundle.outputs(reference[names])[0]
    if chunk and time_column is None:
        chunk = None  # a batch run is one point in time
        described["chunk"] = "not chunked: a batch run is scored at one as_of"
    result = compare(
        reference,
        frame,
        columns=bundle.columns,
        options=options,
        prediction=PREDICTION,
        target=LABEL_COLUMN,
        time_column=time_column,
        chunk=chunk,
    )
    result["reference"].update(dataset_version=dataset.id)
    result["current"].update(described)
    result.update(problem=problem, model=mv.name, alpha=options.alpha)
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
    if html:
        from ..reports._drift_report import drift_report

        result["html"] = str(drift_report(html, result))
    return result


def _log_frame(
    project: Project, problem: str, model_version_id: int, since: datetime | None
) -> pd.DataFrame | None:
    from ..store.tables import prediction_log

    log = prediction_log.c
    query = sa.select(log.inputs, log.score, log.created_at).where(
        log.problem == problem, log.model_version_id == model_version_id
    )
    if since is not None:
        query = query.where(log.created_at >= since)
    with project.store.connect() as conn:
        rows = conn.execute(query.order_by(log.id)).all()
    if not rows:
        return None
    frame = pd.DataFrame.from_records([r.inputs or {} for r in rows])
    frame[PREDICTION] = [r.score for r in rows]
    frame["__logged_at"] = pd.to_datetime([r.created_at for r in rows])
    return frame


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
