"""The demo product's users: what the users table shows and the latent traits it hides."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cycleml.demo._calendar import hour_weights

__all__ = [
    "COUNTRIES",
    "N_CATEGORIES",
    "PLANS",
    "SOURCES",
    "Population",
    "draw_population",
    "draw_time_of_day",
]

PLANS = ["free", "basic", "pro"]
_PLAN_SHARE = np.array([0.67, 0.23, 0.10])
_PLAN_ACTIVITY = np.array([0.0, 0.25, 0.5])  # added to the log activity level
_PLAN_PURCHASE = np.array([0.20, 0.27, 0.34])  # chance a step after carting is a purchase
_PLAN_BASKET = np.array([32.0, 48.0, 75.0])  # median purchase value, USD
_PLAN_PRICE_SENSITIVITY = np.array([1.0, 0.7, 0.4])

COUNTRIES = ["US", "GB", "DE", "FR", "CA", "IN", "BR", "AU"]
_COUNTRY_SHARE = np.array([0.38, 0.12, 0.10, 0.08, 0.08, 0.11, 0.08, 0.05])

SOURCES = ["google", "facebook", "direct", "email", "ads"]
SOURCE_SHARE = np.array([0.34, 0.15, 0.26, 0.11, 0.14])

N_CATEGORIES = 10
_AGE_NULL_SHARE = 0.03
_PRE_WINDOW_SHARE = 0.4  # users who signed up before the event window opened
_DAY_US = 86_400_000_000


@dataclass
class Population:
    """Every user's visible attributes and latent traits, as parallel arrays."""

    plan: np.ndarray  # int8 index into PLANS
    country: np.ndarray  # int8 index into COUNTRIES
    age: np.ndarray  # int64, meaningless where age_missing
    age_missing: np.ndarray  # bool
    signup_day: np.ndarray  # int64 index of the simulated day (0 = first burn-in day)
    signup_time: np.ndarray  # int64 microseconds after midnight UTC
    activity: np.ndarray  # log of the user's baseline activity level
    ticket_propensity: np.ndarray  # multiplier on the chance of a support ticket per active day
    purchase_p: np.ndarray
    cart_p: np.ndarray
    search_p: np.ndarray
    basket_log: np.ndarray  # log of the user's median purchase value
    preferred_source: np.ndarray  # int8 index into SOURCES
    price_sensitivity: np.ndarray
    affinity: np.ndarray  # (n_users, N_CATEGORIES) float32 taste for each product category

    @property
    def size(self) -> int:
        return len(self.plan)


def draw_time_of_day(rng: np.random.Generator, n: int) -> np.ndarray:
    """Microseconds after midnight UTC, following the hourly traffic profile."""
    hours = rng.choice(24, size=n, p=hour_weights())
    return hours * 3_600_000_000 + rng.integers(0, 3_600_000_000, size=n)


def draw_population(
    rng: np.random.Generator, n_users: int, burn_in_days: int, window_days: int
) -> Population:
    """Draw ``n_users`` users; signups spread over the burn-in and, front-loaded, the window."""
    n = n_users
    plan = rng.choice(len(PLANS), size=n, p=_PLAN_SHARE).astype(np.int8)
    country = rng.choice(len(COUNTRIES), size=n, p=_COUNTRY_SHARE).astype(np.int8)
    age = np.clip(np.rint(rng.gamma(7.0, 5.3, size=n) + 2.0), 18, 85).astype(np.int64)
    age_missing = rng.random(n) < _AGE_NULL_SHARE

    early = rng.random(n) < _PRE_WINDOW_SHARE
    pre = rng.integers(0, burn_in_days, size=n)
    # Density falls over the window: many signups early on, fewer later.
    within = burn_in_days + np.floor(window_days * rng.beta(1.0, 1.8, size=n)).astype(np.int64)
    signup_day = np.where(early, pre, np.minimum(within, burn_in_days + window_days - 1))
    signup_time = draw_time_of_day(rng, n)

    age_effect = np.where(age_missing, 0.0, -0.006 * (age - 38))
    activity = (
        rng.normal(0.0, 0.8, size=n) + _PLAN_ACTIVITY[plan] + 0.12 * (country == 0) + age_effect
    )
    ticket_propensity = rng.lognormal(0.0, 0.7, size=n)
    purchase_p = _PLAN_PURCHASE[plan] * rng.lognormal(0.0, 0.45, size=n)
    cart_p = 0.16 * rng.lognormal(0.0, 0.3, size=n)
    search_p = 0.16 * rng.lognormal(0.0, 0.4, size=n)
    basket_log = np.log(_PLAN_BASKET[plan]) + rng.normal(0.0, 0.25, size=n)
    preferred_source = rng.choice(len(SOURCES), size=n, p=SOURCE_SHARE).astype(np.int8)
    price_sensitivity = _PLAN_PRICE_SENSITIVITY[plan] * rng.lognormal(0.0, 0.3, size=n)

    affinity = rng.normal(0.0, 0.6, size=(n, N_CATEGORIES)).astype(np.float32)
    favourite = rng.integers(0, N_CATEGORIES, size=(n, 2))
    rows = np.arange(n)
    affinity[rows, favourite[:, 0]] += 2.2
    affinity[rows, favourite[:, 1]] += 1.1

    return Population(
        plan=plan,
        country=country,
        age=age,
        age_missing=age_missing,
        signup_day=signup_day.astype(np.int64),
        signup_time=signup_time.astype(np.int64),
        activity=activity,
        ticket_propensity=ticket_propensity,
        purchase_p=purchase_p,
        cart_p=cart_p,
        search_p=search_p,
        basket_log=basket_log,
        preferred_source=preferred_source,
        price_sensitivity=price_sensitivity,
        affinity=affinity,
    )
