"""``schedules:``: jobs cycleml runs on a cron schedule (``cycleml schedule run``).

A cron expression has five fields, ``minute hour day-of-month month day-of-week``, read as
crontab(5) reads them (day of week 0 or 7 is Sunday), or six with a leading ``second`` field.
The macros ``@hourly``, ``@daily``, ``@weekly``, ``@monthly`` and ``@yearly`` are accepted too.
"""

from __future__ import annotations

from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from ._base import Name, _Model

JobKind = Literal["predict", "materialize", "monitor"]

CRON_HELP = (
    "a cron expression is five fields `minute hour day-of-month month day-of-week`, for example "
    '"0 3 * * *" (every day at 03:00) or "*/15 * * * 1-5" (every 15 minutes on weekdays); '
    "a sixth leading field gives seconds; @hourly, @daily, @weekly, @monthly, @yearly also work"
)

_MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


class ScheduleSpec(_Model):
    """One scheduled job: ``job`` on ``problem`` whenever ``cron`` fires in ``timezone``.
    ``to`` (predict only) is where the batch predictions go instead of the store's table."""

    cron: str
    job: JobKind
    problem: Name
    to: str | None = None
    timezone: str = "UTC"
    description: str | None = None
    # -- monitor jobs (issue 8): retrain when the run raises an alert; its training budget --
    retrain: bool = False
    budget: float | None = Field(default=None, gt=0)

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        cron_fields(value)  # raises ValueError saying what a cron expression looks like
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}: use an IANA name such as UTC, Europe/Paris or "
                "America/New_York"
            ) from None
        return value

    @model_validator(mode="after")
    def _target(self) -> ScheduleSpec:
        if self.to is not None and self.job != "predict":
            raise ValueError(f"`to` only goes with `job: predict` (this job is {self.job!r})")
        if (self.retrain or self.budget is not None) and self.job != "monitor":
            raise ValueError(
                f"`retrain` and `budget` only go with `job: monitor` (this job is {self.job!r})"
            )
        if self.budget is not None and not self.retrain:
            raise ValueError("`budget` is the retrain's training budget: add `retrain: true`")
        return self


def cron_fields(expr: str) -> dict[str, str]:
    """The APScheduler ``CronTrigger`` fields of a cron expression, checked by building the
    trigger; raises ValueError with :data:`CRON_HELP` when it is not one."""
    from apscheduler.triggers.cron import CronTrigger

    text = " ".join(str(expr).split())
    text = _MACROS.get(text.lower(), text)
    parts = text.split(" ") if text else []
    if len(parts) not in (5, 6):
        raise ValueError(f"{expr!r} has {len(parts)} field(s), not 5: {CRON_HELP}")
    second = parts.pop(0) if len(parts) == 6 else "0"
    minute, hour, day, month, weekday = parts
    if day not in ("*", "?") and weekday not in ("*", "?"):
        raise ValueError(
            f"{expr!r} restricts both the day of the month and the day of the week (cron would "
            f"fire when either matches, which is rarely meant): set one of them to *; {CRON_HELP}"
        )
    fields = {
        "second": second,
        "minute": minute,
        "hour": hour,
        "day": "*" if day == "?" else day,
        "month": month,
        "day_of_week": _weekdays(expr, "*" if weekday == "?" else weekday),
    }
    try:
        CronTrigger(timezone="UTC", **fields)
    except ValueError as exc:
        raise ValueError(f"{expr!r} is not a valid cron expression ({exc}): {CRON_HELP}") from None
    return fields


def _weekdays(expr: str, field: str) -> str:
    """Rewrite crontab's day of week (0 or 7 = Sunday, names allowed) as explicit day names:
    APScheduler 3 numbers the days from Monday = 0."""
    if field == "*":
        return field
    days: set[int] = set()
    for part in field.lower().split(","):
        body, _, step_text = part.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if body == "*":
                low, high = 0, 6
            elif "-" in body:
                a, b = body.split("-", 1)
                low, high = _day(a), _day(b)
                if high == 0 and b.strip() in ("7",):
                    high = 7
            else:
                low = high = _day(body)
                if step_text:
                    high = 6
        except ValueError:
            raise ValueError(
                f"{expr!r}: day of week {part!r} is not valid (use 0-7 with 0 and 7 Sunday, "
                f"or sun..sat): {CRON_HELP}"
            ) from None
        if step < 1 or low > high:
            raise ValueError(f"{expr!r}: day of week range {part!r} is not valid: {CRON_HELP}")
        days.update(d % 7 for d in range(low, high + 1, step))
    return ",".join(_DAYS[d] for d in sorted(days))


def _day(text: str) -> int:
    text = text.strip()
    if text in _DAYS:
        return _DAYS.index(text)
    number = int(text)
    if not 0 <= number <= 7:
        raise ValueError(text)
    return number % 7 if number != 7 else 0
