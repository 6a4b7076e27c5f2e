"""Day-by-day life of every user at once: drifting engagement, support tickets and churn.

The loop runs over days, never over users: each step updates whole arrays. It starts with a
burn-in before the event window so that early signups have a history when the window opens.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cycleml.demo._population import PLANS, Population

__all__ = ["Lifecycle", "simulate_lifecycle"]

# Engagement drifts around each user's baseline as an AR(1) process on the log scale.
_DRIFT_PERSISTENCE = 0.96
_DRIFT_SD = 0.55  # stationary standard deviation
# A support ticket on a given active day; its chance grows with activity.
_TICKET_RATE = 0.0013
_TICKET_MEMORY = 0.93  # daily decay of the remembered ticket load (half-life ~10 days)
# Daily churn hazard.
_HAZARD_BASE = 0.005
_HAZARD_PLAN = np.array([1.0, 0.7, 0.45])
_HAZARD_ACTIVITY = 0.6  # x exp(-this) per unit of baseline log activity; a drift down of
# current engagement raises the hazard one for one (hazard / exp(drift)): recent counts matter.
_HAZARD_TICKET = 3.0  # hazard multiplies by (1 + this * ticket load)
_HAZARD_NEW_USER = 1.0  # extra hazard for brand new users ...
_HAZARD_NEW_USER_DAYS = 14.0  # ... fading with this time scale
_HAZARD_CAP = 0.5

assert len(_HAZARD_PLAN) == len(PLANS)


@dataclass
class Lifecycle:
    """The result: expected activity per window day and user, tickets and churn days."""

    intensity: np.ndarray  # (window_days, n_users) float32, 0 where not signed up or churned
    ticket_day: np.ndarray  # int64 window day of each support ticket
    ticket_user: np.ndarray  # int64 user index of each support ticket
    churn_day: np.ndarray  # int64 simulated day each user churned after; -1 if never


def simulate_lifecycle(
    rng: np.random.Generator,
    people: Population,
    activity_multiplier: np.ndarray,
    burn_in_days: int,
) -> Lifecycle:
    """Simulate every simulated day; ``activity_multiplier`` has one entry per simulated day."""
    n = people.size
    total_days = len(activity_multiplier)
    window_days = total_days - burn_in_days
    phi = _DRIFT_PERSISTENCE
    step_sd = _DRIFT_SD * np.sqrt(1.0 - phi**2)

    drift = rng.normal(0.0, _DRIFT_SD, size=n)
    level = np.exp(people.activity)
    hazard_user = (
        _HAZARD_BASE
        * _HAZARD_PLAN[people.plan]
        * np.exp(-_HAZARD_ACTIVITY * (people.activity - people.activity.mean()))
    )
    tenure_factor = 1.0 + _HAZARD_NEW_USER * np.exp(-np.arange(total_days) / _HAZARD_NEW_USER_DAYS)
    ticket_user_rate = _TICKET_RATE * people.ticket_propensity * level

    # Users join in signup order: keep them sorted so joining is a slice, not a scan.
    join_order = np.argsort(people.signup_day, kind="stable")
    join_bounds = np.searchsorted(people.signup_day[join_order], np.arange(total_days + 1))

    alive = np.zeros(n, dtype=bool)
    load = np.zeros(n)
    churn_day = np.full(n, -1, dtype=np.int64)
    intensity = np.zeros((window_days, n), dtype=np.float32)
    ticket_days: list[np.ndarray] = []
    ticket_users: list[np.ndarray] = []

    for day in range(total_days):
        joining = join_order[join_bounds[day] : join_bounds[day + 1]]
        alive[joining] = True
        drift *= phi
        drift += step_sd * rng.standard_normal(n)
        boost = np.exp(drift)
        uniforms = rng.random((2, n))

        tickets = alive & (uniforms[0] < ticket_user_rate * boost * activity_multiplier[day])
        load *= _TICKET_MEMORY
        load += tickets

        tenure = np.clip(day - people.signup_day, 0, total_days - 1)
        hazard = hazard_user / boost * (1.0 + _HAZARD_TICKET * load) * tenure_factor[tenure]
        churned = alive & (uniforms[1] < np.minimum(hazard, _HAZARD_CAP))

        if day >= burn_in_days:
            row = intensity[day - burn_in_days]
            np.multiply(level, boost, out=row, where=alive, casting="same_kind")
            row *= activity_multiplier[day]
            who = np.flatnonzero(tickets)
            ticket_users.append(who)
            ticket_days.append(np.full(len(who), day - burn_in_days, dtype=np.int64))

        churn_day[churned] = day
        alive &= ~churned

    return Lifecycle(
        intensity=intensity,
        ticket_day=np.concatenate(ticket_days) if ticket_days else np.zeros(0, np.int64),
        ticket_user=np.concatenate(ticket_users) if ticket_users else np.zeros(0, np.int64),
        churn_day=churn_day,
    )
