"""Drift methods: small registered objects, each with the column kinds it applies to, a default
threshold and whether that threshold bounds a p-value (drift when p < threshold) or a distance
(drift when distance >= threshold).

Every method works on a prepared pair (``NumericPair`` or ``CategoricalPair``): nulls dropped,
numbers sorted once, categories counted once, and the pieces several methods share (the merged
empirical CDFs, the shared histogram) computed once and cached. Nothing loops over values in
Python.

Smoothing (PSI and KL divergence): an empty bin or category would make the logarithm infinite,
so a share of 0 is replaced by ``min(0.0001, smallest non-zero share / 1e6)`` on its side before
the formula, as Evidently does (so the figures agree with Evidently's). KL divergence is then
``scipy.stats.entropy(reference, current)`` (which renormalises the shares); PSI is
``sum((current - reference) * ln(current / reference))`` on the smoothed shares.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np
from scipy import stats
from scipy.spatial.distance import jensenshannon

Kind = Literal["number", "category", "binary"]
ScoreKind = Literal["p_value", "distance"]
# ks_2samp's own switch from the exact to the asymptotic p-value
_KS_EXACT_MAX_N = 10_000


class NumericPair:
    """Two samples of numbers, nulls (and infinities) dropped, each sorted once."""

    kind = "number"

    def __init__(self, reference: np.ndarray, current: np.ndarray) -> None:
        self.reference = np.sort(reference[np.isfinite(reference)])
        self.current = np.sort(current[np.isfinite(current)])

    @property
    def sizes(self) -> tuple[int, int]:
        return len(self.reference), len(self.current)

    @cached_property
    def merged(self) -> np.ndarray:
        values = np.concatenate([self.reference, self.current])
        values.sort()
        return values

    @cached_property
    def cdfs(self) -> tuple[np.ndarray, np.ndarray]:
        """Both empirical CDFs evaluated at every value of the merged sample."""
        ref, cur = self.reference, self.current
        return (
            np.searchsorted(ref, self.merged, side="right") / len(ref),
            np.searchsorted(cur, self.merged, side="right") / len(cur),
        )

    @cached_property
    def edges(self) -> np.ndarray:
        """Shared histogram edges: Sturges' rule over both samples (as Evidently bins), the
        same edges as ``np.histogram_bin_edges(both, bins="sturges")`` without merging."""
        ref, cur = self.reference, self.current
        lo = min(ref[0] if len(ref) else np.inf, cur[0] if len(cur) else np.inf)
        hi = max(ref[-1] if len(ref) else -np.inf, cur[-1] if len(cur) else -np.inf)
        return sturges_edges(float(lo), float(hi), len(ref) + len(cur))

    @cached_property
    def counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Counts per bin of ``edges`` on each side (``np.histogram``'s bins: the last one is
        closed), read off the sorted samples with ``searchsorted``."""
        return _binned(self.reference, self.edges), _binned(self.current, self.edges)

    def shares(self) -> tuple[np.ndarray, np.ndarray]:
        ref, cur = self.counts
        return ref / ref.sum(), cur / cur.sum()


def sturges_edges(lo: float, hi: float, n: int) -> np.ndarray:
    """NumPy's ``sturges`` edges of ``n`` values from ``lo`` to ``hi``."""
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
        return np.linspace(lo, hi, 2)
    width = (hi - lo) / (np.log2(n) + 1.0)
    bins = int(np.ceil((hi - lo) / width)) if width > 0 else 1
    return np.linspace(lo, hi, bins + 1)


def _binned(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    cuts = np.searchsorted(values, edges[:-1], side="left")
    return np.diff(np.append(cuts, len(values)))


class CategoricalPair:
    """Counts of each category on both sides, over the union of categories (no nulls)."""

    kind = "category"

    def __init__(self, categories: list, reference: np.ndarray, current: np.ndarray) -> None:
        self.categories = categories
        self.reference_counts = np.asarray(reference, dtype=np.int64)
        self.current_counts = np.asarray(current, dtype=np.int64)

    @property
    def sizes(self) -> tuple[int, int]:
        return int(self.reference_counts.sum()), int(self.current_counts.sum())

    def shares(self) -> tuple[np.ndarray, np.ndarray]:
        ref, cur = self.reference_counts, self.current_counts
        return ref / ref.sum(), cur / cur.sum()


Pair = NumericPair | CategoricalPair


@dataclass(frozen=True)
class MethodResult:
    statistic: float
    p_value: float | None = None


@dataclass(frozen=True)
class DriftMethod:
    """A drift method: ``compute(pair)`` gives the statistic (and p-value for a test)."""

    name: str
    title: str
    kinds: frozenset[str]
    threshold: float
    score: ScoreKind
    compute: Callable[[Pair], MethodResult]
    min_rows: int = 1  # fewer values than this on a side: the method is skipped, with a reason

    def drifted(self, result: MethodResult, threshold: float) -> bool:
        if self.score == "p_value":
            return result.p_value is not None and result.p_value < threshold
        return result.statistic >= threshold

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "title": self.title,
            "kinds": sorted(self.kinds),
            "threshold": self.threshold,
            "score": self.score,
            "min_rows": self.min_rows,
        }


METHODS: dict[str, DriftMethod] = {}


def register(method: DriftMethod) -> DriftMethod:
    """Add a method to the registry (by name); returns it."""
    METHODS[method.name] = method
    return method


def get_method(name: str) -> DriftMethod:
    from ..errors import SpecError

    try:
        return METHODS[name]
    except KeyError:
        raise SpecError(
            f"unknown drift method {name!r}",
            hint="use one of: " + ", ".join(sorted(METHODS)),
        ) from None


# -- the methods -----------------------------------------------------------------------------


def _ks(pair: Pair) -> MethodResult:
    assert isinstance(pair, NumericPair)
    n1, n2 = pair.sizes
    if max(n1, n2) <= _KS_EXACT_MAX_N:  # small: SciPy's exact p-value
        result = stats.ks_2samp(pair.reference, pair.current)
        return MethodResult(float(result.statistic), float(result.pvalue))
    cdf1, cdf2 = pair.cdfs
    diff = cdf1 - cdf2
    d = float(max(diff.max(), np.clip(-diff.min(), 0, 1)))
    m, n = sorted([float(n1), float(n2)], reverse=True)
    p = float(np.clip(stats.kstwo.sf(d, np.round(m * n / (m + n))), 0, 1))
    return MethodResult(d, p)


def _chi2(pair: Pair) -> MethodResult:
    ref, cur = _counts(pair)
    keep = (ref + cur) > 0
    table = np.vstack([ref[keep], cur[keep]])
    if table.shape[1] < 2:
        return MethodResult(0.0, 1.0)
    result = stats.chi2_contingency(table, correction=False)
    return MethodResult(float(result.statistic), float(result.pvalue))


def _z(pair: Pair) -> MethodResult:
    """Two-proportion z-test (pooled), two-sided; the share of the first category. Its
    statistic squared is the 2 x 2 contingency chi-square."""
    ref, cur = _counts(pair)
    if len(ref) < 2:
        return MethodResult(0.0, 1.0)
    n1, n2 = ref.sum(), cur.sum()
    p1, p2 = ref[0] / n1, cur[0] / n2
    pooled = (ref[0] + cur[0]) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return MethodResult(0.0, 1.0)
    z = (p1 - p2) / se
    return MethodResult(float(z), float(2 * stats.norm.sf(abs(z))))


def _counts(pair: Pair) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(pair, CategoricalPair):
        return pair.reference_counts, pair.current_counts
    return pair.counts


def smooth(shares: np.ndarray) -> np.ndarray:
    """Replace zero shares: ``min(0.0001, smallest non-zero share / 1e6)`` (as Evidently)."""
    nonzero = shares[shares > 0]
    if len(nonzero) == len(shares):
        return shares
    floor = 0.0001 if nonzero.min() > 0.0001 else nonzero.min() / 1e6
    return np.where(shares == 0, floor, shares)


def _psi(pair: Pair) -> MethodResult:
    ref, cur = (smooth(s) for s in pair.shares())
    return MethodResult(float(np.sum((cur - ref) * np.log(cur / ref))))


def _kl(pair: Pair) -> MethodResult:
    ref, cur = (smooth(s) for s in pair.shares())
    return MethodResult(float(stats.entropy(ref, cur)))


def _js(pair: Pair) -> MethodResult:
    ref, cur = pair.shares()
    return MethodResult(float(jensenshannon(ref, cur)))


def _wasserstein(pair: Pair) -> MethodResult:
    """``wasserstein_distance(reference, current) / std(reference)`` (the std floored at
    0.001). The distance is the integral of the gap between the two quantile functions: with
    equal sizes the mean gap of the sorted samples, else summed over the merged grid of both
    sides' quantile steps (integers ``i * n2`` and ``j * n1``; a stable sort of the two sorted
    runs is a linear merge)."""
    assert isinstance(pair, NumericPair)
    ref, cur = pair.reference, pair.current
    n1, n2 = len(ref), len(cur)
    if n1 == n2:
        distance = float(np.mean(np.abs(ref - cur)))
    else:
        grid = np.concatenate(
            [np.arange(1, n1 + 1, dtype=np.int64) * n2, np.arange(1, n2 + 1, dtype=np.int64) * n1]
        )
        grid.sort(kind="stable")  # two sorted runs: a linear merge
        gaps = np.abs(ref[-(-grid // n2) - 1] - cur[-(-grid // n1) - 1])
        distance = float(np.dot(np.diff(grid, prepend=0), gaps)) / n1 / n2
    return MethodResult(distance / max(float(np.std(ref)), 0.001))


_NUM, _CAT, _BIN = "number", "category", "binary"
KS = register(
    DriftMethod("ks", "Kolmogorov-Smirnov", frozenset({_NUM}), 0.05, "p_value", _ks, min_rows=2)
)
CHI2 = register(
    DriftMethod("chi2", "chi-square (2 x k contingency)", frozenset({_CAT, _BIN}), 0.05,
                "p_value", _chi2, min_rows=5)
)  # fmt: skip
Z = register(
    DriftMethod("z", "z-test for proportions", frozenset({_BIN}), 0.05, "p_value", _z, min_rows=5)
)
PSI = register(
    DriftMethod("psi", "population stability index", frozenset({_NUM, _CAT, _BIN}), 0.1,
                "distance", _psi, min_rows=10)
)  # fmt: skip
JS = register(
    DriftMethod("jensenshannon", "Jensen-Shannon distance", frozenset({_NUM, _CAT, _BIN}), 0.1,
                "distance", _js, min_rows=10)
)  # fmt: skip
WASSERSTEIN = register(
    DriftMethod("wasserstein", "normed Wasserstein distance", frozenset({_NUM}), 0.1,
                "distance", _wasserstein, min_rows=10)
)  # fmt: skip
KL = register(
    DriftMethod("kl", "Kullback-Leibler divergence", frozenset({_NUM, _CAT, _BIN}), 0.1,
                "distance", _kl, min_rows=10)
)  # fmt: skip


def auto_method(kind: str, rows: int, small_sample: int = 1000) -> DriftMethod:
    """Evidently's rule of thumb: with at most ``small_sample`` rows (the smaller side), a
    statistical test (KS for numbers, z-test for two categories, chi-square for more); above it
    a distance with an effect-size threshold (normed Wasserstein for numbers, Jensen-Shannon
    for categories), so large samples do not alarm on trivial shifts."""
    if rows <= small_sample:
        return {_NUM: KS, _BIN: Z}.get(kind, CHI2)
    return WASSERSTEIN if kind == _NUM else JS
