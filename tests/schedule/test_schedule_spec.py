"""`schedules:` in cycleml.yaml: validation at load, and cron times as crontab reads them."""

from __future__ import annotations

from datetime import datetime

import pytest

from cycleml.errors import SpecError
from cycleml.schedule import last_fire, next_fire
from cycleml.spec import parse_spec
from cycleml.spec._schedules import ScheduleSpec

BASE = """\
spec_version: 1
name: shop
sources:
  events: {path: data/events.parquet, entity: user_id, time: ts}
problems:
  churn:
    entity: user_id
    task: binary
    label: {kind: inactivity, source: events, days: 30}
    cutoffs: {every: 7d, start: 2025-01-01}
    features: [activity]
features:
  activity: {source: events, aggregate: {count: "*"}, windows: [30d]}
"""


def _spec(schedules: str):
    return parse_spec(BASE + "schedules:\n" + schedules)


def _issues(schedules: str) -> list[str]:
    with pytest.raises(SpecError) as caught:
        _spec(schedules)
    return [str(issue) for issue in caught.value.issues]


def test_a_valid_schedule_loads_with_its_defaults() -> None:
    spec = _spec('  nightly: {cron: "0 3 * * *", job: predict, problem: churn}\n')
    job = spec.schedules["nightly"]
    assert (job.cron, job.job, job.problem, job.timezone, job.to) == (
        "0 3 * * *",
        "predict",
        "churn",
        "UTC",
        None,
    )


def test_a_spec_without_schedules_has_none() -> None:
    assert parse_spec(BASE).schedules == {}
    assert parse_spec(BASE + "schedules:\n").schedules == {}


@pytest.mark.parametrize(
    ("cron", "said"),
    [
        ("0 3 * *", "has 4 field(s), not 5"),
        ("61 3 * * *", "is not a valid cron expression"),
        ("every day", "has 2 field(s)"),
        ("0 3 * * 8", "day of week '8' is not valid"),
        ("0 3 1 * 1", "restricts both the day of the month and the day of the week"),
    ],
)
def test_a_bad_cron_is_reported_with_what_a_cron_expression_looks_like(
    cron: str, said: str
) -> None:
    issues = _issues(f'  nightly: {{cron: "{cron}", job: predict, problem: churn}}\n')
    assert len(issues) == 1
    assert issues[0].startswith("schedules.nightly.cron (line 15)")
    assert said in issues[0]
    assert "minute hour day-of-month month day-of-week" in issues[0]
    assert '"0 3 * * *"' in issues[0]


def test_an_unknown_problem_is_reported_with_the_known_ones() -> None:
    issues = _issues('  nightly: {cron: "0 3 * * *", job: monitor, problem: chrun}\n')
    assert len(issues) == 1
    assert "schedules.nightly.problem" in issues[0]
    assert "unknown problem 'chrun'" in issues[0]
    assert "did you mean 'churn'" in issues[0]


def test_an_unknown_job_kind_is_reported_with_the_kinds() -> None:
    issues = _issues('  nightly: {cron: "0 3 * * *", job: train, problem: churn}\n')
    assert len(issues) == 1
    assert "schedules.nightly.job" in issues[0]
    assert "'predict', 'materialize' or 'monitor'" in issues[0]


def test_to_only_goes_with_predict_and_timezones_must_exist() -> None:
    issues = _issues(
        '  a: {cron: "0 3 * * *", job: monitor, problem: churn, to: out.parquet}\n'
        '  b: {cron: "0 3 * * *", job: monitor, problem: churn, timezone: Mars/Base}\n'
        '  c: {cron: "0 3 * * *", job: monitor, problem: churn, every: 1d}\n'
    )
    text = "\n".join(issues)
    assert len(issues) == 3
    assert "`to` only goes with `job: predict`" in text
    assert "unknown time zone 'Mars/Base'" in text
    assert "schedules.c.every" in text and "unknown key 'every'" in text


def test_a_predict_target_is_checked_when_the_spec_loads() -> None:
    ok = _spec(
        '  a: {cron: "0 3 * * *", job: predict, problem: churn, to: "sqlite:///o.db#scores"}\n'
        '  b: {cron: "0 3 * * *", job: predict, problem: churn, to: out/scores.parquet}\n'
    )
    assert ok.schedules["a"].to == "sqlite:///o.db#scores"
    issues = _issues(
        '  a: {cron: "0 3 * * *", job: predict, problem: churn, to: "ftp://host/x#t"}\n'
        '  b: {cron: "0 3 * * *", job: predict, problem: churn, to: "sqlite:///o.db"}\n'
        '  c: {cron: "0 3 * * *", job: predict, problem: churn, to: scores.csv}\n'
    )
    assert len(issues) == 3
    assert issues[0].startswith("schedules.a.to (line 15): unknown target scheme 'ftp'")
    assert issues[1].startswith("schedules.b.to (line 16): the target sqlite:///o.db names no")
    assert issues[2].startswith("schedules.c.to (line 17): cannot tell what kind of target")


def _job(cron: str, timezone: str = "UTC") -> ScheduleSpec:
    return ScheduleSpec(cron=cron, job="monitor", problem="churn", timezone=timezone)


def test_fire_times_follow_crontab_day_of_week_numbering() -> None:
    friday = datetime(2026, 11, 27, 12, 0)  # a Friday
    # 0 and 7 are Sunday in crontab (APScheduler 3 alone would read 0 as Monday)
    assert next_fire(_job("0 3 * * 0"), friday) == datetime(2026, 11, 29, 3, 0)
    assert next_fire(_job("0 3 * * 7"), friday) == datetime(2026, 11, 29, 3, 0)
    assert next_fire(_job("0 3 * * 1-5"), friday) == datetime(2026, 11, 30, 3, 0)
    assert last_fire(_job("0 3 * * 1-5"), friday) == datetime(2026, 11, 27, 3, 0)
    assert last_fire(_job("0 3 * * 5-7"), datetime(2026, 11, 30, 12)) == datetime(
        2026, 11, 29, 3, 0
    )
    assert next_fire(_job("@weekly"), friday) == datetime(2026, 11, 29, 0, 0)


def test_last_fire_is_the_most_recent_fire_time_at_or_before_now() -> None:
    assert last_fire(_job("0 3 * * *"), datetime(2026, 11, 27, 3, 0)) == datetime(
        2026, 11, 27, 3, 0
    )
    assert last_fire(_job("0 3 * * *"), datetime(2026, 11, 27, 2, 59)) == datetime(
        2026, 11, 26, 3, 0
    )
    assert last_fire(_job("*/15 * * * *"), datetime(2026, 11, 27, 10, 44, 59)) == datetime(
        2026, 11, 27, 10, 30
    )
    assert last_fire(_job("*/2 * * * * *"), datetime(2026, 11, 27, 10, 0, 5)) == datetime(
        2026, 11, 27, 10, 0, 4
    )
    # a sparse schedule: noon on February 29 (the last one before now was in 2024)
    assert last_fire(_job("0 12 29 2 *"), datetime(2026, 11, 27)) == datetime(2024, 2, 29, 12)


def test_fire_times_are_in_the_schedule_timezone_and_stored_as_utc() -> None:
    paris = _job("0 3 * * *", timezone="Europe/Paris")
    assert next_fire(paris, datetime(2026, 1, 10, 12)) == datetime(2026, 1, 11, 2, 0)  # CET
    assert next_fire(paris, datetime(2026, 7, 10, 12)) == datetime(2026, 7, 11, 1, 0)  # CEST
    assert last_fire(paris, datetime(2026, 7, 10, 12)) == datetime(2026, 7, 10, 1, 0)
