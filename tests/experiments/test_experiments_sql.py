"""The SQL path: ratio and CUPED metrics, `rows: event`, bad input, the HTML report and the CLI."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cycleml import Project
from cycleml.cli import app
from cycleml.errors import DataError, SpecError
from cycleml.experiments import compare, plan
from cycleml.spec import load_spec

SPEC = """\
spec_version: 1
name: ctr_shop
sources:
  trial: {{path: data/trial.parquet, entity: user_id}}
experiments:
  ranker:
    source: trial
    unit: user_id
    variant: variant
    control: control
    weights: {{control: 0.5, treatment: 0.5}}
    rows: {rows}
    metrics:
      ctr: {{type: ratio, column: clicks, denominator: impressions}}
      revenue: {{type: mean, column: revenue, covariate: {covariate}}}
    primary: ctr
"""


def _units(n: int = 3000, seed: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    variant = np.where(rng.random(n) < 0.5, "control", "treatment")
    impressions = rng.poisson(10, n) + 1
    ctr = np.where(variant == "treatment", 0.12, 0.10)
    clicks = rng.binomial(impressions, ctr)
    pre = rng.gamma(2.0, 10.0, n)
    revenue = 0.7 * pre + rng.normal(0, 5, n) + (variant == "treatment") * 1.0
    return pd.DataFrame(
        {
            "user_id": [f"u{i:05d}" for i in range(n)],
            "variant": variant,
            "clicks": clicks,
            "impressions": impressions,
            "revenue": revenue,
            "pre_revenue": pre,
        }
    )


def _events(units: pd.DataFrame, seed: int = 8) -> pd.DataFrame:
    """Split each unit's clicks, impressions and revenue over 1-3 event rows."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in units.itertuples():
        k = int(rng.integers(1, 4))
        share = rng.dirichlet(np.ones(k))
        imp = rng.multinomial(u.impressions, share)
        clk = [min(c, i) for c, i in zip(rng.multinomial(u.clicks, share), imp, strict=True)]
        clk[-1] += u.clicks - sum(clk)
        imp[-1] = max(imp[-1], clk[-1])
        for j in range(k):
            rows.append((u.user_id, u.variant, clk[j], imp[j], u.revenue * share[j], u.pre_revenue))
    columns = ["user_id", "variant", "clicks", "impressions", "revenue", "pre_revenue"]
    return pd.DataFrame(rows, columns=columns)


def _parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def _project(write_project, frame, rows="unit", covariate="pre_revenue") -> Project:
    text = SPEC.format(rows=rows, covariate=covariate)
    return Project(write_project(text, {"data/trial.parquet": _parquet(frame)}))


def _reference(frame: pd.DataFrame, metric: str) -> dict:
    """The same comparison from per-unit arrays computed in numpy (no SQL)."""
    per_unit = frame.groupby("user_id").agg(
        variant=("variant", "first"),
        clicks=("clicks", "sum"),
        impressions=("impressions", "sum"),
        revenue=("revenue", "sum"),
        pre_revenue=("pre_revenue", "max"),
    )
    groups = {}
    for v, part in per_unit.groupby("variant"):
        x = (part.clicks if metric == "ctr" else part.revenue).to_numpy(float)
        g = {"units": len(x), "m__n": len(x), "m__sum": x.sum(), "m__var": x.var(ddof=1)}
        if metric == "ctr":
            y = part.impressions.to_numpy(float)
            g |= {"m__den_sum": y.sum(), "m__den_var": y.var(ddof=1)}
            g["m__xy_cov"] = np.cov(x, y)[0, 1]
        else:
            c = part.pre_revenue.to_numpy(float)
            g |= {"m__c_sum": c.sum(), "m__c_var": c.var(ddof=1), "m__xc_cov": np.cov(x, c)[0, 1]}
        groups[v] = g
    kind = "ratio" if metric == "ctr" else "mean"
    return compare(kind, groups["control"], groups["treatment"], "m", 0.05, cuped=kind == "mean")


@pytest.mark.parametrize("rows", ["unit", "event"])
def test_ratio_and_cuped_from_sql_equal_the_in_memory_reference(write_project, rows) -> None:
    units = _units()
    frame = units if rows == "unit" else _events(units)
    project = _project(write_project, frame, rows=rows)
    try:
        result = project.analyze_experiment("ranker")
    finally:
        project.close()
    treat = next(v for v in result["variants"] if v["variant"] == "treatment")
    assert treat["units"] == int((units.variant == "treatment").sum())
    if rows == "event":
        assert treat["rows"] == int((frame.variant == "treatment").sum()) > treat["units"]
    for metric in ("ctr", "revenue"):
        got, want = treat["metrics"][metric], _reference(frame, metric)
        for key in ("absolute_lift", "se", "statistic", "p_value", "ci_low", "relative_ci_high"):
            assert got[key] == pytest.approx(want[key], rel=1e-6), (metric, key)
    t = frame[frame.variant == "treatment"]
    assert treat["metrics"]["ctr"]["value"] == pytest.approx(t.clicks.sum() / t.impressions.sum())
    assert treat["metrics"]["revenue"]["cuped"]["variance_reduction"] > 0.5
    assert result["decision"].startswith("treatment wins: ctr +")


def test_rows_unit_refuses_event_rows_and_names_rows_event(write_project) -> None:
    project = _project(write_project, _events(_units(300)))
    try:
        with pytest.raises(DataError, match=r"more row\(s\) than units") as exc:
            project.analyze_experiment("ranker")
        assert "rows: event" in exc.value.hint
    finally:
        project.close()


def test_units_in_two_variants_are_counted_in_event_mode(write_project) -> None:
    frame = _events(_units(300))
    moved = frame.user_id.isin(frame.user_id.unique()[:4]) & frame.duplicated("user_id")
    frame.loc[moved, "variant"] = np.where(
        frame.loc[moved, "variant"] == "control", "treatment", "control"
    )
    two = frame.groupby("user_id").variant.nunique().gt(1).sum()
    assert two > 0
    project = _project(write_project, frame, rows="event")
    try:
        with pytest.raises(DataError, match=rf"{two} unit\(s\) of 300 appear in more than one"):
            project.analyze_experiment("ranker")
        assert project.counts()["experiment_analyses"] == 0
    finally:
        project.close()


def test_no_units_yet_and_missing_covariate_column(write_project) -> None:
    empty = _project(write_project, _units(50).head(0))
    try:
        with pytest.raises(DataError, match="no units yet"):
            empty.analyze_experiment("ranker")
    finally:
        empty.close()
    project = _project(write_project, _units(50), covariate="pre_period_spend")
    try:
        with pytest.raises(DataError, match="pre_period_spend") as exc:
            project.analyze_experiment("ranker")
        assert "pre_revenue" in exc.value.hint
    finally:
        project.close()


def test_null_metric_values_are_counted_not_silently_dropped(write_project) -> None:
    frame = _units(400)
    frame.loc[frame.index[:7], "revenue"] = None
    missing = frame.head(7).variant.value_counts()
    project = _project(write_project, frame)
    try:
        result = project.analyze_experiment("ranker")
    finally:
        project.close()
    for v in result["variants"]:
        assert v["metrics"]["revenue"]["missing"] == missing.get(v["variant"], 0)
        assert v["metrics"]["ctr"]["missing"] == 0
    assert any("no revenue value" in n for n in result["notes"])


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ("weights: {control: 0.5, treatment: 0.6}", "must sum to 1"),
        ("weights: {ctrl: 0.5, treatment: 0.5}", "no weight for the control"),
        (
            "ctr: {type: ratio, column: clicks, denominator: impressions}",
            None,
        ),
        ("ctr: {type: ratio, column: clicks}", "needs `denominator`"),
    ],
)
def test_spec_checks_weights_and_ratio_parts(tmp_path, change, needle) -> None:
    text = SPEC.format(rows="unit", covariate="pre_revenue")
    key = change.split(":")[0]
    lines = [
        ("    " if key == "weights" else "      ") + change
        if line.strip().startswith(key + ":")
        else line
        for line in text.splitlines()
    ]
    path = tmp_path / "cycleml.yaml"
    path.write_text("\n".join(lines) + "\n")
    if needle is None:
        assert load_spec(tmp_path).experiments["ranker"].metrics["ctr"].type == "ratio"
        return
    with pytest.raises(SpecError) as exc:
        load_spec(tmp_path)
    assert needle in str(exc.value.issues)


def test_cli_analyze_writes_html_and_stores_and_plan_prints_json(write_project) -> None:
    frame = _units(2000)
    project = _project(write_project, frame)
    root = project.path
    project.close()
    html = root / "out" / "ranker.html"
    runner = CliRunner()
    result = runner.invoke(
        app, ["experiment", "analyze", "ranker", "-p", str(root), "--json", "--html", str(html)]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    page = html.read_text()
    assert data["decision"] in page and "plotly" in page.lower()
    assert "always-valid" in page and "Sample ratio check" in page
    again = Project(root)
    try:
        assert again.counts()["experiment_analyses"] == 1
    finally:
        again.close()
    table = runner.invoke(app, ["experiment", "analyze", "ranker", "-p", str(root)])
    assert table.exit_code == 0 and "decision:" in table.output and "CUPED" in table.output
    planned = runner.invoke(
        app,
        ["experiment", "plan", "--baseline", "0.1", "--mde", "0.05", "--relative", "--json"],
    )
    assert planned.exit_code == 0, planned.output
    want = plan(baseline=0.1, mde=0.05, relative=True)
    assert json.loads(planned.output)["total_units"] == want["total_units"]
    from_spec = runner.invoke(
        app,
        [
            "experiment",
            "plan",
            "-p",
            str(root),
            "--experiment",
            "ranker",
            "--baseline",
            "0.1",
            "--units",
            "20000",
        ],
    )
    assert from_spec.exit_code == 0 and "minimum detectable effect" in from_spec.output
    bad = runner.invoke(
        app, ["experiment", "plan", "--baseline", "0.1", "--mde", "0.01", "--weights", "0.7,0.7"]
    )
    assert bad.exit_code != 0 and "summing to 1" in bad.output and "Traceback" not in bad.output
