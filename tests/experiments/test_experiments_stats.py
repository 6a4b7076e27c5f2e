"""The analysis statistics against statsmodels and SciPy on fixed data; A/A false alarms; SRM;
the decision text."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

from cycleml.experiments import SRM_ALPHA, analyze, compare, sample_ratio_check
from cycleml.spec import ExperimentSpec


def _groups(values: np.ndarray, *, engine_var: bool = False) -> dict:
    """Sufficient statistics of one variant's metric "m", as the SQL engine returns them."""
    values = np.asarray(values, dtype=float)
    g = {
        "units": len(values),
        "n_rows": len(values),
        "m__sum": float(values.sum()),
        "m__sumsq": float((values * values).sum()),
        "m__n": len(values),
    }
    if engine_var:
        g["m__var"] = float(values.var(ddof=1))
    return g


def _spec(kind: str = "proportion", weights: dict | None = None, **kw) -> ExperimentSpec:
    return ExperimentSpec(
        source="s",
        unit="unit",
        variant="variant",
        control="control",
        metrics={"m": {"type": kind, "column": "m"}},
        weights=weights,
        **kw,
    )


@pytest.fixture
def rates() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    return (rng.random(4000) < 0.10).astype(float), (rng.random(3700) < 0.12).astype(float)


@pytest.mark.parametrize("engine_var", [False, True])
def test_rate_test_equals_statsmodels_ztest_and_wald_interval(rates, engine_var) -> None:
    control, treatment = rates
    got = compare(
        "proportion",
        _groups(control, engine_var=engine_var),
        _groups(treatment, engine_var=engine_var),
        "m",
        0.05,
    )
    count = np.array([treatment.sum(), control.sum()])
    nobs = np.array([len(treatment), len(control)])
    z, p = proportions_ztest(count, nobs)
    assert got["statistic"] == pytest.approx(z, abs=1e-9)
    assert got["p_value"] == pytest.approx(p, rel=1e-9, abs=1e-12)
    low, high = confint_proportions_2indep(
        count[0], nobs[0], count[1], nobs[1], method="wald", compare="diff", alpha=0.05
    )
    assert got["ci_low"] == pytest.approx(low, abs=1e-9)
    assert got["ci_high"] == pytest.approx(high, abs=1e-9)
    assert got["absolute_lift"] == pytest.approx(treatment.mean() - control.mean(), abs=1e-12)
    assert got["relative_lift"] == pytest.approx(treatment.mean() / control.mean() - 1, abs=1e-9)
    assert got["significant"] == (p < 0.05)
    # a 99% interval is the statsmodels one at alpha 0.01
    got99 = compare("proportion", _groups(control), _groups(treatment), "m", 0.01)
    low99, high99 = confint_proportions_2indep(
        count[0], nobs[0], count[1], nobs[1], method="wald", compare="diff", alpha=0.01
    )
    assert (got99["ci_low"], got99["ci_high"]) == pytest.approx((low99, high99), abs=1e-9)


@pytest.mark.parametrize("engine_var", [False, True])
def test_mean_test_equals_scipy_welch(engine_var) -> None:
    rng = np.random.default_rng(5)
    control = rng.gamma(2.0, 20.0, 900)
    treatment = rng.gamma(2.1, 21.0, 1100)
    got = compare(
        "mean",
        _groups(control, engine_var=engine_var),
        _groups(treatment, engine_var=engine_var),
        "m",
        0.05,
    )
    ref = stats.ttest_ind(treatment, control, equal_var=False)
    assert got["statistic"] == pytest.approx(ref.statistic, rel=1e-9)
    assert got["p_value"] == pytest.approx(ref.pvalue, rel=1e-9)
    ci = ref.confidence_interval(0.95)
    assert (got["ci_low"], got["ci_high"]) == pytest.approx((ci.low, ci.high), rel=1e-9)
    assert got["test"] == "Welch's t-test"


def test_mean_variance_is_exact_for_large_values_when_the_engine_gives_it() -> None:
    rng = np.random.default_rng(9)
    control = 1e8 + rng.normal(0, 1, 500)
    treatment = 1e8 + 0.3 + rng.normal(0, 1, 500)
    got = compare(
        "mean", _groups(control, engine_var=True), _groups(treatment, engine_var=True), "m", 0.05
    )
    ref = stats.ttest_ind(treatment, control, equal_var=False)
    assert got["statistic"] == pytest.approx(ref.statistic, rel=1e-6)


def test_srm_check_equals_scipy_chisquare() -> None:
    groups = {"control": {"units": 5120}, "treatment": {"units": 4880}}
    got = sample_ratio_check(_spec(weights={"control": 0.5, "treatment": 0.5}), groups)
    ref = stats.chisquare([5120, 4880], [5000, 5000])
    assert got["p_value"] == pytest.approx(ref.pvalue, rel=1e-12)
    assert got["mismatch"] == (ref.pvalue < SRM_ALPHA)
    skewed = {"control": {"units": 2100}, "treatment": {"units": 7900}}
    got = sample_ratio_check(_spec(weights={"control": 0.2, "treatment": 0.8}), skewed)
    assert got["p_value"] == pytest.approx(stats.chisquare([2100, 7900], [2000, 8000]).pvalue)
    # no weights: equal shares
    got = sample_ratio_check(_spec(), groups)
    assert got["p_value"] == pytest.approx(ref.pvalue, rel=1e-12)


def test_srm_fires_on_52_48_at_100k_units_and_not_on_50_50() -> None:
    spec = _spec(weights={"control": 0.5, "treatment": 0.5})
    assert sample_ratio_check(spec, {"control": {"units": 52_000}, "treatment": {"units": 48_000}})[
        "mismatch"
    ]
    even = sample_ratio_check(spec, {"control": {"units": 50_080}, "treatment": {"units": 49_920}})
    assert not even["mismatch"] and even["p_value"] > 0.5
    assert even["observed"] == {"control": 50_080, "treatment": 49_920}


def test_srm_is_flagged_below_p_0_001_only() -> None:
    assert SRM_ALPHA == 0.001
    spec = _spec(weights={"control": 0.5, "treatment": 0.5})
    flagged = sample_ratio_check(spec, {"control": {"units": 5200}, "treatment": {"units": 4800}})
    assert 1e-6 < flagged["p_value"] < 0.001 and flagged["mismatch"] is True  # chi2 = 16
    passed = sample_ratio_check(spec, {"control": {"units": 5150}, "treatment": {"units": 4850}})
    assert 0.001 < passed["p_value"] < 0.01 and passed["mismatch"] is False  # chi2 = 9


def test_srm_counts_a_weighted_variant_missing_from_the_data() -> None:
    spec = _spec(weights={"control": 0.4, "treatment": 0.4, "holdout": 0.2})
    got = sample_ratio_check(spec, {"control": {"units": 500}, "treatment": {"units": 500}})
    assert got["mismatch"] is True
    assert got["observed"] == {"control": 500, "treatment": 500, "holdout": 0}
    assert got["p_value"] == pytest.approx(stats.chisquare([500, 500, 0], [400, 400, 200]).pvalue)
    unweighted = sample_ratio_check(
        _spec(weights={"control": 0.5, "treatment": 0.5}),
        {"control": {"units": 5}, "treatment": {"units": 5}, "typo": {"units": 5}},
    )
    assert unweighted["mismatch"] is True and "typo" in unweighted["note"]


def _rate_group(count: int, n: int) -> dict:
    return {"units": n, "n_rows": n, "m__sum": float(count), "m__sumsq": float(count), "m__n": n}


def test_simulated_aa_tests_flag_about_alpha() -> None:
    rng = np.random.default_rng(2024)
    runs, n, alpha = 1000, 2000, 0.05
    # rates: binomial counts are the sufficient statistics of 0/1 outcomes
    c0 = rng.binomial(n, 0.1, runs)
    c1 = rng.binomial(n, 0.1, runs)
    flagged = sum(
        compare("proportion", _rate_group(a, n), _rate_group(b, n), "m", alpha)["significant"]
        for a, b in zip(c0, c1, strict=True)
    )
    assert 0.032 <= flagged / runs <= 0.068, flagged
    # means: skewed revenue-like data, sufficient statistics computed vectorised
    x0 = rng.gamma(2.0, 20.0, (runs, 300))
    x1 = rng.gamma(2.0, 20.0, (runs, 300))
    flagged = 0
    for i in range(runs):
        g0 = {"m__n": 300, "m__sum": x0[i].sum(), "m__sumsq": (x0[i] ** 2).sum()}
        g1 = {"m__n": 300, "m__sum": x1[i].sum(), "m__sumsq": (x1[i] ** 2).sum()}
        flagged += compare("mean", g0, g1, "m", alpha)["significant"]
    assert 0.032 <= flagged / runs <= 0.068, flagged


def test_decision_names_the_winner_with_its_interval() -> None:
    spec = _spec(weights={"control": 0.5, "treatment": 0.5}, sequential=False)
    groups = {"control": _rate_group(1000, 10_000), "treatment": _rate_group(1300, 10_000)}
    result = analyze(spec, "checkout", groups)
    treat = next(v for v in result["variants"] if not v["control"])["metrics"]["m"]
    assert treat["significant"] and treat["p_value"] < 1e-6
    assert result["srm"]["mismatch"] is False
    low, high = treat["relative_ci_low"], treat["relative_ci_high"]
    assert low < 0.30 < high
    assert result["decision"] == f"treatment wins: m +30.0% (95% CI {low:+.1%} to {high:+.1%})"
    # reading the always-valid interval (the default) names it and its wider bounds
    seq = analyze(_spec(weights={"control": 0.5, "treatment": 0.5}), "checkout", groups)
    s = next(v for v in seq["variants"] if not v["control"])["metrics"]["m"]["sequential"]
    assert s["relative_ci_low"] < low and s["relative_ci_high"] > high
    assert seq["decision"] == (
        f"treatment wins: m +30.0% (95% always-valid CI "
        f"{s['relative_ci_low']:+.1%} to {s['relative_ci_high']:+.1%})"
    )


def test_decision_waits_when_only_the_fixed_horizon_interval_excludes_zero() -> None:
    groups = {"control": _rate_group(1000, 10_000), "treatment": _rate_group(1100, 10_000)}
    fixed = analyze(_spec(sequential=False), "e", groups)
    always = analyze(_spec(), "e", groups)
    m = next(v for v in always["variants"] if not v["control"])["metrics"]["m"]
    assert m["significant"] and not m["sequential"]["significant"]  # p about 0.02
    assert fixed["decision"].startswith("treatment wins")
    assert always["decision"].startswith("no detectable difference yet in m; about ")


def test_decision_says_loses_for_a_clear_drop_and_waits_when_unclear() -> None:
    spec = _spec(weights={"control": 0.5, "treatment": 0.5}, sequential=False)
    worse = analyze(
        spec, "e", {"control": _rate_group(1300, 10_000), "treatment": _rate_group(1000, 10_000)}
    )
    assert worse["decision"].startswith("treatment loses: m -23.1%")
    unclear = analyze(
        spec, "e", {"control": _rate_group(100, 1000), "treatment": _rate_group(105, 1000)}
    )
    assert unclear["decision"].startswith("no detectable difference yet in m")
    assert "more units needed" in unclear["decision"]


def test_decision_stops_on_sample_ratio_mismatch() -> None:
    spec = _spec(weights={"control": 0.5, "treatment": 0.5})
    groups = {"control": _rate_group(5200, 52_000), "treatment": _rate_group(6240, 48_000)}
    result = analyze(spec, "checkout", groups)
    assert result["srm"]["mismatch"] is True
    assert result["decision"].startswith("stop: sample ratio mismatch")


def test_a_variant_with_too_few_values_is_reported_not_crashing() -> None:
    spec = _spec("mean", weights={"control": 0.98, "treatment": 0.02})
    groups = {
        "control": {"units": 50, "m__n": 50, "m__sum": 100.0, "m__sumsq": 300.0},
        "treatment": {"units": 1, "m__n": 1, "m__sum": 2.0, "m__sumsq": 4.0},
    }
    result = analyze(spec, "e", groups)
    treat = next(v for v in result["variants"] if not v["control"])["metrics"]["m"]
    assert treat["p_value"] is None and "too few" in treat["note"]
    assert result["decision"].startswith("no detectable difference yet")
    assert not math.isnan(result["variants"][0]["metrics"]["m"]["value"])
