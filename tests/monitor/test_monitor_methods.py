"""Every drift method's statistic (and p-value) against SciPy on the same samples; the registry
and the automatic choice."""

from __future__ import annotations

import typing

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from cycleml.monitor import METHODS, auto_method, get_method
from cycleml.monitor._drift import categorical_pair
from cycleml.monitor._methods import NumericPair, smooth, sturges_edges
from cycleml.spec._models import DriftMethodName

TOL = 1e-6


def _numbers(n1: int, n2: int, seed: int = 0, *, ties: bool = False):
    rng = np.random.default_rng(seed)
    ref, cur = rng.normal(0, 1, n1), rng.normal(0.05, 1.1, n2)
    if ties:  # rounded values: many ties within and across the samples
        ref, cur = np.round(ref, 1), np.round(cur, 1)
    ref[::17] = np.nan  # nulls are dropped before any method
    return ref, cur


def _hist_shares(ref: np.ndarray, cur: np.ndarray):
    ref, cur = ref[~np.isnan(ref)], cur[~np.isnan(cur)]
    edges = np.histogram_bin_edges(np.concatenate([ref, cur]), bins="sturges")
    return np.histogram(ref, edges)[0] / len(ref), np.histogram(cur, edges)[0] / len(cur)


@pytest.mark.parametrize(
    ("n1", "n2", "ties"),
    [(300, 200, False), (900, 900, True), (30_000, 20_001, False), (40_000, 25_000, True)],
    ids=["exact", "exact-ties", "asymptotic", "asymptotic-ties"],
)
def test_ks_equals_scipy_ks_2samp(n1: int, n2: int, ties: bool) -> None:
    ref, cur = _numbers(n1, n2, ties=ties)
    got = METHODS["ks"].compute(NumericPair(ref, cur))
    want = stats.ks_2samp(ref[~np.isnan(ref)], cur)
    assert got.statistic == pytest.approx(want.statistic, abs=TOL)
    assert got.p_value == pytest.approx(want.pvalue, abs=TOL, rel=TOL)


@pytest.mark.parametrize(
    ("n1", "n2", "ties"), [(500, 500, False), (2000, 1313, True), (7, 3, False)]
)
def test_normed_wasserstein_equals_scipy(n1: int, n2: int, ties: bool) -> None:
    ref, cur = _numbers(n1, n2, seed=3, ties=ties)
    got = METHODS["wasserstein"].compute(NumericPair(ref, cur)).statistic
    clean = ref[~np.isnan(ref)]
    want = stats.wasserstein_distance(clean, cur) / np.std(clean)
    assert got == pytest.approx(want, rel=TOL, abs=1e-12)


def test_histogram_methods_equal_scipy_on_the_shared_sturges_bins() -> None:
    ref, cur = _numbers(5000, 3000, seed=5)
    pair = NumericPair(ref, cur)
    r, c = _hist_shares(ref, cur)
    assert np.array_equal(pair.edges, np.histogram_bin_edges(
        np.concatenate([ref[~np.isnan(ref)], cur]), bins="sturges"
    ))  # fmt: skip
    assert METHODS["jensenshannon"].compute(pair).statistic == pytest.approx(
        jensenshannon(r, c), abs=TOL
    )
    assert METHODS["kl"].compute(pair).statistic == pytest.approx(
        stats.entropy(smooth(r), smooth(c)), abs=TOL
    )
    # PSI is the symmetrised KL divergence of the (smoothed) shares
    rs, cs = smooth(r), smooth(c)
    psi = METHODS["psi"].compute(pair).statistic
    assert psi == pytest.approx(np.sum((rs - cs) * np.log(rs / cs)), abs=TOL)
    if (r > 0).all() and (c > 0).all():
        assert psi == pytest.approx(stats.entropy(r, c) + stats.entropy(c, r), abs=TOL)


def test_sturges_edges_equal_numpys() -> None:
    rng = np.random.default_rng(2)
    for n in (2, 9, 1000, 123_457):
        x = rng.normal(size=n) * rng.uniform(1e-3, 1e3)
        want = np.histogram_bin_edges(x, bins="sturges")
        assert np.array_equal(sturges_edges(x.min(), x.max(), n), want)
    assert np.array_equal(
        sturges_edges(4.0, 4.0, 10), np.histogram_bin_edges(np.full(10, 4.0), bins="sturges")
    )


def test_categorical_methods_equal_scipy() -> None:
    ref = pd.Series(["a"] * 120 + ["b"] * 60 + ["c"] * 20 + [None] * 7)
    cur = pd.Series(["a"] * 90 + ["b"] * 70 + ["c"] * 25 + ["d"] * 15)
    pair = categorical_pair(ref, cur)
    assert pair.categories == ["a", "b", "c", "d"]  # reference order, then new ones
    table = np.array([[120, 60, 20, 0], [90, 70, 25, 15]])
    chi2 = METHODS["chi2"].compute(pair)
    want = stats.chi2_contingency(table, correction=False)
    assert chi2.statistic == pytest.approx(want.statistic, rel=TOL)
    assert chi2.p_value == pytest.approx(want.pvalue, rel=TOL, abs=1e-12)
    r, c = table[0] / table[0].sum(), table[1] / table[1].sum()
    assert METHODS["jensenshannon"].compute(pair).statistic == pytest.approx(
        jensenshannon(r, c), abs=TOL
    )
    kl = METHODS["kl"].compute(pair).statistic
    assert kl == pytest.approx(stats.entropy(smooth(r), smooth(c)), abs=TOL)
    assert smooth(r)[3] == 0.0001  # the documented smoothing of an empty category
    assert kl > 0.05  # "d" missing from the reference weighs in through the smoothing


def test_z_test_squared_is_the_2x2_contingency_chi_square() -> None:
    ref = pd.Series([True] * 70 + [False] * 30)
    cur = pd.Series([True] * 55 + [False] * 45)
    got = METHODS["z"].compute(categorical_pair(ref, cur))
    want = stats.chi2_contingency(np.array([[70, 30], [55, 45]]), correction=False)
    assert got.statistic**2 == pytest.approx(want.statistic, rel=TOL)
    assert got.p_value == pytest.approx(want.pvalue, rel=TOL)
    assert got.statistic > 0  # the reference's more common value is more common there


def test_the_registry_and_the_spec_list_the_same_methods() -> None:
    assert set(typing.get_args(DriftMethodName)) == set(METHODS)
    for method in METHODS.values():
        assert method.kinds <= {"number", "category", "binary"}
        assert method.score in ("p_value", "distance")
        assert 0 < method.threshold < 1
    assert get_method("psi").title == "population stability index"
    with pytest.raises(Exception, match="unknown drift method"):
        get_method("nope")


def test_auto_choice_tests_small_samples_and_measures_distance_on_large_ones() -> None:
    assert auto_method("number", 1000).name == "ks"
    assert auto_method("category", 500).name == "chi2"
    assert auto_method("binary", 500).name == "z"
    assert auto_method("number", 1001).name == "wasserstein"
    assert auto_method("category", 50_000).name == "jensenshannon"
    assert auto_method("binary", 50_000).name == "jensenshannon"
    assert auto_method("number", 5000, small_sample=10_000).name == "ks"
