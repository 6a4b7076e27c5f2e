"""Ratio (delta method), CUPED, relative-lift intervals, always-valid intervals and the power
calculator: against statsmodels/SciPy on fixed data, and by vectorised simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats
from statsmodels.stats.power import NormalIndPower, tt_ind_solve_power, zt_ind_solve_power

from cycleml.errors import RequestError
from cycleml.experiments import compare, halfwidth, mixture_rho2, plan, power_at
from cycleml.experiments._stats import ratio_moments, relative, two_proportion, welch


def _moments(x: np.ndarray, y: np.ndarray | None = None, c: np.ndarray | None = None) -> dict:
    """A variant's sufficient statistics of metric "m", keyed as the SQL query returns them."""
    g = {
        "units": len(x),
        "m__n": len(x),
        "m__sum": float(x.sum()),
        "m__sumsq": float((x * x).sum()),
        "m__var": float(x.var(ddof=1)),
    }
    if y is not None:
        g |= {
            "m__den_sum": float(y.sum()),
            "m__den_var": float(y.var(ddof=1)),
            "m__xy_cov": float(np.cov(x, y)[0, 1]),
        }
    if c is not None:
        g |= {
            "m__c_sum": float(c.sum()),
            "m__c_var": float(c.var(ddof=1)),
            "m__xc_cov": float(np.cov(x, c)[0, 1]),
        }
    return g


def _clicks(rng, n: int, ctr: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-unit impressions and clicks with a per-unit CTR (clustered: units differ)."""
    impressions = rng.poisson(8, n) + 1
    unit_ctr = rng.beta(ctr * 4, (1 - ctr) * 4, n)
    return rng.binomial(impressions, unit_ctr).astype(float), impressions.astype(float)


def test_ratio_metric_equals_the_linearised_reference() -> None:
    rng = np.random.default_rng(7)
    x0, y0 = _clicks(rng, 3000, 0.10)
    x1, y1 = _clicks(rng, 3200, 0.11)
    got = compare("ratio", _moments(x0, y0), _moments(x1, y1), "m", 0.05)
    r0, r1 = x0.sum() / y0.sum(), x1.sum() / y1.sum()
    # the delta method is the variance of the linearised per-unit value (x - R y) / mean(y)
    var0 = np.var((x0 - r0 * y0) / y0.mean(), ddof=1) / len(x0)
    var1 = np.var((x1 - r1 * y1) / y1.mean(), ddof=1) / len(x1)
    se = math.sqrt(var0 + var1)
    assert got["absolute_lift"] == pytest.approx(r1 - r0, rel=1e-12)
    assert got["se"] == pytest.approx(se, rel=1e-9)
    assert got["statistic"] == pytest.approx((r1 - r0) / se, rel=1e-9)
    assert got["p_value"] == pytest.approx(2 * stats.norm.sf(abs((r1 - r0) / se)), rel=1e-9)
    assert got["ci_low"] == pytest.approx(r1 - r0 - stats.norm.ppf(0.975) * se, rel=1e-9)
    # relative lift: delta method on R1 / R0
    rel_se = math.sqrt(var1 / r0**2 + r1**2 * var0 / r0**4)
    assert got["relative_lift"] == pytest.approx(r1 / r0 - 1, rel=1e-12)
    assert got["relative_ci_high"] == pytest.approx(
        r1 / r0 - 1 + stats.norm.ppf(0.975) * rel_se, rel=1e-9
    )
    assert got["test"].startswith("delta method")


def test_ratio_aa_holds_alpha_where_a_per_impression_test_does_not() -> None:
    rng = np.random.default_rng(31)
    runs, n, alpha = 1000, 400, 0.05
    impressions = rng.poisson(20, (2, runs, n)) + 1
    unit_ctr = rng.beta(0.4, 3.6, (2, runs, n))  # strongly clustered clicks
    clicks = rng.binomial(impressions, unit_ctr).astype(float)
    impressions = impressions.astype(float)
    mx, my = clicks.mean(axis=2), impressions.mean(axis=2)
    vx, vy = clicks.var(axis=2, ddof=1), impressions.var(axis=2, ddof=1)
    cxy = ((clicks - mx[..., None]) * (impressions - my[..., None])).sum(axis=2) / (n - 1)
    r, v = ratio_moments(n, mx, my, vx, vy, cxy)
    z = (r[1] - r[0]) / np.sqrt(v[0] / n + v[1] / n)
    flagged = float(np.mean(2 * stats.norm.sf(np.abs(z)) < alpha))
    # binomial bound: 1000 runs at 5% -> sd 0.0069; 0.032..0.068 is about +-2.6 sd
    assert 0.032 <= flagged <= 0.068, flagged
    # treating impressions as independent (ignoring the unit) raises false alarms far above alpha
    naive = two_proportion(impressions[0].sum(1), r[0], impressions[1].sum(1), r[1], alpha)[
        "p_value"
    ]
    assert float(np.mean(naive < alpha)) > 0.15


def test_cuped_equals_ols_with_the_covariate_and_scipy_welch_on_adjusted_values() -> None:
    rng = np.random.default_rng(17)
    n0, n1 = 1500, 1600
    c0, c1 = rng.gamma(2.0, 10.0, n0), rng.gamma(2.0, 10.0, n1)
    x0 = 0.8 * c0 + rng.normal(0, 6, n0)
    x1 = 0.8 * c1 + 1.0 + rng.normal(0, 6, n1)
    got = compare("mean", _moments(x0, c=c0), _moments(x1, c=c1), "m", 0.05, cuped=True)
    # theta is the covariate's OLS coefficient next to the arm; the lift is the arm's coefficient
    x = np.concatenate([x0, x1])
    design = np.column_stack(
        [np.ones(n0 + n1), np.r_[np.zeros(n0), np.ones(n1)], np.concatenate([c0, c1])]
    )
    ols = sm.OLS(x, design).fit()
    assert got["cuped"]["theta"] == pytest.approx(ols.params[2], rel=1e-9)
    assert got["absolute_lift"] == pytest.approx(ols.params[1], rel=1e-9)
    theta, c_all = got["cuped"]["theta"], np.concatenate([c0, c1]).mean()
    adj0, adj1 = x0 - theta * (c0 - c_all), x1 - theta * (c1 - c_all)
    ref = stats.ttest_ind(adj1, adj0, equal_var=False)
    assert got["statistic"] == pytest.approx(ref.statistic, rel=1e-9)
    assert got["p_value"] == pytest.approx(ref.pvalue, rel=1e-6)
    plain = compare("mean", _moments(x0), _moments(x1), "m", 0.05)
    reduction = 1 - got["se"] ** 2 / plain["se"] ** 2
    assert got["cuped"]["variance_reduction"] == pytest.approx(reduction, rel=1e-9)
    corr = np.corrcoef(np.concatenate([x0, x1]), np.concatenate([c0, c1]))[0, 1]
    assert reduction == pytest.approx(corr**2, abs=0.03) and reduction > 0.5
    assert got["cuped"]["unadjusted_lift"] == pytest.approx(x1.mean() - x0.mean(), rel=1e-12)


def test_cuped_aa_holds_alpha() -> None:
    rng = np.random.default_rng(23)
    runs, n, alpha = 1000, 300, 0.05
    c = rng.gamma(2.0, 10.0, (2, runs, n))
    x = 0.8 * c + rng.normal(0, 6, (2, runs, n))
    mean_x, mean_c = x.mean(2), c.mean(2)
    var_x, var_c = x.var(2, ddof=1), c.var(2, ddof=1)
    cov = ((x - mean_x[..., None]) * (c - mean_c[..., None])).sum(2) / (n - 1)
    theta = cov.sum(0) / var_c.sum(0)
    c_all = mean_c.mean(0)
    adj = mean_x - theta * (mean_c - c_all)
    var_adj = var_x + theta**2 * var_c - 2 * theta * cov
    res = welch(n, adj[0], var_adj[0], n, adj[1], var_adj[1], alpha)
    flagged = float(np.mean(res["p_value"] < alpha))
    assert 0.032 <= flagged <= 0.068, flagged


def test_relative_lift_interval_covers_the_true_relative_lift() -> None:
    rng = np.random.default_rng(41)
    runs, n, p0, p1 = 2000, 5000, 0.10, 0.12
    k0, k1 = rng.binomial(n, p0, runs) / n, rng.binomial(n, p1, runs) / n
    res = relative(k0, np.sqrt(k0 * (1 - k0) / n), k1, np.sqrt(k1 * (1 - k1) / n), 0.05)
    covered = np.mean((res["ci_low"] < p1 / p0 - 1) & (p1 / p0 - 1 < res["ci_high"]))
    # 2000 runs at 95%: sd 0.0049
    assert 0.935 <= covered <= 0.965, covered


def test_always_valid_boundary_is_ville_s_mixture_boundary_and_wider_than_fixed() -> None:
    alpha, tuning = 0.05, 5000.0
    rho2 = mixture_rho2(alpha, tuning)
    for n in (10, 100, 5000, 10**6):
        width = halfwidth(1 / math.sqrt(n), n, alpha, tuning)  # unit variance per unit
        s = width * n  # the sum S_n on the boundary
        martingale = math.exp(rho2 * s * s / (2 * (1 + n * rho2))) / math.sqrt(1 + n * rho2)
        assert martingale == pytest.approx(1 / alpha, rel=1e-9)
        assert width > stats.norm.ppf(1 - alpha / 2) / math.sqrt(n)
    # the ratio to the fixed-horizon width is smallest near the tuning size
    ns = np.array([500, 2000, 5000, 15000, 60000], dtype=float)
    ratio = halfwidth(1 / np.sqrt(ns), ns, alpha, tuning) * np.sqrt(ns)
    assert int(np.argmin(ratio)) == 2


def test_peeking_every_day_inflates_the_fixed_test_but_not_the_always_valid_one() -> None:
    rng = np.random.default_rng(99)
    runs, days, per_day, alpha = 1000, 20, 200, 0.05
    # A/A on a rate: daily new units per arm, cumulative counts after each day
    hits = rng.binomial(per_day, 0.1, (2, runs, days)).cumsum(axis=2)
    n = per_day * np.arange(1, days + 1)
    p0, p1 = hits[0] / n, hits[1] / n
    res = two_proportion(n, p0, n, p1, alpha)
    fixed_ever = np.mean((res["p_value"] < alpha).any(axis=1))
    width = halfwidth(res["se"], 2 * n, alpha, 5000.0)
    always_ever = np.mean((np.abs(res["diff"]) > width).any(axis=1))
    assert fixed_ever > 0.12  # peeking at a fixed-horizon test: several times alpha
    assert always_ever <= 0.05 + 0.018, always_ever  # alpha plus 2.6 binomial sd


@pytest.mark.parametrize("ratio", [1.0, 0.25])
def test_mean_plan_equals_statsmodels_t_and_normal_solvers(ratio) -> None:
    w0 = 1 / (1 + ratio)
    got = plan(baseline=50.0, mde=2.0, std=20.0, weights=[w0, 1 - w0], alpha=0.05, power=0.8)
    want = tt_ind_solve_power(effect_size=0.1, alpha=0.05, power=0.8, ratio=ratio)
    assert got["control_units_exact"] == pytest.approx(want, rel=1e-6)
    assert got["units_per_variant"]["control"] == math.ceil(want)
    assert got["test"] == "Welch's t-test"
    # the z approximation is within a unit of the t answer at this size
    z = zt_ind_solve_power(effect_size=0.1, alpha=0.05, power=0.8, ratio=ratio)
    assert abs(got["control_units_exact"] - z) < 3
    # --units inverts --mde
    back = plan(baseline=50.0, units=got["total_units"], std=20.0, weights=[w0, 1 - w0])
    assert back["mde"] == pytest.approx(2.0, rel=2e-3)
    assert back["mde"] <= 2.0


def test_proportion_plan_equals_statsmodels_normal_power() -> None:
    got = plan(baseline=0.10, mde=0.05, relative=True, alpha=0.05, power=0.8)
    assert got["mde"] == pytest.approx(0.005)
    v0, v1 = 0.1 * 0.9, 0.105 * 0.895
    effect = 0.005 / math.sqrt((v0 + v1) / 2)  # each arm's own variance, equal arms
    want = NormalIndPower().solve_power(effect_size=effect, alpha=0.05, power=0.8, ratio=1.0)
    assert got["control_units_exact"] == pytest.approx(want, rel=1e-6)
    assert got["total_units"] == 2 * math.ceil(want)
    assert 55_000 < got["units_per_variant"]["treatment"] < 60_000
    mde = plan(baseline=0.10, units=got["total_units"])
    assert mde["mde"] == pytest.approx(0.005, rel=1e-3)


def test_a_simulated_ab_is_detected_at_the_planned_power() -> None:
    rng = np.random.default_rng(5)
    planned = plan(baseline=0.10, mde=0.02, power=0.8)
    n = planned["units_per_variant"]["control"]
    runs = 2000
    k0, k1 = rng.binomial(n, 0.10, runs), rng.binomial(n, 0.12, runs)
    res = two_proportion(n, k0 / n, n, k1 / n, 0.05)
    detected = float(np.mean(res["p_value"] < 0.05))
    predicted = power_at("proportion", 0.10, 0.02, n, 1.0, 0.05)
    assert predicted == pytest.approx(0.8, abs=0.005)
    # 2000 runs at 80%: sd 0.009
    assert abs(detected - predicted) < 0.027, (detected, predicted)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"baseline": 0.1, "mde": 0.01, "weights": [0.6, 0.6]}, "summing to 1"),
        ({"baseline": 1.5, "mde": 0.01}, "not a proportion"),
        ({"baseline": 0.1}, "exactly one"),
        ({"baseline": 0.95, "mde": 0.1}, "not a proportion"),
        ({"baseline": 0.1, "units": 3}, "fewer than 2"),
    ],
)
def test_plan_rejects_bad_input(kwargs, needle) -> None:
    with pytest.raises(RequestError, match=needle):
        plan(**kwargs)


def test_a_metric_without_variance_is_reported_not_nan() -> None:
    flat = np.full(50, 3.0)
    got = compare("mean", _moments(flat), _moments(flat), "m", 0.05)
    assert got["p_value"] is None and got["statistic"] is None
    assert "does not vary" in got["note"] and got["absolute_lift"] == 0.0
