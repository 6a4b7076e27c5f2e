"""`Project.analyze_experiment` over a Parquet source: the stored analysis and its bad inputs."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from scipy import stats
from statsmodels.stats.proportion import proportions_ztest

from cycleml import Project
from cycleml.errors import DataError, NotFoundError
from cycleml.experiments import assign
from cycleml.store.tables import experiment_analyses

SPEC = """\
spec_version: 1
name: trial_shop
sources:
  trial: {{path: data/trial.parquet, entity: user_id}}
experiments:
  checkout:
    source: trial
    unit: user_id
    variant: variant
    control: {control}
    weights: {{{control}: 0.5, treatment: 0.5}}
    metrics:
      converted: {{type: proportion, column: {outcome}}}
      revenue: {{type: mean, column: revenue}}
    primary: converted
"""


def _trial(n: int = 4000, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    users = [f"u{i:05d}" for i in range(n)]
    variant = [assign("checkout", u, {"control": 0.5, "treatment": 0.5}) for u in users]
    treated = np.array([v == "treatment" for v in variant])
    converted = (rng.random(n) < np.where(treated, 0.16, 0.10)).astype(int)
    revenue = np.round(converted * rng.gamma(2.0, 25.0, n), 2)
    return pd.DataFrame(
        {"user_id": users, "variant": variant, "converted": converted, "revenue": revenue}
    )


def _parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def _project(write_project, frame: pd.DataFrame, **fmt) -> Project:
    values = {"control": "control", "outcome": "converted", **fmt}
    root = write_project(SPEC.format(**values), {"data/trial.parquet": _parquet(frame)})
    return Project(root)


def _stored(project: Project) -> list[dict]:
    with project.store.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(experiment_analyses)).all()]


def test_analyze_experiment_matches_the_data_and_is_stored(write_project) -> None:
    frame = _trial()
    project = _project(write_project, frame)
    try:
        result = project.analyze_experiment("checkout")
        by_variant = {v["variant"]: v for v in result["variants"]}
        assert set(by_variant) == {"control", "treatment"}
        control, treat = frame[frame.variant == "control"], frame[frame.variant == "treatment"]
        assert by_variant["control"]["units"] == len(control)
        assert by_variant["treatment"]["units"] == len(treat)
        assert by_variant["control"]["control"] is True
        m = by_variant["treatment"]["metrics"]["converted"]
        assert m["value"] == pytest.approx(treat.converted.mean(), abs=1e-12)
        z, p = proportions_ztest(
            [treat.converted.sum(), control.converted.sum()], [len(treat), len(control)]
        )
        assert m["statistic"] == pytest.approx(z, abs=1e-9)
        assert m["p_value"] == pytest.approx(p, rel=1e-9, abs=1e-15)
        r = by_variant["treatment"]["metrics"]["revenue"]
        welch = stats.ttest_ind(treat.revenue, control.revenue, equal_var=False)
        assert r["statistic"] == pytest.approx(welch.statistic, rel=1e-9)
        assert r["p_value"] == pytest.approx(welch.pvalue, rel=1e-9)
        srm = stats.chisquare([len(control), len(treat)])
        assert result["srm"]["p_value"] == pytest.approx(srm.pvalue, rel=1e-9)
        assert result["decision"].startswith("treatment wins: converted +")

        stored = _stored(project)
        assert len(stored) == 1
        assert stored[0]["experiment"] == "checkout"
        assert stored[0]["result"]["decision"] == result["decision"]
        assert len(stored[0]["spec_hash"]) >= 16
    finally:
        project.close()


def test_unknown_experiment_is_not_found(write_project) -> None:
    project = _project(write_project, _trial(200))
    try:
        with pytest.raises(NotFoundError, match="nope") as exc:
            project.analyze_experiment("nope")
        assert "checkout" in exc.value.hint
    finally:
        project.close()


def test_control_variant_absent_from_the_data_names_it(write_project) -> None:
    project = _project(write_project, _trial(200), control="baseline")
    try:
        with pytest.raises(DataError, match="'baseline'") as exc:
            project.analyze_experiment("checkout")
        assert "control" in exc.value.hint and "treatment" in exc.value.hint
        assert project.counts()["experiment_analyses"] == 0
    finally:
        project.close()


def test_missing_outcome_column_is_a_data_error(write_project) -> None:
    project = _project(write_project, _trial(200), outcome="purchased")
    try:
        with pytest.raises(DataError, match="purchased"):
            project.analyze_experiment("checkout")
        assert project.counts()["experiment_analyses"] == 0
    finally:
        project.close()


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda f: f.assign(variant=f.variant.where(f.index % 50 != 0, None)), "no variant"),
        (lambda f: f.assign(converted=f.converted * 3), "proportion"),
        (lambda f: f.assign(converted=f.converted.map({0: "no", 1: "yes"})), "converted"),
        (lambda f: pd.concat([f, f.head(3)]), r"3 more row\(s\) than units"),
        (
            lambda f: pd.concat([f, f[f.variant == "treatment"].head(2).assign(variant="control")]),
            r"2 unit\(s\) appear in more than one variant",
        ),
    ],
    ids=[
        "null-variant",
        "proportion-out-of-range",
        "text-outcome",
        "repeated-units",
        "unit-in-two-variants",
    ],
)
def test_bad_experiment_data_is_a_data_error(write_project, change, needle) -> None:
    project = _project(write_project, change(_trial(400)))
    try:
        with pytest.raises(DataError, match=needle):
            project.analyze_experiment("checkout")
        assert project.counts()["experiment_analyses"] == 0
    finally:
        project.close()
