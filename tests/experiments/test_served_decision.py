"""The decision when the primary metric shows no detectable difference: "about N more units
needed" for a sensible N, and, when N would be absurd (over 100 times the units so far), that
the difference is too small to matter at this traffic, with the minimum detectable effect."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from cycleml.experiments import analyze, decide, detectable_effect, more_units_needed, plan
from cycleml.experiments._analysis import TOO_SMALL_FACTOR
from cycleml.spec import ExperimentSpec

SERVED = {
    "problem": "churn",
    "variants": {"control": {"weight": 0.5}, "treatment": {"weight": 0.5, "model": 1}},
    "control": "control",
    "events": "exp_events",
    "metrics": {"converted": {"type": "conversion", "event": "purchase", "days": 7}},
}


def _groups(n: int, conversions: tuple[int, int]) -> dict:
    """Per-variant sufficient statistics of a conversion metric, as the SQL returns them."""
    out = {}
    for variant, k in zip(("control", "treatment"), conversions, strict=True):
        p = k / n
        out[variant] = {
            "units": n,
            "n_rows": n,
            "with_outcome": k,
            "converted__n": n,
            "converted__sum": float(k),
            "converted__var": p * (1 - p) * n / (n - 1),
        }
    return out


@pytest.mark.parametrize("sequential", [True, False])
def test_a_tiny_lift_at_ten_million_units_reads_too_small_with_the_mde(sequential: bool) -> None:
    exp = ExperimentSpec.model_validate(SERVED | {"sequential": sequential})
    n = 5_000_000  # per variant: 10M units
    result = analyze(exp, "e", _groups(n, (500_000, 500_150)))
    m = result["variants"][1]["metrics"]["converted"]
    needed = more_units_needed(m, exp.alpha, sequential, exp.sequential_tuning)
    assert needed is None or needed > TOO_SMALL_FACTOR * 2 * n  # the absurd case
    mde = detectable_effect(
        m["se"], 2 * n, exp.alpha, 0.8, sequential=sequential, tuning=exp.sequential_tuning
    )
    assert m["mde"]["absolute"] == pytest.approx(mde, rel=1e-12)
    assert m["mde"]["relative"] == pytest.approx(mde / 0.1, rel=1e-12)
    decision = result["decision"]
    assert decision.startswith(
        "no detectable difference in converted: the observed difference (+0.03%) is too small "
        "to matter at this traffic (detecting it would take over 100 times the 10,000,000 "
        "units so far); the minimum detectable effect at 10,000,000 units is "
        f"{mde / 0.1:.2%} relative ({mde:.3g} absolute) with 80% power"
    ), decision
    assert "more units needed" not in decision
    if not sequential:
        # the fixed-horizon MDE is the power calculator's for 10M units at a 10% baseline
        assert mde == pytest.approx(plan(baseline=0.1, units=2 * n)["mde"], rel=2e-3)
    else:  # reading the always-valid interval needs a larger effect
        fixed = detectable_effect(m["se"], 2 * n, exp.alpha, 0.8)
        assert mde > fixed


def test_a_sensible_number_of_units_is_still_said() -> None:
    exp = ExperimentSpec.model_validate(SERVED | {"sequential": False})
    result = analyze(exp, "e", _groups(2000, (200, 230)))
    m = result["variants"][1]["metrics"]["converted"]
    needed = more_units_needed(m, exp.alpha)
    assert 0 < needed < TOO_SMALL_FACTOR * 4000
    assert result["decision"] == (
        f"no detectable difference yet in converted; about {needed:,} more units needed "
        "(all variants) to detect the observed lift with 80% power"
    )


def _reading(lift: float, se: float, n: int) -> list[dict]:
    metrics = {
        "p_value": float(2 * stats.norm.sf(lift / se)),
        "significant": False,
        "absolute_lift": lift,
        "se": se,
        "units_total": n,
        "relative_lift": lift / 0.1,
        "relative_ci_low": None,
        "relative_ci_high": None,
        "sequential": None,
        "mde": {"absolute": 2.8 * se, "relative": 28 * se, "power": 0.8},
    }
    return [
        {"variant": "control", "control": True, "metrics": {"converted": {"value": 0.1}}},
        {"variant": "treatment", "control": False, "metrics": {"converted": metrics}},
    ]


def test_the_switch_is_at_one_hundred_times_the_units_so_far() -> None:
    exp = ExperimentSpec.model_validate(SERVED | {"sequential": False})
    n, se = 10_000, 0.004
    z = stats.norm.isf(0.025) + stats.norm.ppf(0.8)
    # needed = n ((z se / lift)^2 - 1): 99.5 n, then 100.5 n
    below, above = z * se / math.sqrt(100.5), z * se / math.sqrt(101.5)
    said = decide(exp, _reading(below, se, n), {"mismatch": False}, "converted")
    assert said.startswith("no detectable difference yet in converted; about 995,00")
    said = decide(exp, _reading(above, se, n), {"mismatch": False}, "converted")
    assert said.startswith("no detectable difference in converted: the observed difference")
    assert (
        "the minimum detectable effect at 10,000 units is 11.20% relative (0.0112 absolute) "
        "with 80% power" in said
    )
