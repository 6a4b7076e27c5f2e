"""Analysis of an experiment from per-variant sufficient statistics computed in DuckDB.

One SQL query: per unit (the cluster) the metric values, then per variant counts, sums, sums of
squares, variances and covariances. Only those leave DuckDB. The tests are in ``_stats``; the
always-valid intervals in ``_sequential``. Sample-ratio mismatch: chi-square goodness of fit
against the weights, flagged at p < 0.001."""

from __future__ import annotations

import math

import duckdb
import numpy as np
from scipy import optimize, stats

from ..data import SourceSet, quote
from ..errors import DataError
from ..spec import ExperimentSpec
from . import _stats
from ._power import detectable_effect
from ._sequential import halfwidth
from ._served import cuped_metrics

SRM_ALPHA = 0.001
DECISION_POWER = 0.8
# more units needed than this many times the units so far: the lift is too small to chase
TOO_SMALL_FACTOR = 100


def _metric_sql(spec: ExperimentSpec) -> tuple[list[str], list[str]]:
    """The per-unit select items and the per-variant aggregates of every metric."""
    inner, outer = [], []
    event = spec.rows == "event"
    for i, (name, metric) in enumerate(spec.metrics.items()):
        col = f"CAST({quote(metric.column)} AS DOUBLE)"
        x, k = f"x{i}", lambda suffix, name=name: quote(f"{name}__{suffix}")
        if metric.type == "ratio":
            den = f"CAST({quote(metric.denominator)} AS DOUBLE)"
            inner += [f"coalesce(sum({col}), 0) AS x{i}", f"coalesce(sum({den}), 0) AS y{i}"]
            outer += [
                f"sum(y{i}) AS {k('den_sum')}",
                f"var_samp(y{i}) AS {k('den_var')}",
                f"covar_samp({x}, y{i}) AS {k('xy_cov')}",
            ]
        elif metric.type == "proportion":
            value = f"coalesce(max({col}), 0)" if event else f"max({col})"
            inner += [f"{value} AS {x}", f"min({col}) AS lo{i}", f"max({col}) AS hi{i}"]
            outer += [f"min(lo{i}) AS {k('min')}", f"max(hi{i}) AS {k('max')}"]
        else:
            value = f"coalesce(sum({col}), 0)" if event else f"sum({col})"
            inner.append(f"{value} AS {x}")
        outer += [
            f"count({x}) AS {k('n')}",
            f"sum({x}) AS {k('sum')}",
            # the engine's variance (not a sum of squares: exact where n * mean^2 would cancel)
            f"var_samp({x}) AS {k('var')}",
        ]
        if metric.covariate:
            cov = f"CAST({quote(metric.covariate)} AS DOUBLE)"
            inner.append(f"coalesce(max({cov}), 0) AS c{i}")  # no pre-period value counts as 0
            has_x = f"FILTER (WHERE {x} IS NOT NULL)"
            outer += [
                f"sum(c{i}) {has_x} AS {k('c_sum')}",
                f"var_samp(c{i}) {has_x} AS {k('c_var')}",
                f"covar_samp({x}, c{i}) AS {k('xc_cov')}",
            ]
    return inner, outer


def sufficient_stats(sources: SourceSet, spec: ExperimentSpec) -> dict[str, dict]:
    """Per variant: units, rows, and per metric the sufficient statistics (only these leave
    SQL). Raises DataError for data the analysis cannot use, counting the units concerned."""
    view = sources.view(spec.source)
    columns = sources.check(spec.source)
    needed = [spec.unit, spec.variant]
    for m in spec.metrics.values():
        needed += [c for c in (m.column, m.denominator, m.covariate) if c]
    missing = [c for c in dict.fromkeys(needed) if c not in columns]
    if missing:
        raise DataError(
            f"experiment source {spec.source!r} lacks column(s) {', '.join(missing)}",
            hint=f"its columns are {', '.join(columns)}",
        )
    unit, variant = quote(spec.unit), f"CAST({quote(spec.variant)} AS VARCHAR)"
    inner, outer = _metric_sql(spec)
    sql = (
        f"WITH per_unit AS (SELECT {unit}, count(*) AS n_rows, "
        f"count(*) - count({variant}) AS null_rows, min({variant}) AS v, max({variant}) AS v2"
        + "".join(f", {item}" for item in inner)
        + f" FROM {view} GROUP BY {unit}) "
        "SELECT v AS variant, count(*) AS units, sum(n_rows) AS n_rows, "
        "sum(null_rows) AS null_rows, count(*) FILTER (WHERE v <> v2) AS in_two"
        + "".join(f", {item}" for item in outer)
        + " FROM per_unit GROUP BY 1 ORDER BY 1"
    )
    try:
        relation = sources.con.sql(sql)
        names = relation.columns
        rows = relation.fetchall()
    except duckdb.Error as exc:
        metrics = ", ".join(f"{n} ({m.column})" for n, m in spec.metrics.items())
        raise DataError(
            f"cannot compute the metrics {metrics} of source {spec.source!r}: "
            f"{str(exc).splitlines()[0]}",
            hint="metric columns must hold numbers (0/1 or true/false for a proportion)",
        ) from None
    groups = {row[0]: dict(zip(names, row, strict=True)) for row in rows}
    if not groups:
        raise DataError(
            f"experiment source {spec.source!r} has no units yet",
            hint="analyse once units have been exposed and their rows are in the source",
        )
    total_rows = sum(int(g["n_rows"]) for g in groups.values())
    total_units = sum(int(g["units"]) for g in groups.values())
    in_two = sum(int(g["in_two"]) for g in groups.values())
    null_rows = sum(int(g["null_rows"] or 0) for g in groups.values())
    if spec.rows == "unit" and total_rows > total_units:
        detail = f"; {in_two} unit(s) appear in more than one variant" if in_two else ""
        raise DataError(
            f"experiment source {spec.source!r} has {total_rows - total_units} more row(s) "
            f"than units (column {spec.unit!r}){detail}",
            hint="the source needs one row per unit with its variant and outcomes; aggregate "
            "per unit first, or set `rows: event` to sum each unit's rows",
        )
    if in_two:
        raise DataError(
            f"{in_two} unit(s) of {total_units} appear in more than one variant "
            f"(column {spec.variant!r}) in source {spec.source!r}",
            hint="a unit must stay in one variant; fix the assignment or logging, or filter "
            "those units out explicitly (the analysis does not drop units silently)",
        )
    if null_rows:
        raise DataError(
            f"{null_rows} row(s) of source {spec.source!r} have no variant "
            f"(column {spec.variant!r} is null)",
            hint="every unit must have a variant; fix the data or filter those rows out",
        )
    for name, metric in spec.metrics.items():
        if metric.type != "proportion":
            continue
        for value, g in groups.items():
            low, high = g[f"{name}__min"], g[f"{name}__max"]
            if (low is not None and low < 0) or (high is not None and high > 1):
                raise DataError(
                    f"metric {name!r} is a proportion but column {metric.column!r} holds values "
                    f"from {low:g} to {high:g} in variant {value!r}",
                    hint="a proportion's column holds 0/1 (or true/false) per unit; "
                    "use `type: mean` for other numbers",
                )
    return groups


def analyze(spec: ExperimentSpec, name: str, groups: dict[str, dict]) -> dict:
    """The analysis of every metric of every treatment against the control, SRM and decision."""
    if not groups:
        raise DataError(f"experiment {name!r} has no units yet")
    if spec.control not in groups:
        raise DataError(
            f"experiment {name!r}: no rows for the control variant {spec.control!r}",
            hint=f"variants found: {', '.join(groups) or '(none)'}; check `control:`",
        )
    if len(groups) < 2:
        raise DataError(
            f"experiment {name!r} has only one variant ({spec.control!r}) in its data",
            hint="analyse once the treatment has units",
        )
    control = groups[spec.control]
    variants, notes = [], []
    adjusted = cuped_metrics(spec)
    for variant, g in groups.items():
        entry = {
            "variant": variant,
            "units": int(g["units"]),
            "rows": int(g.get("n_rows") or g["units"]),
            "control": variant == spec.control,
            "metrics": {},
        }
        if "with_outcome" in g:  # a served experiment: one exposure per unit
            entry["exposures"] = int(g["units"])
            entry["units_with_outcome"] = int(g["with_outcome"])
        for metric_name, metric in spec.metrics.items():
            n = int(g[f"{metric_name}__n"])
            entry["metrics"][metric_name] = {
                "n": n,
                "missing": entry["units"] - n,
                "value": _value(_kind(metric.type), g, metric_name),
            }
            if entry["units"] - n:
                notes.append(
                    f"{variant}: {entry['units'] - n} unit(s) have no {metric_name} value "
                    f"(null {metric.column}); they are left out of {metric_name} only"
                )
            if variant != spec.control:
                entry["metrics"][metric_name].update(
                    compare(
                        _kind(metric.type),
                        control,
                        g,
                        metric_name,
                        spec.alpha,
                        cuped=bool(metric.covariate) or metric_name in adjusted,
                        tuning=spec.sequential_tuning,
                    )
                )
                _add_mde(spec, entry["metrics"][metric_name])
                got = entry["metrics"][metric_name]
                if metric_name in adjusted and got.get("p_value") is not None and not got["cuped"]:
                    notes.append(
                        f"{variant}: {metric_name} is not CUPED-adjusted: a variant has no "
                        f"{metric.denominator} events in the pre-period"
                    )
        variants.append(entry)
    for entry in variants:
        if spec.guardrails and not entry["control"]:
            entry["guardrails_worse"] = guardrails_worse(spec, entry)
    srm = sample_ratio_check(spec, groups)
    primary = spec.primary_metric
    return {
        "experiment": name,
        "primary_metric": primary,
        "alpha": spec.alpha,
        "sequential": spec.sequential,
        "sequential_tuning": spec.sequential_tuning,
        "rows": spec.rows,
        "guardrails": list(spec.guardrails),
        "cuped": (
            {"days": spec.cuped.days, "metrics": adjusted} if spec.cuped is not None else None
        ),
        "variants": variants,
        "srm": srm,
        "notes": notes,
        "decision": decide(spec, variants, srm, primary),
    }


def _add_mde(spec: ExperimentSpec, m: dict) -> None:
    """The minimum detectable effect at the current units, for the interval the decision reads
    (``mde``: absolute, relative to the control, and the power)."""
    if m.get("se") is None or not m.get("units_total"):
        m["mde"] = None
        return
    absolute = detectable_effect(
        m["se"],
        m["units_total"],
        spec.alpha,
        DECISION_POWER,
        sequential=spec.sequential,
        tuning=spec.sequential_tuning,
    )
    base = m.get("control_value")
    m["mde"] = {
        "absolute": absolute,
        "relative": absolute / abs(base) if base else None,
        "power": DECISION_POWER,
    }


def _kind(metric_type: str) -> str:
    """The test family of a metric type: a served conversion is a proportion."""
    return "proportion" if metric_type == "conversion" else metric_type


def _value(kind: str, g: dict, metric: str) -> float | None:
    n = int(g[f"{metric}__n"])
    if not n:
        return None
    if kind == "ratio":
        den = float(g[f"{metric}__den_sum"] or 0.0)
        return float(g[f"{metric}__sum"]) / den if den else None
    return float(g[f"{metric}__sum"]) / n


def _var(g: dict, metric: str, part: str, n: int, mean: float) -> float:
    """A sample variance: the engine's when given, else from the sum of squares."""
    var = g.get(f"{metric}__{part}var")
    if var is None:
        sumsq = float(g.get(f"{metric}__{part}sumsq") or 0.0)
        var = (sumsq - n * mean * mean) / (n - 1)
    return max(float(var), 0.0)


def _arm(g: dict, metric: str) -> tuple[int, float, float]:
    """n, mean and sample variance of a metric's per-unit value."""
    n = int(g[f"{metric}__n"])
    mean = float(g[f"{metric}__sum"] or 0.0) / n if n else float("nan")
    return n, mean, _var(g, metric, "", n, mean) if n > 1 else float("nan")


def _too_few(n0: int, n1: int, m0: float, m1: float, note: str) -> dict:
    return {
        "test": None,
        "statistic": None,
        "p_value": None,
        "absolute_lift": m1 - m0 if n0 and n1 else None,
        "ci_low": None,
        "ci_high": None,
        "relative_lift": None,
        "relative_ci_low": None,
        "relative_ci_high": None,
        "significant": False,
        "sequential": None,
        "cuped": None,
        "note": note,
    }


def compare(
    kind: str,
    control: dict,
    treat: dict,
    metric: str,
    alpha: float,
    *,
    cuped: bool = False,
    tuning: float = 5000.0,
) -> dict:
    """One treatment against the control on one metric, from their sufficient statistics."""
    n0, x0, v0 = _arm(control, metric)
    n1, x1, v1 = _arm(treat, metric)
    if n0 < 2 or n1 < 2:
        return _too_few(
            n0, n1, x0, x1, f"too few values to test ({n0} in control, {n1} in the variant)"
        )
    cuped_info = None
    if kind == "ratio":
        arms = []
        for g, n, mean_x, var_x in ((control, n0, x0, v0), (treat, n1, x1, v1)):
            mean_y = float(g[f"{metric}__den_sum"] or 0.0) / n
            var_y = _var(g, metric, "den_", n, mean_y)
            cov = g.get(f"{metric}__xy_cov")
            cov = 0.0 if cov is None else float(cov)
            if mean_y == 0:
                return _too_few(n0, n1, x0, x1, "a variant's denominator sums to 0")
            arms.append(_stats.ratio_moments(n, mean_x, mean_y, var_x, var_y, cov))
        (m0, r0), (m1, r1) = arms
        test = "delta method z-test (ratio, unit as cluster)"
        adjusted = _ratio_cuped(control, treat, metric) if cuped else None
        if adjusted is not None:
            theta, ((m0, r0), (m1, r1)) = adjusted
            test += " with CUPED"
            plain = compare(kind, control, treat, metric, alpha, tuning=tuning)
            means = [
                float(g[f"{metric}__c_sum"] or 0.0) / float(g[f"{metric}__d_sum"])
                for g in (control, treat)
            ]
            before = (plain.get("se") or 0.0) ** 2
            cuped_info = _cuped_info(theta, r0 / n0 + r1 / n1, before, plain, means)
        se0, se1 = math.sqrt(r0 / n0), math.sqrt(r1 / n1)
        res = _stats.z_test(m1 - m0, math.hypot(se0, se1), alpha)
    elif cuped:
        moments = []
        for g, n in ((control, n0), (treat, n1)):
            mean_c = float(g[f"{metric}__c_sum"] or 0.0) / n
            var_c = _var(g, metric, "c_", n, mean_c)
            cov = g.get(f"{metric}__xc_cov")
            moments.append((mean_c, var_c, 0.0 if cov is None else float(cov)))
        theta = _stats.cuped_theta([(n0, *moments[0][1:]), (n1, *moments[1][1:])])
        c_all = (moments[0][0] * n0 + moments[1][0] * n1) / (n0 + n1)
        m0, a0 = _stats.cuped_adjust(x0, v0, *moments[0], theta, c_all)
        m1, a1 = _stats.cuped_adjust(x1, v1, *moments[1], theta, c_all)
        if kind == "proportion":
            res = _stats.z_test(m1 - m0, math.sqrt(a0 / n0 + a1 / n1), alpha)
            test = "z-test with CUPED"
        else:
            res = _stats.welch(n0, m0, a0, n1, m1, a1, alpha)
            test = "Welch's t-test with CUPED"
        se0, se1 = math.sqrt(a0 / n0), math.sqrt(a1 / n1)
        plain = compare(kind, control, treat, metric, alpha, tuning=tuning)
        means = [moments[0][0], moments[1][0]]
        before = v0 / n0 + v1 / n1
        cuped_info = _cuped_info(theta, a0 / n0 + a1 / n1, before, plain, means)
    elif kind == "proportion":
        m0, m1 = x0, x1
        res = _stats.two_proportion(n0, m0, n1, m1, alpha)
        se0, se1 = math.sqrt(m0 * (1 - m0) / n0), math.sqrt(m1 * (1 - m1) / n1)
        test = "two-proportion z-test"
    else:
        m0, m1 = x0, x1
        res = _stats.welch(n0, m0, v0, n1, m1, v1, alpha)
        se0, se1 = math.sqrt(v0 / n0), math.sqrt(v1 / n1)
        test = "Welch's t-test"
    diff, se = res["diff"], res["se"]
    if not (np.isfinite(se) and se > 0 and np.isfinite(res["statistic"])):
        return _too_few(n0, n1, m0, m1, f"{metric} does not vary: nothing to test")
    p_value = res["p_value"]
    rel = _stats.relative(m0, se0, m1, se1, alpha) if m0 else None
    seq_low, seq_high = _stats.always_valid(diff, se, n0 + n1, alpha, tuning)
    sequential = {
        "ci_low": seq_low,
        "ci_high": seq_high,
        "significant": bool(seq_low > 0 or seq_high < 0),
    }
    if rel is not None:
        r_low, r_high = _stats.always_valid(rel["lift"], rel["se"], n0 + n1, alpha, tuning)
        sequential.update(relative_ci_low=r_low, relative_ci_high=r_high)
    return {
        "test": test,
        "statistic": res["statistic"],
        "p_value": p_value,
        "absolute_lift": diff,
        "se": se,
        "ci_low": res["ci_low"],
        "ci_high": res["ci_high"],
        "relative_lift": rel["lift"] if rel else None,
        "relative_ci_low": rel["ci_low"] if rel else None,
        "relative_ci_high": rel["ci_high"] if rel else None,
        "significant": bool(p_value < alpha),
        "sequential": sequential,
        "cuped": cuped_info,
        "units_total": n0 + n1,
        "control_value": m0,
    }


_UNADJUSTED = (
    "test",
    "statistic",
    "p_value",
    "absolute_lift",
    "se",
    "ci_low",
    "ci_high",
    "relative_lift",
    "relative_ci_low",
    "relative_ci_high",
    "significant",
)


def _cuped_info(
    theta: float, adjusted_var: float, before: float, plain: dict, covariate_means: list
) -> dict:
    """What the result says about CUPED: theta, the variance reduction of the lift
    (``adjusted_var`` against ``before``), the covariate's mean per arm and the unadjusted
    comparison ``plain``."""
    return {
        "theta": theta,
        "variance_reduction": 1 - adjusted_var / before if before > 0 else 0.0,
        "unadjusted_lift": plain.get("absolute_lift"),
        "covariate_means": {"control": covariate_means[0], "variant": covariate_means[1]},
        "unadjusted": {key: plain.get(key) for key in _UNADJUSTED},
    }


def _ratio_cuped(control: dict, treat: dict, metric: str):
    """``_stats.ratio_cuped`` from two arms' sufficient statistics (None without the pre-period
    columns or without pre-period denominators)."""
    if f"{metric}__d_sum" not in control:
        return None
    arms = []
    for g in (control, treat):
        n = int(g[f"{metric}__n"])

        def get(key: str, g: dict = g) -> float:
            value = g.get(f"{metric}__{key}")
            return 0.0 if value is None else float(value)

        arms.append(
            {
                "n": n,
                "x": get("sum") / n,
                "y": get("den_sum") / n,
                "c": get("c_sum") / n,
                "d": get("d_sum") / n,
                "var_x": get("var"),
                "var_y": get("den_var"),
                "var_c": get("c_var"),
                "var_d": get("d_var"),
                "cov_xy": get("xy_cov"),
                "cov_xc": get("xc_cov"),
                "cov_xd": get("xd_cov"),
                "cov_yc": get("yc_cov"),
                "cov_yd": get("yd_cov"),
                "cov_cd": get("cd_cov"),
            }
        )
    return _stats.ratio_cuped(arms)


def sample_ratio_check(spec: ExperimentSpec, groups: dict[str, dict]) -> dict:
    """Chi-square goodness of fit of the units per variant against the weights."""
    # every variant with a weight counts, also one with no units in the data (that is a mismatch)
    shares = spec.shares
    names = list(dict.fromkeys([*(shares or {}), *groups]))
    observed = [int(groups[v]["units"]) if v in groups else 0 for v in names]
    total = sum(observed)
    weights = shares or {v: 1 / len(names) for v in names}
    expected = [total * weights.get(v, 0.0) for v in names]
    if any(e == 0 for e in expected):
        unweighted = [v for v, e in zip(names, expected, strict=True) if e == 0]
        return {
            "observed": dict(zip(names, observed, strict=True)),
            "expected_share": {v: weights.get(v, 0.0) for v in names},
            "p_value": None,
            "mismatch": True,
            "note": f"variant(s) {', '.join(unweighted)} in the data have no weight",
        }
    result = stats.chisquare(observed, expected)
    return {
        "observed": dict(zip(names, observed, strict=True)),
        "expected_share": {v: weights.get(v, 0.0) for v in names},
        "p_value": float(result.pvalue),
        "mismatch": bool(result.pvalue < SRM_ALPHA),
    }


def _reading(spec: ExperimentSpec, m: dict) -> tuple[bool, float | None, float | None, str]:
    """Significance and relative interval of the interval the decision reads."""
    confidence = f"{(1 - spec.alpha) * 100:g}%"
    if spec.sequential and m.get("sequential"):
        seq = m["sequential"]
        return (
            seq["significant"],
            seq.get("relative_ci_low"),
            seq.get("relative_ci_high"),
            f"{confidence} always-valid CI",
        )
    return m["significant"], m["relative_ci_low"], m["relative_ci_high"], f"{confidence} CI"


def decide(spec: ExperimentSpec, variants: list[dict], srm: dict, primary: str) -> str:
    """A plain-language decision on the primary metric."""
    if srm.get("mismatch"):
        return (
            "stop: sample ratio mismatch; the assignment or logging is broken, "
            "fix it before reading results"
        )
    treatments = [v for v in variants if not v["control"]]
    winners = [v for v in treatments if _reading(spec, v["metrics"][primary])[0]]
    pool = winners or treatments
    best = min(pool, key=lambda v: _p_or_one(v["metrics"][primary]["p_value"]))
    m = best["metrics"][primary]
    if m["p_value"] is None:
        return f"no detectable difference yet in {primary}: {m.get('note', 'too little data')}"
    significant, low, high, label = _reading(spec, m)
    if significant and m["relative_lift"] is not None and low is not None:
        better = (m["absolute_lift"] > 0) == spec.metrics[primary].higher_is_better
        said = f"{primary} {m['relative_lift']:+.1%} ({label} {low:+.1%} to {high:+.1%})"
        if not better:
            return f"{best['variant']} loses: {said}"
        worse = guardrails_worse(spec, best)
        if worse:
            return (
                f"do not ship {best['variant']}: {said}, but guardrail(s) got significantly "
                f"worse: {'; '.join(worse)}"
            )
        return f"{best['variant']} wins: {said}"
    needed = more_units_needed(m, spec.alpha, spec.sequential, spec.sequential_tuning)
    n_now, mde = m.get("units_total"), m.get("mde")
    if mde and n_now and (needed is None or needed > TOO_SMALL_FACTOR * n_now):
        observed = (
            f"{m['relative_lift']:+.2%}"
            if m.get("relative_lift") is not None
            else f"{m['absolute_lift']:+.3g}"
        )
        smallest = (
            f"{mde['relative']:.2%} relative ({mde['absolute']:.3g} absolute)"
            if mde.get("relative") is not None
            else f"{mde['absolute']:.3g} (absolute)"
        )
        return (
            f"no detectable difference in {primary}: the observed difference ({observed}) is too "
            f"small to matter at this traffic (detecting it would take over "
            f"{TOO_SMALL_FACTOR} times the {n_now:,} units so far); the minimum detectable "
            f"effect at {n_now:,} units is {smallest} with {DECISION_POWER:.0%} power"
        )
    more = (
        f"; about {needed:,} more units needed (all variants) to detect the observed "
        f"lift with {DECISION_POWER:.0%} power"
        if needed
        else ""
    )
    return f"no detectable difference yet in {primary}{more}"


def guardrails_worse(spec: ExperimentSpec, variant: dict) -> list[str]:
    """The guardrail metrics of ``variant`` that got significantly worse (by the interval the
    decision reads), each described with its lift and interval."""
    out = []
    for name in spec.guardrails:
        m = variant["metrics"].get(name) or {}
        if m.get("p_value") is None:
            continue
        significant, low, high, label = _reading(spec, m)
        if not significant:
            continue
        if (m["absolute_lift"] > 0) == spec.metrics[name].higher_is_better:
            continue
        if m.get("relative_lift") is not None and low is not None:
            out.append(f"{name} {m['relative_lift']:+.1%} ({label} {low:+.1%} to {high:+.1%})")
        else:
            out.append(f"{name} {m['absolute_lift']:+.4g} (absolute)")
    return out


def _p_or_one(p: float | None) -> float:
    return 1.0 if p is None or math.isnan(p) else p


def more_units_needed(
    m: dict, alpha: float, sequential: bool = False, tuning: float = 5000.0
) -> int | None:
    """Units still needed (all arms of this comparison) before an effect the size of the
    observed lift is detected with 80% power, the standard error shrinking as 1/sqrt(units):
    the fixed-horizon interval's half-width, or the always-valid one's, must reach
    ``|lift| * z_(1-alpha/2) / (z_(1-alpha/2) + z_power)``."""
    diff, se, n_now = abs(m["absolute_lift"]), m.get("se"), m.get("units_total")
    if not diff or not se or not n_now:
        return None
    z_crit = stats.norm.ppf(1 - alpha / 2)
    target = diff * z_crit / (z_crit + stats.norm.ppf(DECISION_POWER))
    if not sequential:
        n_needed = n_now * (se * z_crit / target) ** 2
    else:

        def gap(n: float) -> float:
            return halfwidth(se * math.sqrt(n_now / n), n, alpha, tuning) - target

        if gap(1e13) > 0:
            return None
        n_needed = optimize.brentq(gap, max(n_now, 2), 1e13) if gap(n_now) > 0 else n_now
    return max(0, int(math.ceil(n_needed - n_now)))
