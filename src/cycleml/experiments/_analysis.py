"""Analysis of an experiment from per-variant sufficient statistics computed in DuckDB.

Rates: two-proportion z-test (pooled standard error for the test, unpooled for the interval).
Means: Welch's t-test. Sample-ratio mismatch: chi-square goodness of fit against the weights,
flagged at p < 0.001."""

from __future__ import annotations

import math

import duckdb
from scipy import stats

from ..data import SourceSet, quote
from ..errors import DataError
from ..spec import ExperimentSpec

SRM_ALPHA = 0.001


def sufficient_stats(sources: SourceSet, spec: ExperimentSpec) -> dict[str, dict]:
    """Per variant: units, and per metric the sum and sum of squares (only these leave SQL)."""
    view = sources.view(spec.source)
    columns = sources.check(spec.source)
    needed = [spec.unit, spec.variant] + [m.column for m in spec.metrics.values()]
    missing = [c for c in needed if c not in columns]
    if missing:
        raise DataError(
            f"experiment source {spec.source!r} lacks column(s) {', '.join(missing)}",
            hint=f"its columns are {', '.join(columns)}",
        )
    parts = [
        f"CAST({quote(spec.variant)} AS VARCHAR) AS variant",
        f"count(DISTINCT {quote(spec.unit)}) AS units",
        "count(*) AS n_rows",
    ]
    for name, metric in spec.metrics.items():
        col = f"CAST({quote(metric.column)} AS DOUBLE)"
        parts += [
            f"sum({col}) AS {quote(name + '__sum')}",
            f"sum({col} * {col}) AS {quote(name + '__sumsq')}",
            f"count({col}) AS {quote(name + '__n')}",
            # the two-pass variance, exact where sum of squares minus n * mean^2 cancels
            f"var_samp({col}) AS {quote(name + '__var')}",
            f"min({col}) AS {quote(name + '__min')}",
            f"max({col}) AS {quote(name + '__max')}",
        ]
    try:
        relation = sources.con.sql(f"SELECT {', '.join(parts)} FROM {view} GROUP BY 1 ORDER BY 1")
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
    unit, variant = quote(spec.unit), quote(spec.variant)
    total_rows, total_units, in_two = sources.con.execute(
        f"SELECT sum(n), count(*), count(*) FILTER (WHERE variants > 1) FROM ("
        f"SELECT {unit}, count(*) AS n, count(DISTINCT {variant}) AS variants "
        f"FROM {view} GROUP BY 1)"
    ).fetchone()
    repeated = int(total_rows or 0) - int(total_units or 0)
    if repeated:
        detail = f"; {in_two} unit(s) appear in more than one variant" if in_two else ""
        raise DataError(
            f"experiment source {spec.source!r} has {repeated} more row(s) than units "
            f"(column {spec.unit!r}){detail}",
            hint="the source needs one row per unit with its variant and outcomes; "
            "aggregate per unit first (for example max() of a 0/1 outcome, sum() of revenue)",
        )
    if None in groups:
        raise DataError(
            f"{groups[None]['n_rows']} row(s) of source {spec.source!r} have no variant "
            f"(column {spec.variant!r} is null)",
            hint="every unit must have a variant; fix the data or filter those rows out",
        )
    for name, metric in spec.metrics.items():
        if metric.type != "proportion":
            continue
        for variant, g in groups.items():
            low, high = g[f"{name}__min"], g[f"{name}__max"]
            if (low is not None and low < 0) or (high is not None and high > 1):
                raise DataError(
                    f"metric {name!r} is a proportion but column {metric.column!r} holds values "
                    f"from {low:g} to {high:g} in variant {variant!r}",
                    hint="a proportion's column holds 0/1 (or true/false) per unit; "
                    "use `type: mean` for other numbers",
                )
    return groups


def analyze(spec: ExperimentSpec, name: str, groups: dict[str, dict]) -> dict:
    if spec.control not in groups:
        raise DataError(
            f"experiment {name!r}: no rows for the control variant {spec.control!r}",
            hint=f"variants found: {', '.join(groups) or '(none)'}; check `control:`",
        )
    if len(groups) < 2:
        raise DataError(f"experiment {name!r} has only one variant in its data")
    control = groups[spec.control]
    variants = []
    for variant, g in groups.items():
        entry = {
            "variant": variant,
            "units": int(g["units"]),
            "control": variant == spec.control,
            "metrics": {},
        }
        for metric_name, metric in spec.metrics.items():
            n = int(g[f"{metric_name}__n"])
            mean = float(g[f"{metric_name}__sum"]) / n if n else None
            entry["metrics"][metric_name] = {"n": n, "value": mean}
            if variant != spec.control:
                entry["metrics"][metric_name].update(
                    compare(metric.type, control, g, metric_name, spec.alpha)
                )
        variants.append(entry)
    srm = sample_ratio_check(spec, groups)
    primary = spec.primary_metric
    return {
        "experiment": name,
        "primary_metric": primary,
        "alpha": spec.alpha,
        "variants": variants,
        "srm": srm,
        "decision": decide(spec, variants, srm, primary),
    }


def _moments(g: dict, metric: str) -> tuple[int, float, float]:
    """n, mean and sample variance from sufficient statistics (``__var`` when the engine gave
    it, else from the sum of squares)."""
    n = int(g[f"{metric}__n"])
    total, sumsq = float(g[f"{metric}__sum"] or 0.0), float(g[f"{metric}__sumsq"] or 0.0)
    mean = total / n if n else float("nan")
    var = g.get(f"{metric}__var")
    if var is None:
        var = (sumsq - n * mean * mean) / (n - 1) if n > 1 else float("nan")
    return n, mean, max(float(var), 0.0) if n > 1 else float("nan")


def compare(kind: str, control: dict, treat: dict, metric: str, alpha: float) -> dict:
    n0, m0, v0 = _moments(control, metric)
    n1, m1, v1 = _moments(treat, metric)
    if n0 < 2 or n1 < 2:
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
            "note": f"too few values to test ({n0} in control, {n1} in the variant; need 2 each)",
        }
    z_crit = stats.norm.ppf(1 - alpha / 2)
    diff = m1 - m0
    if kind == "proportion":
        pooled = (m0 * n0 + m1 * n1) / (n0 + n1)
        se_test = math.sqrt(pooled * (1 - pooled) * (1 / n0 + 1 / n1))
        statistic = diff / se_test if se_test > 0 else 0.0
        p_value = 2 * stats.norm.sf(abs(statistic))
        se = math.sqrt(m0 * (1 - m0) / n0 + m1 * (1 - m1) / n1)
        low, high = diff - z_crit * se, diff + z_crit * se
        test = "two-proportion z-test"
    else:
        result = stats.ttest_ind_from_stats(
            m1, math.sqrt(v1), n1, m0, math.sqrt(v0), n0, equal_var=False
        )
        statistic, p_value = float(result.statistic), float(result.pvalue)
        se = math.sqrt(v1 / n1 + v0 / n0)
        dof = (v1 / n1 + v0 / n0) ** 2 / ((v1 / n1) ** 2 / (n1 - 1) + (v0 / n0) ** 2 / (n0 - 1))
        t_crit = stats.t.ppf(1 - alpha / 2, dof)
        low, high = diff - t_crit * se, diff + t_crit * se
        test = "Welch's t-test"
    relative = diff / m0 if m0 else None
    return {
        "test": test,
        "statistic": float(statistic),
        "p_value": float(p_value),
        "absolute_lift": diff,
        "ci_low": low,
        "ci_high": high,
        "relative_lift": relative,
        "relative_ci_low": low / m0 if m0 else None,
        "relative_ci_high": high / m0 if m0 else None,
        "significant": bool(p_value < alpha),
    }


def sample_ratio_check(spec: ExperimentSpec, groups: dict[str, dict]) -> dict:
    # every variant with a weight counts, also one with no units in the data (that is a mismatch)
    names = list(dict.fromkeys([*(spec.weights or {}), *groups]))
    observed = [int(groups[v]["units"]) if v in groups else 0 for v in names]
    total = sum(observed)
    weights = spec.weights or {v: 1 / len(names) for v in names}
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


def decide(spec: ExperimentSpec, variants: list[dict], srm: dict, primary: str) -> str:
    if srm.get("mismatch"):
        return (
            "stop: sample ratio mismatch; the assignment or logging is broken, "
            "fix it before reading results"
        )
    treatments = [v for v in variants if not v["control"]]
    best = min(treatments, key=lambda v: _p_or_one(v["metrics"][primary]["p_value"]))
    m = best["metrics"][primary]
    if m["p_value"] is None:
        return f"no detectable difference yet in {primary}: {m.get('note', 'too little data')}"
    confidence = int(round((1 - spec.alpha) * 100))
    if m["significant"] and m["relative_lift"] is not None:
        verdict = "wins" if m["absolute_lift"] > 0 else "loses"
        return (
            f"{best['variant']} {verdict}: {primary} {m['relative_lift']:+.1%} "
            f"({confidence}% CI {m['relative_ci_low']:+.1%} to {m['relative_ci_high']:+.1%})"
        )
    needed = _more_units_needed(m, spec.alpha)
    more = (
        f"; about {needed:,} more units per variant needed to detect the observed lift"
        if needed
        else ""
    )
    return f"no detectable difference yet in {primary}{more}"


def _p_or_one(p: float | None) -> float:
    return 1.0 if p is None or math.isnan(p) else p


def _more_units_needed(m: dict, alpha: float, power: float = 0.8) -> int | None:
    diff = abs(m["absolute_lift"])
    if diff == 0 or m["ci_high"] == m["ci_low"]:
        return None
    z_crit = stats.norm.ppf(1 - alpha / 2)
    se_now = (m["ci_high"] - m["ci_low"]) / (2 * z_crit)
    n_now = m["n"]
    se_needed = diff / (z_crit + stats.norm.ppf(power))
    n_needed = n_now * (se_now / se_needed) ** 2
    return max(0, int(math.ceil(n_needed - n_now)))
