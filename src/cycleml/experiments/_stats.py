"""The tests and intervals of one treatment against the control, from per-arm moments.

Every function takes numbers or numpy arrays (a simulation passes thousands of runs at once).
An arm is described by ``n`` (units), ``mean`` and ``var`` (the sample variance, ddof 1) of the
per-unit value; the variance of the arm's mean is ``var / n``."""

from __future__ import annotations

import numpy as np
from scipy import stats

from ._sequential import halfwidth


def _out(value):
    """Plain floats for scalars, arrays for arrays."""
    value = np.asarray(value, dtype=float)
    return value if value.ndim else float(value)


def two_proportion(n0, p0, n1, p1, alpha: float) -> dict:
    """Two-proportion z-test (pooled standard error, as ``proportions_ztest``) and the Wald
    interval of the difference (unpooled, as ``confint_proportions_2indep(method="wald")``)."""
    n0, p0, n1, p1 = (np.asarray(a, dtype=float) for a in (n0, p0, n1, p1))
    diff = p1 - p0
    pooled = (p0 * n0 + p1 * n1) / (n0 + n1)
    se_test = np.sqrt(pooled * (1 - pooled) * (1 / n0 + 1 / n1))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se_test > 0, diff / np.where(se_test > 0, se_test, 1), 0.0)
    se = np.sqrt(p0 * (1 - p0) / n0 + p1 * (1 - p1) / n1)
    crit = stats.norm.ppf(1 - alpha / 2)
    return {
        "statistic": _out(z),
        "p_value": _out(2 * stats.norm.sf(np.abs(z))),
        "diff": _out(diff),
        "se": _out(se),
        "ci_low": _out(diff - crit * se),
        "ci_high": _out(diff + crit * se),
    }


def welch(n0, m0, v0, n1, m1, v1, alpha: float) -> dict:
    """Welch's t-test and interval of ``m1 - m0`` (as ``ttest_ind(equal_var=False)``)."""
    n0, m0, v0, n1, m1, v1 = (np.asarray(a, dtype=float) for a in (n0, m0, v0, n1, m1, v1))
    a0, a1 = v0 / n0, v1 / n1
    se = np.sqrt(a0 + a1)
    diff = m1 - m0
    with np.errstate(divide="ignore", invalid="ignore"):
        dof = (a0 + a1) ** 2 / (a0**2 / (n0 - 1) + a1**2 / (n1 - 1))
        t = diff / se
    crit = stats.t.ppf(1 - alpha / 2, dof)
    return {
        "statistic": _out(t),
        "p_value": _out(2 * stats.t.sf(np.abs(t), dof)),
        "diff": _out(diff),
        "se": _out(se),
        "dof": _out(dof),
        "ci_low": _out(diff - crit * se),
        "ci_high": _out(diff + crit * se),
    }


def z_test(diff, se, alpha: float) -> dict:
    """A Wald z-test and interval for an estimate with a known standard error."""
    diff, se = np.asarray(diff, dtype=float), np.asarray(se, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = diff / se
    crit = stats.norm.ppf(1 - alpha / 2)
    return {
        "statistic": _out(z),
        "p_value": _out(2 * stats.norm.sf(np.abs(z))),
        "diff": _out(diff),
        "se": _out(se),
        "ci_low": _out(diff - crit * se),
        "ci_high": _out(diff + crit * se),
    }


def ratio_moments(n, mean_x, mean_y, var_x, var_y, cov_xy) -> tuple:
    """The ratio ``mean_x / mean_y`` of per-unit sums and its delta-method variance per unit
    (the unit is the cluster): ``Var(R) = (var_x - 2 R cov_xy + R^2 var_y) / (n mean_y^2)``.
    Returns ``(ratio, var)`` with ``var / n`` the variance of the ratio."""
    mean_x, mean_y = np.asarray(mean_x, dtype=float), np.asarray(mean_y, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = mean_x / mean_y
        var = (var_x - 2 * r * cov_xy + r * r * var_y) / (mean_y * mean_y)
    return _out(r), _out(var)


def cuped_theta(arms: list[tuple]) -> float:
    """CUPED's theta from the arms pooled: the within-arm covariance of outcome and covariate
    over the within-arm covariate variance, each arm ``(n, var_c, cov_xc)``. This is the
    covariate's coefficient in an OLS of the outcome on the covariate and the arm."""
    num = sum((n - 1) * cov for n, _, cov in arms)
    den = sum((n - 1) * var_c for n, var_c, _ in arms)
    return float(num / den) if den > 0 else 0.0


def cuped_adjust(mean_x, var_x, mean_c, var_c, cov_xc, theta, mean_c_all) -> tuple:
    """An arm's CUPED-adjusted mean and per-unit variance: ``x - theta (c - mean_c_all)``."""
    mean = mean_x - theta * (mean_c - mean_c_all)
    var = var_x + theta * theta * var_c - 2 * theta * cov_xc
    return mean, max(var, 0.0)


def relative(m0, se0, m1, se1, alpha: float) -> dict:
    """Relative lift ``m1 / m0 - 1`` with its delta-method standard error
    ``sqrt(se1^2 / m0^2 + m1^2 se0^2 / m0^4)`` (arms independent) and z interval."""
    m0, se0, m1, se1 = (np.asarray(a, dtype=float) for a in (m0, se0, m1, se1))
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = m1 / m0 - 1
        se = np.sqrt(se1**2 / m0**2 + m1**2 * se0**2 / m0**4)
    crit = stats.norm.ppf(1 - alpha / 2)
    return {
        "lift": _out(rel),
        "se": _out(se),
        "ci_low": _out(rel - crit * se),
        "ci_high": _out(rel + crit * se),
    }


def always_valid(estimate, se, n_total, alpha: float, tuning: float) -> tuple:
    """The always-valid interval ``estimate +- halfwidth`` (see ``_sequential``)."""
    width = halfwidth(se, n_total, alpha, tuning)
    return _out(np.asarray(estimate) - width), _out(np.asarray(estimate) + width)
