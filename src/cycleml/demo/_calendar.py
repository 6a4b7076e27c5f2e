"""Calendar effects of the demo product: weekly rhythm, US holidays, shopping season, hours."""

from __future__ import annotations

from datetime import date, timedelta

import holidays
import numpy as np

__all__ = ["day_multipliers", "hour_weights"]

# Monday .. Sunday. Shoppers browse more at the weekend.
_WEEKDAY_ACTIVITY = np.array([1.00, 0.97, 0.96, 0.99, 1.04, 1.28, 1.22])

# Share of sessions that start in each UTC hour (a mostly American and European audience).
_HOUR_WEIGHTS = np.array(
    [
        2.2, 1.8, 1.5, 1.2, 1.0, 0.9, 0.9, 1.0, 1.3, 1.7, 2.1, 2.5,
        2.8, 3.0, 3.2, 3.4, 3.5, 3.6, 3.8, 4.0, 4.0, 3.6, 3.0, 2.6,
    ]
)  # fmt: skip


def hour_weights() -> np.ndarray:
    """Probabilities (summing to 1) that a session starts in each UTC hour of the day."""
    return _HOUR_WEIGHTS / _HOUR_WEIGHTS.sum()


def _thanksgiving(year: int, us_holidays: holidays.HolidayBase) -> date:
    for day, name in us_holidays.items():
        if day.year == year and "thanksgiving" in str(name).lower():
            return day
    first = date(year, 11, 1)  # fall back to the rule: the fourth Thursday of November
    return first + timedelta(days=(3 - first.weekday()) % 7 + 21)


def day_multipliers(first_day: date, n_days: int) -> tuple[np.ndarray, np.ndarray]:
    """Activity and purchase-propensity multipliers for ``n_days`` days from ``first_day``.

    Activity follows the weekday rhythm, rises on and around US federal holidays, peaks on
    Black Friday and Cyber Monday and through the Christmas shopping season. Purchase
    propensity rises on the big shopping days only.
    """
    days = [first_day + timedelta(days=i) for i in range(n_days)]
    index = {d: i for i, d in enumerate(days)}
    activity = _WEEKDAY_ACTIVITY[np.array([d.weekday() for d in days], dtype=np.int64)].copy()
    purchase = np.ones(n_days)
    years = range(first_day.year, days[-1].year + 1)
    us_holidays = holidays.US(years=years)

    def bump(day: date, act: float, buy: float = 1.0) -> None:
        i = index.get(day)
        if i is not None:
            activity[i] *= act
            purchase[i] *= buy

    for day in us_holidays:
        bump(day - timedelta(days=1), 1.08)
        bump(day, 1.25)
        bump(day + timedelta(days=1), 1.08)
    for year in years:
        tg = _thanksgiving(year, us_holidays)
        bump(tg, 1.1)
        bump(tg + timedelta(days=1), 1.9, 2.6)  # Black Friday
        bump(tg + timedelta(days=2), 1.4, 1.6)
        bump(tg + timedelta(days=3), 1.3, 1.3)
        bump(tg + timedelta(days=4), 1.7, 2.2)  # Cyber Monday
        for k in range(23):  # December 1..23: the Christmas shopping ramp
            bump(date(year, 12, 1) + timedelta(days=k), 1.1 + 0.4 * k / 22, 1.2 + 0.3 * k / 22)
        bump(date(year, 12, 24), 1.1)
        bump(date(year, 12, 25), 0.75)
        bump(date(year, 12, 26), 1.45, 1.5)  # post-Christmas sales
        bump(date(year, 12, 27), 1.2, 1.2)
    return activity, purchase
