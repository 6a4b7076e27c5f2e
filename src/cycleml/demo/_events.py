"""Turn expected daily activity into sessions and sessions into the events table's rows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cycleml.demo._lifecycle import Lifecycle
from cycleml.demo._population import SOURCE_SHARE, SOURCES, Population, draw_time_of_day

__all__ = ["EVENT_TYPES", "Events", "draw_events"]

EVENT_TYPES = ["page_view", "add_to_cart", "purchase", "search", "support_ticket"]
PAGE_VIEW, ADD_TO_CART, PURCHASE, SEARCH, SUPPORT_TICKET = range(len(EVENT_TYPES))

_DAY_US = 86_400_000_000
_EXTRA_STEPS = 2.2  # events per session = 1 + Poisson(this)
_STEP_GAP_US = 70_000_000  # mean time between two events of a session
_FIRST_IS_SEARCH = 0.3
_KEEP_SOURCE = 0.65  # chance a session comes through the user's preferred source
_VALUE_SD = 0.55
_CHUNK_CELLS = 4_000_000


@dataclass
class Events:
    """Event rows sorted by time, as parallel arrays."""

    ts: np.ndarray  # int64 microseconds since the Unix epoch, naive UTC
    user: np.ndarray  # int64 user index
    kind: np.ndarray  # int8 index into EVENT_TYPES
    source: np.ndarray  # int8 index into SOURCES
    value: np.ndarray  # float64 purchase amount, 0.0 for other events


def _draw_sessions(
    rng: np.random.Generator, intensity: np.ndarray, scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """Poisson session counts per (window day, user), in day-major chunks to bound memory."""
    n_days, n_users = intensity.shape
    rows = max(1, _CHUNK_CELLS // max(n_users, 1))
    days: list[np.ndarray] = []
    users: list[np.ndarray] = []
    for first in range(0, n_days, rows):
        block = intensity[first : first + rows].ravel()
        cells = np.flatnonzero(block)
        counts = rng.poisson(scale * block[cells].astype(np.float64))
        keep = counts > 0
        cells, counts = cells[keep], counts[keep]
        days.append(np.repeat(cells // n_users + first, counts))
        users.append(np.repeat(cells % n_users, counts))
    return np.concatenate(days), np.concatenate(users)


def _segment_cumsum(values: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Running sum of ``values`` that restarts at each segment start."""
    total = np.cumsum(values)
    before = total[starts] - values[starts]
    return total - np.repeat(before, lengths)


def draw_events(
    rng: np.random.Generator,
    people: Population,
    life: Lifecycle,
    purchase_multiplier: np.ndarray,
    burn_in_days: int,
    window_start_us: int,
    target_events: float,
) -> Events:
    """Sessions of browsing, searching, carting and buying, plus the support tickets."""
    window_days = life.intensity.shape[0]
    # Every user who signs up inside the window starts a session right at signup.
    joined = np.flatnonzero(people.signup_day >= burn_in_days)
    fixed = len(life.ticket_day) + len(joined) * (1.0 + _EXTRA_STEPS)
    total_intensity = float(life.intensity.sum(dtype=np.float64))
    wanted = max(target_events - fixed, 0.0)
    scale = wanted / (total_intensity * (1.0 + _EXTRA_STEPS)) if total_intensity > 0 else 0.0
    day, user = _draw_sessions(rng, life.intensity, scale)
    n_drawn = len(day)
    day = np.concatenate([day, people.signup_day[joined] - burn_in_days, life.ticket_day])
    user = np.concatenate([user, joined, life.ticket_user])
    is_ticket = np.arange(len(day)) >= n_drawn + len(joined)
    n_sessions = len(day)

    start = draw_time_of_day(rng, n_sessions)
    signup = people.signup_time[user]
    on_signup_day = day == people.signup_day[user] - burn_in_days
    late = signup + (rng.random(n_sessions) * (_DAY_US - signup)).astype(np.int64)
    start = np.where(on_signup_day, late, start)
    start[n_drawn : n_drawn + len(joined)] = people.signup_time[joined]
    source = np.where(
        rng.random(n_sessions) < _KEEP_SOURCE,
        people.preferred_source[user],
        rng.choice(len(SOURCES), size=n_sessions, p=SOURCE_SHARE),
    ).astype(np.int8)
    length = np.where(is_ticket, 1, 1 + rng.poisson(_EXTRA_STEPS, size=n_sessions))

    # One row per event from here on.
    n_events = int(length.sum())
    first = np.cumsum(length) - length
    session = np.repeat(np.arange(n_sessions), length)
    gaps = rng.exponential(_STEP_GAP_US, size=n_events)
    gaps[first] = 0.0
    ts = (
        window_start_us
        + day[session] * _DAY_US
        + start[session]
        + _segment_cumsum(gaps, first, length).astype(np.int64)
    )
    ev_user = user[session]
    ev_day = day[session]

    # Browse, search or add to cart; a session opens with a page view or a search.
    draw = rng.random(n_events)
    p_cart = people.cart_p[ev_user]
    kind = np.select(
        [draw < p_cart, draw < p_cart + people.search_p[ev_user]], [ADD_TO_CART, SEARCH], PAGE_VIEW
    ).astype(np.int8)
    kind[first] = np.where(rng.random(n_sessions) < _FIRST_IS_SEARCH, SEARCH, PAGE_VIEW)
    # A step after something was put in the cart may be the checkout.
    carted = _segment_cumsum((kind == ADD_TO_CART).astype(np.int64), first, length)
    p_buy = people.purchase_p[ev_user] * purchase_multiplier[ev_day]
    kind[(kind != ADD_TO_CART) & (carted > 0) & (rng.random(n_events) < p_buy)] = PURCHASE
    kind[first[is_ticket]] = SUPPORT_TICKET

    buying = np.flatnonzero(kind == PURCHASE)
    value = np.zeros(n_events)
    season = purchase_multiplier[ev_day[buying]] ** 0.15
    amount = np.exp(people.basket_log[ev_user[buying]] + rng.normal(0.0, _VALUE_SD, len(buying)))
    value[buying] = np.maximum(np.round(amount * season, 2), 1.0)

    # Sessions starting late on the last day may run past the window: drop those events.
    inside = ts < window_start_us + window_days * _DAY_US
    order = np.flatnonzero(inside)[np.argsort(ts[inside], kind="stable")]
    return Events(
        ts=ts[order],
        user=ev_user[order].astype(np.int64),
        kind=kind[order],
        source=source[session[order]],
        value=value[order],
    )
