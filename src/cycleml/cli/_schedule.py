"""`cycleml schedule` commands: run, list (the jobs of ``schedules:`` in cycleml.yaml)."""

from __future__ import annotations

import json
import os
import sys
import threading
from datetime import datetime
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ._common import (
    JsonOpt,
    ProjectOpt,
    _default_project,
    _json_default,
    _print_json,
    _project,
    app,
    command,
    err,
    out,
)

schedule_app = typer.Typer(
    help="Scheduled jobs (`schedules:` in cycleml.yaml): batch predictions, materialization, "
    "monitoring on cron.",
    no_args_is_help=True,
)
app.add_typer(schedule_app, name="schedule")

_STYLE = {"done": "green", "failed": "bold red", "skipped": "dim", "running": "cyan"}


@schedule_app.command("run")
@command
def schedule_run(
    once: Annotated[
        bool,
        typer.Option("--once", help="Run what is due now (missed or due), then exit."),
    ] = False,
    catch_up: Annotated[
        bool,
        typer.Option("--catch-up", help="Without --once: first run what is due now, as --once."),
    ] = False,
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the scheduled jobs on cron until Ctrl-C/SIGTERM, or with --once what is due now.

    Stopping lets running jobs finish (a second Ctrl-C does not wait). --once exits 1 if a job
    failed. A lock in the store means no job runs twice for the same due time."""
    from ..schedule import Scheduler

    proj = _project(project or _default_project())
    report = _json_line if (as_json and not once) else (None if as_json else _say)
    scheduler = Scheduler(proj, report=report)
    if once:
        runs = scheduler.run_due()
        finished = [r for r in runs if r.status != "running"]
        failed = sum(r.status == "failed" for r in finished)
        if as_json:
            _print_json(
                {
                    "runs": [r.to_dict() for r in finished],
                    "done": sum(r.status == "done" for r in finished),
                    "failed": failed,
                    "skipped": sum(r.status == "skipped" for r in finished),
                }
            )
        elif not finished:
            err.print("nothing is due")
        if failed:
            raise typer.Exit(1)
        return
    jobs = scheduler.status()
    if not as_json:
        err.print(
            f"scheduling {len(jobs)} job(s) of {escape(proj.spec.name)} (store "
            f"{escape(proj.store.display_url)}); Ctrl-C to stop"
        )
        for job in jobs:
            err.print(f"  {escape(job['job'])}: next run {_when(job['next_run'])} UTC")
    try:
        scheduler.run_forever(threading.Event(), catch_up=catch_up, on_error=_say_error)
    except KeyboardInterrupt:
        # A second Ctrl-C: the running jobs were recorded as failed; do not wait for them.
        err.print("stopped without waiting for the running jobs (recorded as failed)")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    if not as_json:
        err.print("scheduler stopped")


@schedule_app.command("list")
@command
def schedule_list(project: ProjectOpt = None, as_json: JsonOpt = False) -> None:
    """Each scheduled job with its cron, next run and last run's status."""
    from ..schedule import Scheduler

    jobs = Scheduler(_project(project or _default_project())).status()
    if as_json:
        _print_json({"schedules": jobs})
        return
    table = Table("job", "kind", "problem", "cron", "next run (UTC)", "last run (due, UTC)")
    for job in jobs:
        last = job["last_run"] or {}
        status = last.get("status")
        table.add_row(
            escape(job["job"]),
            job["kind"],
            escape(job["problem"]),
            escape(job["cron"] + ("" if job["timezone"] == "UTC" else f" ({job['timezone']})")),
            _when(job["next_run"]),
            f"[{_STYLE.get(status, '')}]{status}[/] {_when(last.get('due_at'))}"
            if status
            else "never run",
        )
    out.print(table)
    for job in jobs:
        last = job["last_run"] or {}
        if last.get("status") == "failed":
            err.print(f"[bold red]{escape(job['job'])} failed:[/] {escape(last['message'] or '')}")


def _when(moment: datetime | None) -> str:
    return "—" if moment is None else moment.isoformat(sep=" ", timespec="seconds")


def _say(run) -> None:
    style = _STYLE.get(run.status, "")
    line = f"[{style}]{run.status}[/] {escape(run.job)} (due {_when(run.due_at)})"
    if run.status != "running":
        line += f" in {run.seconds:.1f}s" if run.status != "skipped" else ""
        if run.message:
            line += f": {escape(run.message)}"
    err.print(line)


def _say_error(job: str, exc: BaseException) -> None:
    err.print(f"[bold red]error:[/] job {escape(job)} could not run: {escape(str(exc))}")


def _json_line(run) -> None:
    """In the foreground with --json: one JSON object per line for each finished run."""
    if run.status != "running":
        print(json.dumps(run.to_dict(), default=_json_default), flush=True)
