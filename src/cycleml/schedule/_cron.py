"""Cron times of a scheduled job: the trigger, its most recent fire time, its next one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from apscheduler.triggers.cron import CronTrigger

from ..spec._schedules import ScheduleSpec, cron_fields

# How far back the most recent fire time is looked for (a Feb 29 schedule fires every 4 years,
# or 8 across a century).
_LOOKBACK = timedelta(days=366 * 9)


def trigger(schedule: ScheduleSpec) -> CronTrigger:
    """The APScheduler trigger of a schedule (crontab day-of-week numbering already applied)."""
    return CronTrigger(timezone=schedule.timezone, **cron_fields(schedule.cron))


def _aware(moment: datetime) -> datetime:
    """A naive time is naive UTC (the store's convention)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


def next_fire(schedule: ScheduleSpec, now: datetime) -> datetime | None:
    """The first fire time strictly after ``now``, as naive UTC."""
    nxt = trigger(schedule).get_next_fire_time(None, _aware(now) + timedelta(microseconds=1))
    return None if nxt is None else _naive_utc(nxt)


def last_fire(schedule: ScheduleSpec, now: datetime) -> datetime | None:
    """The most recent fire time at or before ``now``, as naive UTC (None if it has not fired
    in the last nine years)."""
    cron = trigger(schedule)
    now = _aware(now)
    span = timedelta(minutes=2)
    while span <= _LOOKBACK * 4:
        fire = cron.get_next_fire_time(None, now - min(span, _LOOKBACK))
        if fire is not None and fire <= now:
            while True:  # walk forward to the last fire time not after now
                following = cron.get_next_fire_time(None, fire + timedelta(seconds=1))
                if following is None or following > now:
                    return _naive_utc(fire)
                fire = following
        if span >= _LOOKBACK:
            break
        span *= 4
    return None
