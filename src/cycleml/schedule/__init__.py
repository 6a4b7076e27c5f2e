"""Scheduled jobs (``schedules:`` in cycleml.yaml): batch predictions, online-feature
materialization and monitoring on cron, with a lock in the store so that two schedulers never
run the same job for the same due time twice."""

from ._cron import last_fire, next_fire, trigger
from ._scheduler import JobRun, Scheduler

__all__ = ["JobRun", "Scheduler", "last_fire", "next_fire", "trigger"]
