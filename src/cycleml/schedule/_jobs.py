"""What each kind of scheduled job does: one call of the Python API."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from ..spec._schedules import ScheduleSpec

if TYPE_CHECKING:
    from ..project import Project


def run_job(project: Project, schedule: ScheduleSpec, due_at: datetime) -> str:
    """Run one job for the due time ``due_at`` (naive UTC); return a one-line summary."""
    if schedule.job == "predict":
        return _predict(project, schedule, due_at)
    if schedule.job == "materialize":
        return _materialize(project, schedule, due_at)
    return _monitor(project, schedule)


def _predict(project: Project, schedule: ScheduleSpec, due_at: datetime) -> str:
    kwargs: dict = {"as_of": due_at}
    if schedule.to is not None:
        kwargs["to"] = schedule.to
    run = project.predict_batch(schedule.problem, **kwargs)
    where = getattr(run, "target", None) or "the store"
    return (
        f"scored {run.rows} rows of {schedule.problem} as of {run.as_of.isoformat()} with "
        f"{run.model_name} into {where} (prediction run {run.id})"
    )


def _materialize(project: Project, schedule: ScheduleSpec, due_at: datetime) -> str:
    result = project.materialize(schedule.problem, as_of=due_at)
    text = (
        f"materialized {result['entities']} entities x {result['features']} features of "
        f"{schedule.problem} as of {result['as_of']} into the online store"
    )
    return text + (f"; note: {result['note']}" if result.get("note") else "")


def _monitor(project: Project, schedule: ScheduleSpec) -> str:
    if schedule.retrain:  # issue 8: the retrain loop
        result = project.monitor_and_retrain(schedule.problem, budget=schedule.budget)
    else:
        result = project.monitor(schedule.problem)
    text = (
        f"monitored {schedule.problem} ({result['model']}): drift share "
        f"{result['drift_share']:.0%}, {len(result['drifted'])} drifted feature(s), dataset "
        f"drift {'yes' if result['dataset_drift'] else 'no'} (monitor run {result.get('id')})"
    )
    # -- alerts and the retrain loop (issue 8) --
    if result.get("alerts"):
        text += f"; {len(result['alerts'])} alert(s): " + ", ".join(
            a["rule"] for a in result["alerts"]
        )
    retrain = result.get("retrain")
    if retrain and retrain.get("retrained"):
        text += f"; retrain decision {retrain['id']}: {retrain['reason']}"
    return text
