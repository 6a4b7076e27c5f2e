"""The product catalogue and the recommendation lists shown on page views (impressions).

The live system ranks lists by popularity with some noise, not per user. Whether a user clicks
depends on the position (users look at the top more), on their taste for the category, on the
product's hidden quality and on price, so a ranking model can beat the position-only baseline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cycleml.demo._events import PAGE_VIEW, Events
from cycleml.demo._population import N_CATEGORIES, Population

__all__ = ["CATEGORIES", "LIST_SIZE", "Catalog", "Impressions", "draw_catalog", "draw_impressions"]

CATEGORIES = [
    "electronics", "books", "home", "fashion", "beauty",
    "sports", "toys", "grocery", "garden", "automotive",
]  # fmt: skip
_CATEGORY_SHARE = np.array([0.14, 0.13, 0.13, 0.14, 0.09, 0.09, 0.08, 0.08, 0.06, 0.06])
_CATEGORY_PRICE = np.array([120.0, 15.0, 40.0, 35.0, 22.0, 45.0, 25.0, 8.0, 30.0, 55.0])
LIST_SIZE = 10
_EXAMINE = 1.0 / np.arange(1, LIST_SIZE + 1) ** 0.9  # chance a user looks at each position
_CLICK_BIAS = -3.4
_PRICE_EFFECT = 1.0

assert len(CATEGORIES) == N_CATEGORIES


@dataclass
class Catalog:
    category: np.ndarray  # int8 index into CATEGORIES
    price: np.ndarray  # float64 USD
    popularity: np.ndarray  # sampling weights, summing to 1
    quality: np.ndarray  # hidden attractiveness


@dataclass
class Impressions:
    """Impression rows sorted by time then position, as parallel arrays."""

    ts: np.ndarray
    user: np.ndarray
    product: np.ndarray  # int64 product index
    position: np.ndarray  # int64, 1..LIST_SIZE
    clicked: np.ndarray  # bool


def draw_catalog(rng: np.random.Generator, n_products: int) -> Catalog:
    category = rng.choice(N_CATEGORIES, size=n_products, p=_CATEGORY_SHARE).astype(np.int8)
    price = np.round(_CATEGORY_PRICE[category] * rng.lognormal(0.0, 0.5, n_products), 2)
    price = np.maximum(price, 0.99)
    weights = 1.0 / rng.permutation(np.arange(1, n_products + 1)) ** 0.8
    popularity = weights / weights.sum()
    log_pop = np.log(popularity)
    quality = 0.3 * (log_pop - log_pop.mean()) / log_pop.std() + rng.normal(0.0, 0.4, n_products)
    return Catalog(category=category, price=price, popularity=popularity, quality=quality)


def _distinct_lists(rng: np.random.Generator, n_lists: int, popularity: np.ndarray) -> np.ndarray:
    """``n_lists`` rows of LIST_SIZE distinct products, drawn by popularity."""
    cdf = np.cumsum(popularity)
    cdf /= cdf[-1]
    last = len(popularity) - 1

    def draw(shape: tuple[int, ...]) -> np.ndarray:
        return np.minimum(np.searchsorted(cdf, rng.random(shape), side="right"), last)

    items = np.sort(draw((n_lists, LIST_SIZE)), axis=1)
    rows = np.arange(n_lists)
    for _ in range(64):
        dup = np.zeros(items[rows].shape, dtype=bool)
        dup[:, 1:] = items[rows, 1:] == items[rows, :-1]
        bad = dup.any(axis=1)
        if not bad.any():
            return items
        rows, dup = rows[bad], dup[bad]
        block = items[rows]
        block[dup] = draw((int(dup.sum()),))
        items[rows] = np.sort(block, axis=1)
    # Rare leftovers (tiny catalogues): exact weighted sampling without replacement.
    keys = np.log(rng.random((len(rows), len(popularity)))) / popularity
    items[rows] = np.sort(np.argpartition(-keys, LIST_SIZE - 1, axis=1)[:, :LIST_SIZE], axis=1)
    return items


def draw_impressions(
    rng: np.random.Generator,
    people: Population,
    catalog: Catalog,
    events: Events,
    max_rows: int,
) -> Impressions:
    """One list of LIST_SIZE products on a random subset of page views, at most ``max_rows``."""
    page_views = np.flatnonzero(events.kind == PAGE_VIEW)
    n_lists = min(max_rows // LIST_SIZE, len(page_views))
    shown_on = page_views[np.sort(rng.choice(len(page_views), size=n_lists, replace=False))]

    items = _distinct_lists(rng, n_lists, catalog.popularity)
    # The live ranking: popularity plus noise.
    score = np.log(catalog.popularity)[items] + rng.gumbel(0.0, 1.0, size=items.shape)
    items = np.take_along_axis(items, np.argsort(-score, axis=1, kind="stable"), axis=1)

    user = np.repeat(events.user[shown_on], LIST_SIZE)
    product = items.ravel()
    position = np.tile(np.arange(1, LIST_SIZE + 1), n_lists)
    log_price = np.log(catalog.price)
    appeal = (
        _CLICK_BIAS
        + people.affinity[user, catalog.category[product]]
        + catalog.quality[product]
        - _PRICE_EFFECT * people.price_sensitivity[user] * (log_price[product] - log_price.mean())
    )
    p_click = np.tile(_EXAMINE, n_lists) / (1.0 + np.exp(-appeal))
    return Impressions(
        ts=np.repeat(events.ts[shown_on], LIST_SIZE),
        user=user,
        product=product.astype(np.int64),
        position=position.astype(np.int64),
        clicked=rng.random(len(product)) < p_click,
    )
