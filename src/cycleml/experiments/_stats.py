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


def ratio_cuped(arms: list[dict]) -> tuple[float, list[tuple[float, float]]] | None:
    """CUPED for a ratio metric with the delta method (as GrowthBook and Statsig): per unit the
    numerator ``x`` and denominator ``y`` after the exposure, ``c`` and ``d`` before it. Each arm
    is linearised, ``u = (x - R y) / mean(y)`` and ``v = (c - P d) / mean(d)`` (``R``, ``P`` the
    arm's post and pre ratios); ``theta = sum(Cov(u, v) / n) / sum(Var(v) / n)`` over the arms
    (the variance of the difference is smallest there); an arm's adjusted ratio is
    ``R - theta (P - P_all)`` (``P_all`` pooled) with per-unit variance
    ``Var(u) + theta^2 Var(v) - 2 theta Cov(u, v)``. Each arm holds ``n``, the means ``x y c d``
    and ``var_x var_y var_c var_d cov_xy cov_xc cov_xd cov_yc cov_yd cov_cd``. Returns theta and
    per arm ``(adjusted ratio, per-unit variance)``, or None when an arm has no pre-period
    denominator (nothing to adjust with)."""
    if any(a["d"] <= 0 or a["y"] <= 0 for a in arms):
        return None
    lin = []
    for a in arms:
        r, p = a["x"] / a["y"], a["c"] / a["d"]
        var_u = (a["var_x"] - 2 * r * a["cov_xy"] + r * r * a["var_y"]) / a["y"] ** 2
        var_v = (a["var_c"] - 2 * p * a["cov_cd"] + p * p * a["var_d"]) / a["d"] ** 2
        cov_uv = (a["cov_xc"] - p * a["cov_xd"] - r * a["cov_yc"] + r * p * a["cov_yd"]) / (
            a["y"] * a["d"]
        )
        lin.append((r, p, var_u, var_v, cov_uv))
    den = sum(var_v / a["n"] for a, (_, _, _, var_v, _) in zip(arms, lin, strict=True))
    num = sum(cov / a["n"] for a, (*_, cov) in zip(arms, lin, strict=True))
    theta = float(num / den) if den > 0 else 0.0
    p_all = sum(a["c"] * a["n"] for a in arms) / sum(a["d"] * a["n"] for a in arms)
    out = []
    for r, p, var_u, var_v, cov_uv in lin:
        var = var_u + theta * theta * var_v - 2 * theta * cov_uv
        out.append((float(r - theta * (p - p_all)), max(float(var), 0.0)))
    return theta, out


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
