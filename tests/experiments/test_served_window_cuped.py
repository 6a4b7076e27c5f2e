"""Served experiments: outcomes cut at the experiment's `end`, and CUPED with each metric's own
pre-period value as the covariate, computed in the same DuckDB pass. Checked against a direct
pandas computation, statsmodels OLS and SciPy on fixed data, and by simulation (A/A false
positives near alpha, narrower intervals when the covariate correlates)."""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import statsmodels.api as sm
import yaml
from scipy import stats
from statsmodels.stats.proportion import proportions_ztest

from cycleml import Project
from cycleml.data import SourceSet
from cycleml.experiments import analyze, compare, power_at, write_experiment_report
from cycleml.experiments._exposures import record_exposures
from cycleml.experiments._served import served_stats
from cycleml.spec import ExperimentSpec, parse_spec

END = "2026-06-10"  # inclusive: events before 2026-06-11 00:00 UTC count
MIDNIGHT_AFTER_END = datetime(2026, 6, 11)


def _experiment(**extra) -> dict:
    return {
        "problem": "churn",
        "variants": {"control": {"weight": 0.5}, "treatment": {"weight": 0.5, "model": 1}},
        "control": "control",
        "events": "exp_events",
        "metrics": {
            "converted": {"type": "conversion", "event": "purchase", "days": 7},
            "revenue": {"type": "mean", "event": "purchase", "value": "value"},
            "ctr": {"type": "ratio", "event": "click", "denominator": "impression"},
        },
        "primary": "converted",
        "sequential": False,
    } | extra


def _groups(root: Path, exp: dict, exposed: pd.DataFrame, events: pd.DataFrame) -> dict:
    """``served_stats`` over ``events`` written as a parquet source (real DuckDB)."""
    root.mkdir(parents=True, exist_ok=True)
    events.to_parquet(root / "events.parquet", index=False)
    spec = parse_spec(
        yaml.safe_dump(
            {
                "spec_version": 1,
                "name": "t",
                "sources": {
                    "exp_events": {
                        "path": "events.parquet",
                        "entity": "user_id",
                        "time": "ts",
                        "collect": True,
                    }
                },
            }
        )
    )
    with SourceSet(spec, root) as sources:
        return served_stats(
            sources, ExperimentSpec.model_validate(exp), "e", pa.Table.from_pandas(exposed)
        )


def _events(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["user_id", "ts", "event_type", "value"])


def _boundary_data() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Events on both sides of midnight after `end` and of the 7-day conversion window."""
    t0 = datetime(2026, 6, 8)
    exposed = pd.DataFrame(
        {
            "unit": ["a", "b", "c", "d", "e", "f"],
            "variant": ["control", "control", "control", "treatment", "treatment", "treatment"],
            "first_exposed_at": [t0, t0, t0, datetime(2026, 6, 9), t0, t0],
        }
    )
    last = MIDNIGHT_AFTER_END - timedelta(microseconds=1)
    events = _events(
        [
            ("a", last, "purchase", 10.0),  # the last instant of `end`: counts
            ("b", MIDNIGHT_AFTER_END, "purchase", 20.0),  # midnight after `end`: never
            ("c", last, "impression", 0.0),
            ("c", last, "click", 0.0),
            ("c", MIDNIGHT_AFTER_END, "impression", 0.0),  # after `end`: not in the ratio
            ("c", MIDNIGHT_AFTER_END + timedelta(days=1), "click", 0.0),
            # d: within 7 days of its exposure (June 9) but after `end`: no conversion
            ("d", datetime(2026, 6, 12), "purchase", 40.0),
            ("e", datetime(2026, 6, 10, 12), "purchase", 5.0),
            ("e", datetime(2026, 6, 11, 0, 0, 1), "purchase", 7.0),
            ("f", datetime(2026, 6, 9), "impression", 0.0),
        ]
    )
    return exposed, events


def test_outcomes_are_cut_at_midnight_after_end(tmp_path: Path) -> None:
    exposed, events = _boundary_data()
    g = _groups(tmp_path / "cut", _experiment(end=END), exposed, events)
    c, t = g["control"], g["treatment"]
    assert float(c["converted__sum"]) == 1.0  # a only (b's purchase is at midnight after end)
    assert float(c["revenue__sum"]) == pytest.approx(10.0)
    assert float(t["converted__sum"]) == 1.0  # e only; d converted after `end`
    assert float(t["revenue__sum"]) == pytest.approx(5.0)
    assert float(c["ctr__sum"]) == 1.0 and float(c["ctr__den_sum"]) == 1.0
    assert int(c["with_outcome"]) == 2  # a and c; b's only event is after end
    assert int(t["with_outcome"]) == 2  # e and f; d's only event is after end

    # the same events without `end`: counted until the analysis runs (the behaviour before)
    g = _groups(tmp_path / "open", _experiment(), exposed, events)
    c, t = g["control"], g["treatment"]
    assert float(c["converted__sum"]) == 2.0  # a and b
    assert float(c["revenue__sum"]) == pytest.approx(30.0)
    assert float(t["converted__sum"]) == 2.0  # d (3 days after its exposure) and e
    assert float(t["revenue__sum"]) == pytest.approx(52.0)
    assert float(c["ctr__sum"]) == 2.0 and float(c["ctr__den_sum"]) == 2.0
    assert int(c["with_outcome"]) == 3 and int(t["with_outcome"]) == 3


# -- CUPED -----------------------------------------------------------------------------------

T0 = datetime(2026, 6, 1)


def _cuped_data(n: int = 800, seed: int = 3, lift: float = 0.0):
    """Units with an activity level driving both their pre-period and their outcomes, events
    before the pre-period (never counted), before the exposure, after it and after `end`."""
    rng = np.random.default_rng(seed)
    units = [f"u{i:04d}" for i in range(n)]
    variants = np.where(rng.random(n) < 0.5, "control", "treatment")
    exposed_at = [T0 + timedelta(hours=float(h)) for h in rng.uniform(0, 96, n)]
    activity = rng.gamma(1.5, 1.0, n)
    rows = []
    for unit, variant, t0, a in zip(units, variants, exposed_at, activity, strict=True):
        for _ in range(rng.poisson(a)):  # the 14 days before the exposure: the covariate
            rows.append((unit, t0 - timedelta(days=float(rng.uniform(0.01, 13.9))), "purchase"))
        for _ in range(rng.poisson(a)):  # 20-60 days before: outside the pre-period
            rows.append((unit, t0 - timedelta(days=float(rng.uniform(20, 60))), "purchase"))
        boost = lift if variant == "treatment" else 0.0
        for _ in range(rng.poisson(a * (1 + boost))):  # after the exposure, up to past `end`
            rows.append((unit, t0 + timedelta(days=float(rng.uniform(0, 14))), "purchase"))
        for _ in range(rng.poisson(3)):
            at = t0 + timedelta(days=float(rng.uniform(-5, 5)))
            rows.append((unit, at, "impression"))
            if rng.random() < 0.1:
                rows.append((unit, at + timedelta(seconds=3), "click"))
    events = pd.DataFrame(rows, columns=["user_id", "ts", "event_type"])
    events["value"] = np.round(rng.gamma(2.0, 15.0, len(events)), 2)
    exposed = pd.DataFrame({"unit": units, "variant": variants, "first_exposed_at": exposed_at})
    return exposed, events


def _direct(exposed: pd.DataFrame, events: pd.DataFrame, end: datetime, days: float = 14):
    """Per unit, computed in pandas: outcomes (from the exposure to `end`, conversion within 7
    days) and the same quantities over the `days` before the exposure."""
    j = events.merge(exposed, left_on="user_id", right_on="unit")
    buy = j[j.event_type == "purchase"]
    post = buy[(buy.ts >= buy.first_exposed_at) & (buy.ts < end)]
    pre = buy[
        (buy.ts < buy.first_exposed_at) & (buy.ts >= buy.first_exposed_at - pd.Timedelta(days=days))
    ]
    per = exposed.set_index("unit")[["variant"]].copy()

    def by_unit(frame: pd.DataFrame, how: str) -> pd.Series:
        got = frame.groupby("unit").value.agg(how) if how == "sum" else frame.groupby("unit").size()
        return got.reindex(per.index).fillna(0.0).astype(float)

    week = post[post.ts < post.first_exposed_at + pd.Timedelta(days=7)]
    per["converted"] = (by_unit(week, "size") > 0).astype(float)
    per["converted_pre"] = (by_unit(pre, "size") > 0).astype(float)
    per["revenue"] = by_unit(post, "sum")
    per["revenue_pre"] = by_unit(pre, "sum")
    after = (j.ts >= j.first_exposed_at) & (j.ts < end)
    before = (j.ts < j.first_exposed_at) & (j.ts >= j.first_exposed_at - pd.Timedelta(days=days))
    for kind in ("click", "impression"):
        per[kind] = by_unit(j[after & (j.event_type == kind)], "size")
        per[f"{kind}_pre"] = by_unit(j[before & (j.event_type == kind)], "size")
    return per


@pytest.fixture(scope="module")
def cuped_case(tmp_path_factory):
    exposed, events = _cuped_data()
    exp = _experiment(end="2026-06-09", cuped={"days": 14})
    groups = _groups(tmp_path_factory.mktemp("cuped"), exp, exposed, events)
    result = analyze(ExperimentSpec.model_validate(exp), "e", groups)
    return result, _direct(exposed, events, end=datetime(2026, 6, 10))


def test_cuped_matches_ols_and_a_hand_computation(cuped_case) -> None:
    result, per = cuped_case
    assert result["cuped"] == {"days": 14.0, "metrics": ["converted", "revenue", "ctr"]}
    treat = next(v for v in result["variants"] if not v["control"])["metrics"]
    is_t = (per.variant == "treatment").to_numpy()
    for metric in ("revenue", "converted"):
        y, c = per[metric].to_numpy(), per[f"{metric}_pre"].to_numpy()
        got = treat[metric]
        # the covariate's and the treatment's coefficients of OLS y ~ 1 + treatment + c
        ols = sm.OLS(y, sm.add_constant(np.column_stack([is_t, c]).astype(float))).fit()
        assert got["cuped"]["theta"] == pytest.approx(ols.params[2], rel=1e-9)
        assert got["absolute_lift"] == pytest.approx(ols.params[1], rel=1e-9, abs=1e-12)
        # by hand: each unit adjusted, then the arms' means and variances
        adj = y - ols.params[2] * (c - c.mean())
        a0, a1 = adj[~is_t], adj[is_t]
        se = np.sqrt(a0.var(ddof=1) / len(a0) + a1.var(ddof=1) / len(a1))
        assert got["se"] == pytest.approx(se, rel=1e-9)
        if metric == "revenue":
            welch = stats.ttest_ind(a1, a0, equal_var=False)
            assert got["test"] == "Welch's t-test with CUPED"
            assert got["statistic"] == pytest.approx(welch.statistic, rel=1e-9)
            assert got["p_value"] == pytest.approx(welch.pvalue, rel=1e-9)
            plain = stats.ttest_ind(y[is_t], y[~is_t], equal_var=False)
            assert got["cuped"]["unadjusted"]["statistic"] == pytest.approx(plain.statistic, 1e-9)
            assert got["cuped"]["unadjusted"]["p_value"] == pytest.approx(plain.pvalue, rel=1e-9)
            assert got["cuped"]["unadjusted"]["test"] == "Welch's t-test"
        else:
            z = (a1.mean() - a0.mean()) / se
            assert got["test"] == "z-test with CUPED"
            assert got["statistic"] == pytest.approx(z, rel=1e-9)
            assert got["p_value"] == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-9)
            z_plain, p_plain = proportions_ztest(
                [y[is_t].sum(), y[~is_t].sum()], [is_t.sum(), (~is_t).sum()]
            )
            assert got["cuped"]["unadjusted"]["statistic"] == pytest.approx(z_plain, rel=1e-9)
            assert got["cuped"]["unadjusted"]["p_value"] == pytest.approx(p_plain, rel=1e-9)
        assert got["cuped"]["unadjusted_lift"] == pytest.approx(
            y[is_t].mean() - y[~is_t].mean(), rel=1e-9, abs=1e-12
        )
        assert got["cuped"]["covariate_means"]["variant"] == pytest.approx(c[is_t].mean(), 1e-12)
        unadjusted_var = y[is_t].var(ddof=1) / is_t.sum() + y[~is_t].var(ddof=1) / (~is_t).sum()
        assert got["cuped"]["variance_reduction"] == pytest.approx(
            1 - se**2 / unadjusted_var, rel=1e-9
        )
    assert treat["revenue"]["cuped"]["variance_reduction"] > 0.05  # the covariate correlates
    _check_ratio_cuped(treat["ctr"], per)


def _check_ratio_cuped(got: dict, per: pd.DataFrame) -> None:
    """The ratio's CUPED by hand: each arm's per-unit values linearised (delta method), theta
    from the arms' estimator variances, the adjusted difference and its standard error."""
    arms = []
    for variant in ("control", "treatment"):
        a = per[per.variant == variant]
        x, y = a.click.to_numpy(), a.impression.to_numpy()
        c, d = a.click_pre.to_numpy(), a.impression_pre.to_numpy()
        r, p = x.sum() / y.sum(), c.sum() / d.sum()
        u, v = (x - r * y) / y.mean(), (c - p * d) / d.mean()
        cov = np.cov(u, v, ddof=1)
        arms.append((len(a), r, p, cov[0, 0], cov[1, 1], cov[0, 1], c.sum(), d.sum()))
    theta = sum(cuv / n for n, *_, cuv, _, _ in arms) / sum(vv / n for n, *_, vv, _, _, _ in arms)
    p_all = (arms[0][6] + arms[1][6]) / (arms[0][7] + arms[1][7])
    adj = [r - theta * (p - p_all) for _, r, p, *_ in arms]
    var = [(vu + theta**2 * vv - 2 * theta * cuv) / n for n, _, _, vu, vv, cuv, _, _ in arms]
    assert got["test"] == "delta method z-test (ratio, unit as cluster) with CUPED"
    assert got["cuped"]["theta"] == pytest.approx(theta, rel=1e-9)
    assert got["absolute_lift"] == pytest.approx(adj[1] - adj[0], rel=1e-9, abs=1e-12)
    assert got["se"] == pytest.approx(np.sqrt(sum(var)), rel=1e-9)
    z = (adj[1] - adj[0]) / np.sqrt(sum(var))
    assert got["p_value"] == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-9)
    plain_var = sum(vu / n for n, _, _, vu, *_ in arms)
    assert got["cuped"]["unadjusted"]["se"] == pytest.approx(np.sqrt(plain_var), rel=1e-9)
    assert got["cuped"]["unadjusted_lift"] == pytest.approx(arms[1][1] - arms[0][1], rel=1e-9)
    assert got["cuped"]["variance_reduction"] == pytest.approx(1 - sum(var) / plain_var, 1e-9)
    assert got["cuped"]["covariate_means"]["control"] == pytest.approx(arms[0][2], rel=1e-12)


def test_cuped_can_be_left_off_for_one_metric(tmp_path: Path) -> None:
    exposed, events = _cuped_data(n=200, seed=9)
    metrics = _experiment()["metrics"]
    metrics["revenue"] = metrics["revenue"] | {"cuped": False}
    exp = _experiment(cuped=True, metrics=metrics)
    assert ExperimentSpec.model_validate(exp).cuped.days == 14  # `cuped: true`: 14 days
    groups = _groups(tmp_path, exp, exposed, events)
    assert "converted__c_sum" in groups["control"] and "revenue__c_sum" not in groups["control"]
    result = analyze(ExperimentSpec.model_validate(exp), "e", groups)
    treat = next(v for v in result["variants"] if not v["control"])["metrics"]
    assert treat["revenue"]["cuped"] is None and treat["revenue"]["test"] == "Welch's t-test"
    assert treat["converted"]["cuped"]["theta"] != 0


def test_the_pre_period_never_leaks_into_the_outcomes(tmp_path: Path) -> None:
    exposed, events = _cuped_data(n=300, seed=13)
    plain = _groups(tmp_path / "plain", _experiment(end="2026-06-08"), exposed, events)
    cuped = _groups(
        tmp_path / "cuped", _experiment(end="2026-06-08", cuped={"days": 30}), exposed, events
    )
    for variant, g in plain.items():
        with_covariates = cuped[variant]
        for key, value in g.items():  # ratio, counts and units with an outcome too
            assert with_covariates[key] == (
                value if isinstance(value, str) else pytest.approx(float(value), rel=1e-12)
            ), key
        assert float(with_covariates["revenue__c_sum"]) > 0
        pre = {f"{m}__{s}" for m in ("converted", "revenue", "ctr") for s in ("c_sum", "c_var")}
        pre |= {f"{m}__xc_cov" for m in ("converted", "revenue", "ctr")}
        pre |= {f"ctr__{s}" for s in ("d_sum", "d_var", "xd_cov", "yc_cov", "yd_cov", "cd_cov")}
        assert set(with_covariates) - set(g) == pre


def test_cuped_spec_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="days"):
        ExperimentSpec.model_validate(_experiment(cuped={"days": 0}))
    over_source = {
        "source": "s",
        "unit": "u",
        "variant": "v",
        "control": "a",
        "metrics": {"m": {"type": "mean", "column": "x"}},
    }
    with pytest.raises(ValueError, match="`cuped` belong to served experiments"):
        ExperimentSpec.model_validate(over_source | {"cuped": True})
    bad_metric = {"m": {"type": "mean", "column": "x", "cuped": True}}
    with pytest.raises(ValueError, match="name the pre-period column in `covariate:`"):
        ExperimentSpec.model_validate(over_source | {"metrics": bad_metric})
    assert ExperimentSpec.model_validate(_experiment(cuped=False)).cuped is None


# -- simulation ------------------------------------------------------------------------------


def _arm_groups(y: np.ndarray, c: np.ndarray, metric: str) -> dict:
    """One arm's sufficient statistics, named as the SQL names them."""
    return {
        "units": len(y),
        f"{metric}__n": len(y),
        f"{metric}__sum": y.sum(),
        f"{metric}__var": y.var(ddof=1),
        f"{metric}__c_sum": c.sum(),
        f"{metric}__c_var": c.var(ddof=1),
        f"{metric}__xc_cov": np.cov(y, c, ddof=1)[0, 1],
    }


def _simulate(runs: int, n: int, rho_source: float, lift: float, kind: str, seed: int):
    """``runs`` experiments of ``n`` units per arm; the outcome depends on a latent activity the
    pre-period also depends on (``rho_source`` 0: an unrelated covariate)."""
    rng = np.random.default_rng(seed)
    rejected, rejected_plain, widths, widths_plain = 0, 0, [], []
    for _ in range(runs):
        arms = []
        for treated in (False, True):
            latent = rng.normal(size=n)
            c = rho_source * latent + np.sqrt(1 - rho_source**2) * rng.normal(size=n)
            noise = rng.normal(size=n)
            if kind == "mean":
                y = 10 + 3 * (0.8 * latent + 0.6 * noise) + (lift if treated else 0.0)
            else:
                p = stats.norm.cdf(-1.0 + 0.9 * latent + (lift if treated else 0.0))
                y = (rng.random(n) < p).astype(float)
                c = (c > 0.8).astype(float)
            arms.append(_arm_groups(y, c, "m"))
        got = compare(
            "proportion" if kind == "conversion" else "mean", *arms, "m", 0.05, cuped=True
        )
        rejected += got["p_value"] < 0.05
        rejected_plain += got["cuped"]["unadjusted"]["p_value"] < 0.05
        widths.append(got["ci_high"] - got["ci_low"])
        plain = got["cuped"]["unadjusted"]
        widths_plain.append(plain["ci_high"] - plain["ci_low"])
    return rejected / runs, rejected_plain / runs, np.mean(widths) / np.mean(widths_plain)


@pytest.mark.parametrize("kind", ["mean", "conversion"])
def test_cuped_keeps_the_false_positive_rate_of_an_aa_test(kind: str) -> None:
    rate, rate_plain, width = _simulate(1000, 400, 0.8, 0.0, kind, seed=11)
    noise = 3 * np.sqrt(0.05 * 0.95 / 1000)  # three binomial standard deviations
    assert abs(rate - 0.05) < noise, rate
    assert abs(rate_plain - 0.05) < noise, rate_plain
    assert width < (0.8 if kind == "mean" else 0.97)  # and the interval is narrower


def _ratio_arm(rng, n: int) -> dict:
    """One arm of a click-through rate: each unit has its own rate, seen before and after."""
    rate = stats.norm.cdf(-1.3 + 0.9 * rng.normal(size=n))
    views = np.exp(0.5 * rng.normal(size=n))
    y, d = rng.poisson(4 * views), rng.poisson(4 * views)
    x, c = rng.binomial(y, rate), rng.binomial(d, rate)
    cov = np.cov(np.vstack([x, y, c, d]).astype(float), ddof=1)
    names = "xycd"
    g = {"units": n, "m__n": n, "m__sum": x.sum(), "m__den_sum": y.sum()}
    g |= {"m__c_sum": c.sum(), "m__d_sum": d.sum(), "m__var": cov[0, 0], "m__den_var": cov[1, 1]}
    g |= {"m__c_var": cov[2, 2], "m__d_var": cov[3, 3]}
    for i, j in ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)):
        g[f"m__{names[i]}{names[j]}_cov"] = cov[i, j]
    return g


def test_ratio_cuped_keeps_the_false_positive_rate_and_narrows_the_interval() -> None:
    rng = np.random.default_rng(17)
    runs, rejected, rejected_plain, widths = 1000, 0, 0, []
    for _ in range(runs):
        got = compare("ratio", _ratio_arm(rng, 400), _ratio_arm(rng, 400), "m", 0.05, cuped=True)
        assert got["test"] == "delta method z-test (ratio, unit as cluster) with CUPED"
        plain = got["cuped"]["unadjusted"]
        rejected += got["p_value"] < 0.05
        rejected_plain += plain["p_value"] < 0.05
        widths.append((got["ci_high"] - got["ci_low"]) / (plain["ci_high"] - plain["ci_low"]))
    noise = 3 * np.sqrt(0.05 * 0.95 / runs)
    assert abs(rejected / runs - 0.05) < noise, rejected
    assert abs(rejected_plain / runs - 0.05) < noise, rejected_plain
    assert np.mean(widths) < 0.87, np.mean(
        widths
    )  # the units' own past rates explain part of the noise


def test_cuped_narrows_the_interval_as_the_covariate_correlates() -> None:
    _, _, width_strong = _simulate(200, 400, 0.9, 0.0, "mean", seed=2)
    _, _, width_none = _simulate(200, 400, 0.0, 0.0, "mean", seed=2)
    # outcome = 0.8 latent + 0.6 noise: corr(y, c) = 0.8 rho, width ratio sqrt(1 - corr^2)
    assert width_strong == pytest.approx(np.sqrt(1 - (0.8 * 0.9) ** 2), abs=0.03)
    assert width_none == pytest.approx(1.0, abs=0.01)  # an unrelated covariate costs nothing


def test_cuped_detects_a_real_lift_at_the_rate_the_power_calculator_predicts() -> None:
    power, power_plain, _ = _simulate(300, 400, 0.9, 0.5, "mean", seed=4)
    # the outcome's standard deviation is 3; CUPED leaves 3 sqrt(1 - corr^2), corr = 0.8 * 0.9
    expected_plain = power_at("mean", 10.0, 0.5, 400, 1.0, 0.05, std=3.0)
    expected = power_at("mean", 10.0, 0.5, 400, 1.0, 0.05, std=3.0 * np.sqrt(1 - 0.72**2))
    assert expected > expected_plain + 0.2  # the design: CUPED makes a real difference
    for got, want in ((power, expected), (power_plain, expected_plain)):
        assert abs(got - want) < 3 * np.sqrt(want * (1 - want) / 300), (got, want)


# -- end to end: Project, JSON, HTML ---------------------------------------------------------


def test_a_served_cuped_analysis_reports_both_figures(demo_project: Path, tmp_path: Path) -> None:
    exposed, events = _cuped_data(n=400, seed=21)
    path = demo_project / "cycleml.yaml"
    spec = yaml.safe_load(path.read_text())
    spec["sources"]["exp_events"] = {
        "path": "data/exp_events.parquet",
        "entity": "user_id",
        "time": "ts",
        "collect": True,
    }
    spec["experiments"] = {"ranker": _experiment(end="2026-06-09", cuped={"days": 14})}
    spec["experiments"]["ranker"]["variants"]["treatment"]["model"] = "production"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    buffer = io.BytesIO()
    events.to_parquet(buffer, index=False)
    (demo_project / "data" / "exp_events.parquet").write_bytes(buffer.getvalue())
    project = Project(demo_project)
    try:
        project.store.open()
        record_exposures(
            project.store,
            [
                {
                    "experiment": "ranker",
                    "unit": r.unit,
                    "variant": r.variant,
                    "model_version_id": None,
                    "request_id": None,
                    "first_exposed_at": r.first_exposed_at.to_pydatetime(),
                }
                for r in exposed.itertuples()
            ],
        )
        result = project.analyze_experiment("ranker")
    finally:
        project.close()
    per = _direct(exposed, events, end=datetime(2026, 6, 10))
    by = {v["variant"]: v for v in result["variants"]}
    revenue = by["treatment"]["metrics"]["revenue"]
    treat, control = per[per.variant == "treatment"], per[per.variant == "control"]
    assert revenue["cuped"]["unadjusted_lift"] == pytest.approx(
        treat.revenue.mean() - control.revenue.mean(), rel=1e-9
    )
    assert revenue["cuped"]["unadjusted"]["se"] > revenue["se"]
    page = write_experiment_report(tmp_path / "r.html", result).read_text()
    assert "<h2>CUPED</h2>" in page
    assert f"{revenue['absolute_lift']:.4g}" in page
    assert f"{revenue['cuped']['unadjusted_lift']:.4g}" in page
    assert "over the 14 days before each unit" in page

    from typer.testing import CliRunner

    from cycleml.cli import app

    html = tmp_path / "cli.html"
    said = CliRunner().invoke(
        app,
        ["experiment", "analyze", "ranker", "-p", str(demo_project), "--json", "--html", str(html)],
    )
    assert said.exit_code == 0, said.stderr
    printed = json.loads(said.stdout)
    ctr = next(v for v in printed["variants"] if not v["control"])["metrics"]["ctr"]
    assert ctr["test"] == "delta method z-test (ratio, unit as cluster) with CUPED"
    assert set(ctr["cuped"]["unadjusted"]) >= {"absolute_lift", "ci_low", "ci_high", "p_value"}
    assert printed["cuped"] == {"days": 14.0, "metrics": ["converted", "revenue", "ctr"]}
    assert "<h2>CUPED</h2>" in html.read_text()
    table = CliRunner().invoke(app, ["experiment", "analyze", "ranker", "-p", str(demo_project)])
    assert table.exit_code == 0, table.stderr
    text = " ".join(table.stdout.split())  # Rich wraps long lines at the terminal width
    line = text[text.index("CUPED treatment revenue") :].split("CUPED", 2)[1]
    assert "variance reduced by" in line and "unadjusted lift" in line
