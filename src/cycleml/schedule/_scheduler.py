"""The scheduler: runs each scheduled job when its cron fires, at most once per due time across
every scheduler sharing the store."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ..errors import CycleMLError, SpecError
from ..spec._schedules import ScheduleSpec
from ..store import utcnow
from . import _runs
from ._cron import last_fire, next_fire, trigger
from ._jobs import run_job

if TYPE_CHECKING:
    from ..project import Project

Report = Callable[["JobRun"], None]


@dataclass
class JobRun:
    """One job for one due time: ``running``, then ``done`` or ``failed``; ``skipped`` when
    another scheduler holds that due time."""

    job: str
    kind: str
    problem: str
    due_at: datetime
    status: str
    message: str | None = None
    run_id: int | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict:
        out = dict(self.__dict__)
        out["due_at"] = self.due_at.isoformat()
        out["seconds"] = round(self.seconds, 3)
        return out


class Scheduler:
    """Runs a project's ``schedules:``. Each job call gets its own :class:`Project` (opened by
    ``open_project``, default: the same folder again), so jobs may run in parallel threads."""

    def __init__(
        self,
        project: Project,
        *,
        open_project: Callable[[], Project] | None = None,
        report: Report | None = None,
    ) -> None:
        if not project.spec.schedules:
            raise SpecError(
                f"{project.path / 'cycleml.yaml'} has no `schedules:`, so there is nothing to run",
                hint='add for example `schedules: {nightly: {cron: "0 3 * * *", job: predict, '
                "problem: PROBLEM}}` (docs/schedules.md)",
            )
        self.project = project
        self.schedules: dict[str, ScheduleSpec] = dict(project.spec.schedules)
        self._open = open_project or (lambda: type(project)(project.path))
        self._report = report or (lambda _run: None)
        self._running: dict[int, JobRun] = {}
        self._lock = threading.Lock()

    # -- what is due -------------------------------------------------------------------------

    def due(self, now: datetime | None = None) -> list[tuple[str, datetime]]:
        """Every job whose most recent fire time (at or before ``now``) has no run yet."""
        now = _naive_utc(now or utcnow())
        out = []
        for name, schedule in self.schedules.items():
            fired = last_fire(schedule, now)
            if fired is not None and not _runs.has_run(self.project.store, name, fired):
                out.append((name, fired))
        return out

    def status(self, now: datetime | None = None) -> list[dict]:
        """Each job with its next run and its latest run's status (what ``schedule list``
        shows)."""
        now = _naive_utc(now or utcnow())
        last = _runs.last_runs(self.project.store, list(self.schedules))
        out = []
        for name, schedule in self.schedules.items():
            run = last.get(name)
            fired = last_fire(schedule, now)
            out.append(
                {
                    "job": name,
                    "kind": schedule.job,
                    "problem": schedule.problem,
                    "cron": schedule.cron,
                    "timezone": schedule.timezone,
                    "to": schedule.to,
                    "next_run": next_fire(schedule, now),
                    "last_due": fired,
                    "due_now": fired is not None and (run is None or run["due_at"] < fired),
                    "last_run": None
                    if run is None
                    else {
                        "due_at": run["due_at"],
                        "status": run["status"],
                        "started_at": run["started_at"],
                        "finished_at": run["finished_at"],
                        "message": run["message"],
                    },
                }
            )
        return out

    # -- running -----------------------------------------------------------------------------

    def run_due(self, now: datetime | None = None) -> list[JobRun]:
        """Run what is due now (missed or due), one job after another, and return the runs."""
        return [self.execute(name, due_at) for name, due_at in self.due(now)]

    def execute(self, name: str, due_at: datetime) -> JobRun:
        """Claim ``name`` at ``due_at`` in the store and run it; ``skipped`` if another
        scheduler claimed it first. A failing job is recorded ``failed``; nothing is raised."""
        schedule = self.schedules[name]
        run = JobRun(name, schedule.job, schedule.problem, due_at, "running")
        run_id = _runs.claim(self.project.store, name, due_at)
        if run_id is None:
            run.status = "skipped"
            run.message = "another scheduler claimed this due time"
            self._report(run)
            return run
        run.run_id = run_id
        with self._lock:
            self._running[run_id] = run
        self._report(run)
        started = time.perf_counter()
        try:
            project = self._open()
            try:
                run.message = run_job(project, schedule, due_at)
            finally:
                project.close()
            run.status = "done"
        except CycleMLError as exc:
            run.status = "failed"
            run.message = f"{type(exc).__name__}: {exc.message}" + (
                f" (hint: {exc.hint})" if exc.hint else ""
            )
        except Exception as exc:  # a job's bug must not stop the scheduler
            run.status = "failed"
            run.message = f"{type(exc).__name__}: {exc}"
        except BaseException:  # Ctrl-C in --once: record the run as failed, then stop
            run.status, run.message = "failed", "interrupted: the scheduler was stopped"
            with contextlib.suppress(Exception):
                _runs.finish(self.project.store, run_id, run.status, run.message)
            with self._lock:
                self._running.pop(run_id, None)
            raise
        run.seconds = time.perf_counter() - started
        try:
            _runs.finish(self.project.store, run_id, run.status, run.message)
        finally:
            with self._lock:
                self._running.pop(run_id, None)
        self._report(run)
        return run

    def run_forever(
        self,
        stop: threading.Event | None = None,
        *,
        catch_up: bool = False,
        max_workers: int = 4,
        on_error: Callable[[str, BaseException], None] | None = None,
    ) -> None:
        """Run every job when its cron fires until ``stop`` is set, or SIGINT/SIGTERM arrives
        (handled when called from the main thread). Stopping waits for running jobs to finish;
        a second signal stops at once, recording the running jobs as failed.
        ``catch_up`` first runs what is due now, as :meth:`run_due` does."""
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        stop = stop or threading.Event()
        self.project.store.open()  # an unreachable store fails here, before anything starts
        if catch_up:
            self.run_due()
        scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max(1, min(max_workers, 16)))},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )
        for name, schedule in self.schedules.items():
            scheduler.add_job(
                self._fire, trigger(schedule), args=[name, on_error], id=name, name=name
            )
        restore = _install_signals(stop)
        try:
            scheduler.start()
            while not stop.wait(0.5):
                pass
            scheduler.shutdown(wait=True)
        except KeyboardInterrupt:
            with contextlib.suppress(Exception):  # it may be half-way through shutting down
                scheduler.shutdown(wait=False)
            self._abandon("interrupted: the scheduler was stopped while the job ran")
            raise
        finally:
            restore()

    def _fire(self, name: str, on_error: Callable[[str, BaseException], None] | None) -> None:
        """APScheduler's job function: run ``name`` for its most recent fire time."""
        due_at = last_fire(self.schedules[name], utcnow())
        if due_at is None:
            return
        try:
            self.execute(name, due_at)
        except Exception as exc:  # the store went away: keep the scheduler up
            if on_error is not None:
                on_error(name, exc)

    def _abandon(self, message: str) -> None:
        with self._lock:
            running = list(self._running.items())
        for run_id, run in running:
            with contextlib.suppress(Exception):  # best effort while stopping
                _runs.finish(self.project.store, run_id, "failed", message)
            run.status, run.message = "failed", message
            self._report(run)

    @property
    def running(self) -> list[JobRun]:
        with self._lock:
            return list(self._running.values())


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def _install_signals(stop: threading.Event) -> Callable[[], None]:
    """SIGINT/SIGTERM set ``stop``; a second one raises KeyboardInterrupt. Only possible from
    the main thread; elsewhere nothing is installed."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum, _frame) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    for sig in previous:
        signal.signal(sig, handler)

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore
