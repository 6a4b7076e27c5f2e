"""Generate the demo product's data and write it as Parquet files.

See :mod:`cycleml.demo` for what the demo product is.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from cycleml.demo._arrow import codes_to_strings, fixed_width_ids, id_width, timestamps
from cycleml.demo._calendar import day_multipliers
from cycleml.demo._catalog import CATEGORIES, draw_catalog, draw_impressions
from cycleml.demo._events import EVENT_TYPES, draw_events
from cycleml.demo._lifecycle import simulate_lifecycle
from cycleml.demo._population import COUNTRIES, PLANS, SOURCES, draw_population
from cycleml.errors import RequestError

__all__ = ["TABLES", "DemoData", "generate"]

TABLES = ("users", "events", "products", "impressions")
_EPOCH = date(1970, 1, 1)
_DAY_US = 86_400_000_000
_MAX_BURN_IN_DAYS = 365


@dataclass(frozen=True)
class DemoData:
    """What :func:`generate` wrote.

    ``paths`` and ``rows`` are keyed by table name (see ``TABLES``). ``start`` and ``end`` are
    naive UTC datetimes at midnight: every event lies in ``[start, end)``.
    """

    data_dir: Path
    paths: dict[str, Path]
    rows: dict[str, int]
    start: datetime
    end: datetime
    n_events: int
    seed: int


def _check(
    n_users: int,
    events_per_user: float,
    days: int,
    end: date | None,
    seed: int,
    n_products: int,
    impressions_per_user: float,
) -> date:
    def whole(name: str, value: object, low: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
            raise RequestError(f"{name} must be an integer >= {low}, got {value!r}")

    whole("n_users", n_users, 1)
    whole("days", days, 1)
    whole("seed", seed, 0)
    whole("n_products", n_products, 10)  # a recommendation list shows 10 distinct products
    for name, value, positive in (
        ("events_per_user", events_per_user, True),
        ("impressions_per_user", impressions_per_user, False),
    ):
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or not math.isfinite(value) or value < 0 or (positive and value == 0):
            bound = "> 0" if positive else ">= 0"
            raise RequestError(f"{name} must be a finite number {bound}, got {value!r}")
    if end is None:
        return datetime.now(UTC).date()
    if isinstance(end, datetime) or not isinstance(end, date):
        raise TypeError(f"end must be a datetime.date (use .date() on a datetime), got {end!r}")
    return end


def _write(table: pa.Table, path: Path) -> None:
    scratch = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, scratch)
    os.replace(scratch, path)


def generate(
    directory: str | os.PathLike[str],
    *,
    n_users: int = 2000,
    events_per_user: float = 60.0,
    days: int = 365,
    end: date | None = None,
    seed: int = 0,
    n_products: int = 200,
    impressions_per_user: float = 50.0,
) -> DemoData:
    """Write the demo product's tables to ``directory/data/*.parquet`` and describe them.

    Events cover the ``days`` days before ``end`` (default: today's UTC date), i.e. they lie in
    ``[end - days, end)``. ``events_per_user`` is the average number of events per user over
    that window (approximately: every user who signs up inside the window has at least one
    session, so tiny values are exceeded); ``impressions_per_user`` the average number of
    impression rows (10 per list), capped at twice the number of events. The output depends
    only on the arguments: the same arguments give byte-identical files.

    Raises ``ValueError`` for out-of-range sizes and ``TypeError`` if ``end`` is not a date.
    """
    end = _check(n_users, events_per_user, days, end, seed, n_products, impressions_per_user)
    rng = np.random.default_rng(seed)
    start = end - timedelta(days=days)
    burn_in = min(max(days // 2, 30), _MAX_BURN_IN_DAYS)
    first_day = start - timedelta(days=burn_in)
    start_us = (start - _EPOCH).days * _DAY_US

    activity, purchase = day_multipliers(first_day, burn_in + days)
    people = draw_population(rng, n_users, burn_in, days)
    life = simulate_lifecycle(rng, people, activity, burn_in)
    events = draw_events(
        rng, people, life, purchase[burn_in:], burn_in, start_us, events_per_user * n_users
    )
    del life
    catalog = draw_catalog(rng, n_products)
    max_impressions = min(round(impressions_per_user * n_users), 2 * len(events.ts))
    shown = draw_impressions(rng, people, catalog, events, max_impressions)

    user_width = id_width(n_users, 6)
    product_width = id_width(n_products, 4)
    signup_us = (first_day - _EPOCH).days * _DAY_US + people.signup_day * _DAY_US
    tables = {
        "users": pa.table(
            {
                "user_id": fixed_width_ids("u", np.arange(1, n_users + 1), user_width),
                "plan": codes_to_strings(PLANS, people.plan),
                "country": codes_to_strings(COUNTRIES, people.country),
                "age": pa.array(people.age, type=pa.int64(), mask=people.age_missing),
                "signup_at": timestamps(signup_us + people.signup_time),
            }
        ),
        "events": pa.table(
            {
                "event_id": fixed_width_ids(
                    "e", np.arange(1, len(events.ts) + 1), id_width(len(events.ts), 8)
                ),
                "user_id": fixed_width_ids("u", events.user + 1, user_width),
                "ts": timestamps(events.ts),
                "event_type": codes_to_strings(EVENT_TYPES, events.kind),
                "source": codes_to_strings(SOURCES, events.source),
                "value": pa.array(events.value, type=pa.float64()),
            }
        ),
        "products": pa.table(
            {
                "product_id": fixed_width_ids("p", np.arange(1, n_products + 1), product_width),
                "category": codes_to_strings(CATEGORIES, catalog.category),
                "price": pa.array(catalog.price, type=pa.float64()),
            }
        ),
        "impressions": pa.table(
            {
                "impression_id": fixed_width_ids(
                    "i", np.arange(1, len(shown.ts) + 1), id_width(len(shown.ts), 8)
                ),
                "user_id": fixed_width_ids("u", shown.user + 1, user_width),
                "product_id": fixed_width_ids("p", shown.product + 1, product_width),
                "ts": timestamps(shown.ts),
                "position": pa.array(shown.position, type=pa.int64()),
                "clicked": pa.array(shown.clicked, type=pa.bool_()),
            }
        ),
    }
    del events, shown

    data_dir = Path(directory) / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: data_dir / f"{name}.parquet" for name in TABLES}
    for name in TABLES:
        _write(tables[name], paths[name])
    rows = {name: tables[name].num_rows for name in TABLES}
    return DemoData(
        data_dir=data_dir,
        paths=paths,
        rows=rows,
        start=datetime.combine(start, time()),
        end=datetime.combine(end, time()),
        n_events=rows["events"],
        seed=seed,
    )
