"""Sample size and minimum detectable effect of a two-sided test of one treatment vs control.

Proportions: the z-test with each arm's own variance ``p (1 - p)``. Means: Welch's t with a
common standard deviation, as ``statsmodels``' ``TTestIndPower`` (noncentral t). Both count the
far tail, as statsmodels does. The plan is for a fixed horizon: reading the always-valid interval
(``sequential: true``) needs more units for the same power. ``detectable_effect`` gives the MDE of
a running comparison from its standard error (the analysis's decision uses it)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from scipy import optimize, stats

from ..errors import RequestError
from ._sequential import halfwidth


def _power_z(diff: float, se: float, alpha: float) -> float:
    crit = stats.norm.isf(alpha / 2)
    shift = abs(diff) / se
    return float(stats.norm.sf(crit - shift) + stats.norm.cdf(-crit - shift))


def _power_t(diff: float, std: float, n0: float, n1: float, alpha: float) -> float:
    df = n0 + n1 - 2
    nc = abs(diff) / std * math.sqrt(n0 * n1 / (n0 + n1))
    crit = stats.t.isf(alpha / 2, df)
    value = float(stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc))
    return 1.0 if math.isnan(value) and nc > crit else value


def power_at(
    kind: str, baseline: float, diff: float, n0: float, ratio: float, alpha: float, std=None
) -> float:
    """Power with ``n0`` control units and ``ratio * n0`` treatment units."""
    n1 = ratio * n0
    if kind == "proportion":
        p1 = baseline + diff
        se = math.sqrt(baseline * (1 - baseline) / n0 + p1 * (1 - p1) / n1)
        return _power_z(diff, se, alpha)
    return _power_t(diff, std, n0, n1, alpha)


def _shares(weights: Mapping[str, float] | Sequence[float] | None) -> dict[str, float]:
    if weights is None:
        return {"control": 0.5, "treatment": 0.5}
    if not isinstance(weights, Mapping):
        weights = list(weights)
        more = [f"treatment_{i}" for i in range(1, len(weights))]
        names = ["control"] + (["treatment"] if len(weights) == 2 else more)
        weights = dict(zip(names, weights, strict=True))
    shares = {str(k): float(v) for k, v in weights.items()}
    total = sum(shares.values())
    if len(shares) < 2 or any(v <= 0 for v in shares.values()) or abs(total - 1) > 1e-6:
        raise RequestError(
            f"weights {shares} must be two or more positive shares summing to 1 (sum {total:g})",
            hint="for example --weights 0.5,0.5 (the control first)",
        )
    return shares


def plan(
    *,
    baseline: float,
    mde: float | None = None,
    units: int | None = None,
    relative: bool = False,
    alpha: float = 0.05,
    power: float = 0.8,
    weights: Mapping[str, float] | Sequence[float] | None = None,
    std: float | None = None,
) -> dict:
    """Units needed to detect ``mde`` (absolute, or relative to ``baseline`` with
    ``relative=True``), or with ``units`` in total the smallest detectable effect. A mean metric
    is planned when ``std`` (its standard deviation) is given, else a proportion."""
    kind = "mean" if std is not None else "proportion"
    if (mde is None) == (units is None):
        raise RequestError("give exactly one of mde (to get units) or units (to get the MDE)")
    if not 0 < alpha < 0.5 or not 0 < power < 1:
        raise RequestError(f"alpha {alpha} must be in (0, 0.5) and power {power} in (0, 1)")
    if kind == "proportion" and not 0 < baseline < 1:
        raise RequestError(
            f"baseline {baseline} is not a proportion", hint="give a rate in (0, 1), e.g. 0.1"
        )
    if std is not None and std <= 0:
        raise RequestError(f"std {std} must be positive")
    shares = _shares(weights)
    names = list(shares)
    w0 = shares[names[0]]
    w1 = min(shares[n] for n in names[1:])  # the smallest treatment decides
    ratio = w1 / w0
    result = {
        "metric": kind,
        "test": "two-proportion z-test" if kind == "proportion" else "Welch's t-test",
        "baseline": baseline,
        "std": std,
        "alpha": alpha,
        "power": power,
        "weights": shares,
    }
    if mde is not None:
        diff = mde * baseline if relative else mde
        if diff == 0:
            raise RequestError("mde must not be 0")
        if kind == "proportion" and not 0 < baseline + diff < 1:
            raise RequestError(
                f"baseline {baseline} + mde {diff:g} is not a proportion",
                hint="a relative MDE needs --relative; an absolute one is in rate points",
            )

        def gap(n0: float) -> float:
            return power_at(kind, baseline, diff, n0, ratio, alpha, std) - power

        high = 4.0
        while gap(high) < 0:
            high *= 2
            if high > 1e13:
                raise RequestError(f"an effect of {diff:g} cannot be detected with any sample")
        n0 = float(optimize.brentq(gap, 2.0 + 1e-9, high, xtol=1e-6, rtol=1e-12))
        per = {n: int(math.ceil(n0 * shares[n] / w0 - 1e-9)) for n in names}
        result.update(
            mde=diff,
            mde_relative=diff / baseline if baseline else None,
            control_units_exact=n0,
            units_per_variant=per,
            total_units=sum(per.values()),
        )
        return result
    assert units is not None
    n0, n1 = units * w0, units * w1
    if n1 < 2 or n0 < 2:
        raise RequestError(f"{units} units leave fewer than 2 in a variant")
    top = (1 - baseline) * (1 - 1e-9) if kind == "proportion" else std * 20

    def short(diff: float) -> float:
        return power_at(kind, baseline, diff, n0, ratio, alpha, std) - power

    if short(top) < 0:
        raise RequestError(f"{units} units cannot reach power {power} for any effect")
    diff = float(optimize.brentq(short, 1e-12, top, xtol=1e-14, rtol=1e-12))
    result.update(
        units=units,
        units_per_variant={n: int(round(units * shares[n])) for n in names},
        mde=diff,
        mde_relative=diff / baseline if baseline else None,
    )
    return result


def detectable_effect(
    se: float,
    n_total: float,
    alpha: float = 0.05,
    power: float = 0.8,
    *,
    sequential: bool = False,
    tuning: float = 5000.0,
) -> float:
    """The minimum detectable effect (absolute) of a running comparison whose estimate has
    standard error ``se`` after ``n_total`` units: the effect at which the interval read (the
    fixed-horizon ``z_(1-alpha/2) se``, or the always-valid half-width) is
    ``effect * z_(1-alpha/2) / (z_(1-alpha/2) + z_power)``. Fixed horizon, that is the normal
    approximation ``(z_(1-alpha/2) + z_power) se`` of ``plan(units=...)``'s MDE."""
    z_crit = float(stats.norm.isf(alpha / 2))
    z_power = float(stats.norm.ppf(power))
    width = halfwidth(se, n_total, alpha, tuning) if sequential else z_crit * se
    return float(width * (z_crit + z_power) / z_crit)
