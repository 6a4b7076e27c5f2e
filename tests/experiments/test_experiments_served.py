"""Served experiments without a server: the spec's checks, assignment (sticky across processes,
uniform, independent across experiments), exposures stored once, and the analysis of exposures
joined with events, checked against a direct pandas/SciPy/statsmodels computation."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
import yaml
from scipy import stats
from statsmodels.stats.proportion import proportions_ztest

from cycleml import Project
from cycleml.errors import DataError, NotFoundError, SpecError
from cycleml.experiments._exposures import ExposureWriter, read_exposures, record_exposures
from cycleml.experiments._served import variant_of
from cycleml.spec import ExperimentSpec, parse_spec
from cycleml.store import Store
from cycleml.store.tables import exposures

T0 = datetime(2026, 6, 1)

EXPERIMENT = {
    "problem": "churn",
    "variants": {
        "control": {"weight": 0.5, "model": "baseline"},
        "treatment": {"weight": 0.5, "model": "production"},
    },
    "control": "control",
    "start": "2026-01-01",
    "events": "exp_events",
    "metrics": {
        "converted": {"type": "conversion", "event": "purchase", "days": 7},
        "revenue": {"type": "mean", "event": "purchase", "value": "value"},
        "ctr": {"type": "ratio", "event": "click", "denominator": "impression"},
        "tickets": {"type": "mean", "event": "support_ticket", "higher_is_better": False},
    },
    "primary": "converted",
    "guardrails": ["tickets"],
}


def _with_experiments(root: Path, experiments: dict, events: pd.DataFrame | None = None) -> None:
    """Add the `exp_events` source (collect: true) and ``experiments`` to a demo project."""
    path = root / "cycleml.yaml"
    spec = yaml.safe_load(path.read_text())
    spec["sources"]["exp_events"] = {
        "path": "data/exp_events.parquet",
        "entity": "user_id",
        "time": "ts",
        "collect": True,
    }
    spec["experiments"] = experiments
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    if events is None:
        events = pd.DataFrame(
            {
                "user_id": ["x"],
                "ts": [T0 - timedelta(days=400)],
                "event_type": ["purchase"],
                "value": [1.0],
            }
        )
        events = pd.concat([events.assign(event_type=t) for t in _TYPES], ignore_index=True)
    buffer = io.BytesIO()
    events.to_parquet(buffer, index=False)
    (root / "data" / "exp_events.parquet").write_bytes(buffer.getvalue())


_TYPES = ["purchase", "click", "impression", "support_ticket"]


def _simulate(n: int = 3000, seed: int = 5, ticket_lift: float = 0.0):
    """Exposures (unit, variant, first exposure) and events with known lifts; events before a
    unit's exposure are added on purpose (the analysis must ignore them)."""
    rng = np.random.default_rng(seed)
    exp = ExperimentSpec.model_validate(EXPERIMENT)
    units = [f"s{i:05d}" for i in range(n)]
    variants = [variant_of(exp, "ranker", u) for u in units]
    exposed_at = [T0 + timedelta(minutes=int(m)) for m in rng.integers(0, 3 * 24 * 60, n)]
    rows = []
    for unit, variant, t0 in zip(units, variants, exposed_at, strict=True):
        treated = variant == "treatment"

        def add(kind: str, when: datetime, value: float = 0.0, unit: str = unit) -> None:
            rows.append((unit, when, kind, value))

        if rng.random() < (0.16 if treated else 0.10):  # a purchase within 10 days
            add("purchase", t0 + timedelta(hours=float(rng.uniform(0, 240))), rng.gamma(2, 20))
        if rng.random() < 0.3:  # before the exposure: never counts
            add("purchase", t0 - timedelta(hours=float(rng.uniform(1, 200))), 500.0)
            add("click", t0 - timedelta(hours=2))
        impressions = int(rng.poisson(4))
        for _ in range(impressions):
            at = t0 + timedelta(minutes=float(rng.uniform(0, 5000)))
            add("impression", at)
            if rng.random() < (0.13 if treated else 0.10):
                add("click", at + timedelta(seconds=5))
        for _ in range(int(rng.poisson(0.3 + (ticket_lift if treated else 0.0)))):
            add("support_ticket", t0 + timedelta(hours=float(rng.uniform(0, 100))))
    events = pd.DataFrame(rows, columns=["user_id", "ts", "event_type", "value"])
    exposed = pd.DataFrame({"unit": units, "variant": variants, "first_exposed_at": exposed_at})
    return exposed, events


def _store_exposures(root: Path, exposed: pd.DataFrame, name: str = "ranker") -> None:
    project = Project(root)
    try:
        project.store.open()
        rows = [
            {
                "experiment": name,
                "unit": r.unit,
                "variant": r.variant,
                "model_version_id": None,
                "request_id": None,
                "first_exposed_at": r.first_exposed_at.to_pydatetime(),
            }
            for r in exposed.itertuples()
        ]
        record_exposures(project.store, rows)
    finally:
        project.close()


def _per_unit(exposed: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """The direct computation: each exposed unit's outcomes from its first exposure on."""
    joined = events.merge(exposed, left_on="user_id", right_on="unit")
    after = joined[joined.ts >= joined.first_exposed_at]
    week = after.ts < after.first_exposed_at + timedelta(days=7)
    purchases = after[after.event_type == "purchase"]
    per = pd.DataFrame(index=exposed.unit)
    per["variant"] = exposed.set_index("unit").variant
    per["converted"] = (
        purchases[week[purchases.index]].groupby("unit").size().reindex(per.index).fillna(0) > 0
    ).astype(float)
    per["revenue"] = purchases.groupby("unit").value.sum().reindex(per.index).fillna(0.0)
    for kind in ("click", "impression", "support_ticket"):
        per[kind] = after[after.event_type == kind].groupby("unit").size()
        per[kind] = per[kind].reindex(per.index).fillna(0.0)
    return per


@pytest.fixture
def served(demo_project: Path):
    exposed, events = _simulate()
    _with_experiments(demo_project, {"ranker": EXPERIMENT}, events)
    _store_exposures(demo_project, exposed)
    return demo_project, exposed, events


def test_analysis_of_a_served_experiment_matches_a_direct_computation(served) -> None:
    root, exposed, events = served
    project = Project(root)
    try:
        result = project.analyze_experiment("ranker")
    finally:
        project.close()
    per = _per_unit(exposed, events)
    c, t = per[per.variant == "control"], per[per.variant == "treatment"]
    by = {v["variant"]: v for v in result["variants"]}
    assert by["control"]["units"] == len(c) and by["treatment"]["units"] == len(t)
    assert by["treatment"]["exposures"] == len(t)  # never silently dropped
    outcome = (per[["revenue", "click", "impression", "support_ticket"]].sum(axis=1) > 0) | (
        per.converted > 0
    )
    assert by["control"]["units_with_outcome"] == int(outcome[per.variant == "control"].sum())

    conv = by["treatment"]["metrics"]["converted"]
    z, p = proportions_ztest([t.converted.sum(), c.converted.sum()], [len(t), len(c)])
    assert conv["statistic"] == pytest.approx(z, abs=1e-9)
    assert conv["p_value"] == pytest.approx(p, abs=1e-9)
    assert conv["absolute_lift"] == pytest.approx(t.converted.mean() - c.converted.mean(), 1e-12)
    assert conv["test"] == "two-proportion z-test"

    rev = by["treatment"]["metrics"]["revenue"]
    welch = stats.ttest_ind(t.revenue, c.revenue, equal_var=False)
    assert rev["statistic"] == pytest.approx(welch.statistic, abs=1e-9)
    assert rev["p_value"] == pytest.approx(welch.pvalue, abs=1e-9)

    ctr = by["treatment"]["metrics"]["ctr"]

    def delta(arm: pd.DataFrame) -> tuple[float, float]:
        x, y = arm.click.to_numpy(), arm.impression.to_numpy()
        ratio = x.sum() / y.sum()
        cov = np.cov(x, y, ddof=1)
        var = (cov[0, 0] - 2 * ratio * cov[0, 1] + ratio**2 * cov[1, 1]) / (len(x) * y.mean() ** 2)
        return ratio, var

    (r1, v1), (r0, v0) = delta(t), delta(c)
    assert ctr["absolute_lift"] == pytest.approx(r1 - r0, abs=1e-12)
    assert ctr["se"] == pytest.approx(np.sqrt(v0 + v1), abs=1e-12)
    z = (r1 - r0) / np.sqrt(v0 + v1)
    assert ctr["statistic"] == pytest.approx(z, abs=1e-9)
    assert ctr["p_value"] == pytest.approx(2 * stats.norm.sf(abs(z)), abs=1e-9)
    assert result["srm"]["observed"] == {"control": len(c), "treatment": len(t)}
    assert result["srm"]["p_value"] == pytest.approx(
        stats.chisquare([len(c), len(t)]).pvalue, abs=1e-12
    )
    assert result["decision"].startswith("treatment wins: converted")


def test_events_before_the_exposure_do_not_count(demo_project: Path) -> None:
    exposed = pd.DataFrame(
        {
            "unit": [f"a{i}" for i in range(6)],
            "variant": ["control", "treatment"] * 3,
            "first_exposed_at": [T0] * 6,
        }
    )
    before = T0 - timedelta(minutes=1)
    after = T0 + timedelta(days=1)
    late = T0 + timedelta(days=8)  # after the 7-day conversion window: revenue only
    events = pd.DataFrame(
        [
            ("a0", before, "purchase", 100.0),  # only before: the unit counts zero
            ("a1", after, "purchase", 10.0),
            ("a1", before, "purchase", 1000.0),
            ("a2", late, "purchase", 7.0),
            ("a3", after, "click", 0.0),
            ("a3", after, "impression", 0.0),
            ("a4", after, "support_ticket", 0.0),
            ("zz", after, "purchase", 5.0),  # never exposed: not a unit
        ],
        columns=["user_id", "ts", "event_type", "value"],
    )
    _with_experiments(demo_project, {"ranker": EXPERIMENT}, events)
    _store_exposures(demo_project, exposed)
    project = Project(demo_project)
    try:
        result = project.analyze_experiment("ranker")
    finally:
        project.close()
    by = {v["variant"]: v for v in result["variants"]}
    # control: a0 (nothing after), a2 (late purchase), a4 (ticket); treatment: a1, a3, a5
    assert by["control"]["units"] == 3 and by["treatment"]["units"] == 3
    assert by["control"]["units_with_outcome"] == 2  # a2, a4; a0's purchase was before
    assert by["treatment"]["units_with_outcome"] == 2  # a1, a3
    assert by["control"]["metrics"]["revenue"]["value"] == pytest.approx(7.0 / 3)
    assert by["treatment"]["metrics"]["revenue"]["value"] == pytest.approx(10.0 / 3)
    assert by["control"]["metrics"]["converted"]["value"] == 0.0  # a2's purchase is late
    assert by["treatment"]["metrics"]["converted"]["value"] == pytest.approx(1 / 3)


def test_a_guardrail_that_got_worse_blocks_the_win(demo_project: Path, tmp_path: Path) -> None:
    exposed, events = _simulate(ticket_lift=0.4)
    _with_experiments(demo_project, {"ranker": EXPERIMENT}, events)
    _store_exposures(demo_project, exposed)
    project = Project(demo_project)
    try:
        result = project.analyze_experiment("ranker")
    finally:
        project.close()
    treat = next(v for v in result["variants"] if not v["control"])
    assert treat["metrics"]["converted"]["sequential"]["significant"]
    assert [w.split(" ")[0] for w in treat["guardrails_worse"]] == ["tickets"]
    assert result["decision"].startswith("do not ship treatment: converted +")
    assert "guardrail(s) got significantly worse: tickets +" in result["decision"]
    from cycleml.experiments import write_experiment_report

    page = write_experiment_report(tmp_path / "r.html", result).read_text()
    assert "<h2>Guardrails</h2>" in page and "significantly worse" in page
    assert "<h2>Exposures</h2>" in page


def test_no_exposures_yet_is_a_clear_error(demo_project: Path) -> None:
    _with_experiments(demo_project, {"ranker": EXPERIMENT})
    project = Project(demo_project)
    try:
        with pytest.raises(DataError, match="'ranker' has no exposures yet"):
            project.analyze_experiment("ranker")
    finally:
        project.close()


def test_a_metric_over_an_unknown_event_type_is_named(demo_project: Path) -> None:
    exposed, events = _simulate(n=200)
    metrics = dict(EXPERIMENT["metrics"]) | {"signups": {"type": "mean", "event": "signup"}}
    _with_experiments(demo_project, {"ranker": EXPERIMENT | {"metrics": metrics}}, events)
    _store_exposures(demo_project, exposed)
    project = Project(demo_project)
    try:
        with pytest.raises(
            DataError, match="metric\\(s\\) signups count event type\\(s\\) 'signup'"
        ) as err:
            project.analyze_experiment("ranker")
        assert "click" in err.value.hint and "purchase" in err.value.hint
    finally:
        project.close()


def test_a_variant_naming_a_missing_model_version_is_named(demo_project: Path) -> None:
    variants = dict(EXPERIMENT["variants"]) | {"treatment": {"weight": 0.5, "model": 7}}
    _with_experiments(demo_project, {"ranker": EXPERIMENT | {"variants": variants}})
    project = Project(demo_project)
    try:
        with pytest.raises(NotFoundError, match="names model version 7 of problem 'churn'") as e:
            project.analyze_experiment("ranker")
        assert "existing versions of 'churn': none yet" in e.value.hint
    finally:
        project.close()


# -- the spec ----------------------------------------------------------------------------------


def _doc(experiments: dict, extra_sources: dict | None = None) -> str:
    sources = {
        "users": {"path": "u.parquet", "entity": "user_id"},
        "exp_events": {"path": "e.parquet", "entity": "user_id", "time": "ts", "collect": True},
        **(extra_sources or {}),
    }
    doc = {
        "spec_version": 1,
        "name": "x",
        "sources": sources,
        "features": {"profile": {"source": "users", "columns": ["age"]}},
        "problems": {
            "churn": {
                "entity": "user_id",
                "task": "regression",
                "label": {"kind": "column", "source": "users", "column": "age"},
                "features": ["profile"],
            }
        },
        "experiments": experiments,
    }
    return yaml.safe_dump(doc, sort_keys=False)


def _spec_error(experiments: dict, extra_sources: dict | None = None) -> str:
    with pytest.raises(SpecError) as err:
        parse_spec(_doc(experiments, extra_sources))
    return str(err.value) + " " + " ".join(str(i) for i in getattr(err.value, "issues", []))


def test_bad_served_specs_are_clear() -> None:
    weights = {"control": {"weight": 0.5}, "treatment": {"weight": 0.4, "model": 1}}
    assert "weights must sum to 1 (they sum to 0.9)" in _spec_error(
        {"e": EXPERIMENT | {"variants": weights}}
    )
    both = _spec_error({"e": EXPERIMENT | {"source": "users"}})
    assert "give exactly one of `source:`" in both and "this one has both" in both
    neither = {k: v for k, v in EXPERIMENT.items() if k != "problem"}
    assert "give exactly one of `source:`" in _spec_error({"e": neither})
    assert "`control` 'ctl' is not one of `variants`" in _spec_error(
        {"e": EXPERIMENT | {"control": "ctl"}}
    )
    metrics = {"c": {"type": "conversion", "event": "purchase"}}
    assert "needs `event` (an event type) and `days`" in _spec_error(
        {"e": EXPERIMENT | {"metrics": metrics, "primary": "c", "guardrails": []}}
    )
    metrics = {"c": {"type": "mean", "column": "revenue"}}
    assert "metrics are over events" in _spec_error(
        {"e": EXPERIMENT | {"metrics": metrics, "primary": "c", "guardrails": []}}
    )
    assert "`guardrails` nope not among `metrics`" in _spec_error(
        {"e": EXPERIMENT | {"guardrails": ["nope"]}}
    )
    assert "`end` (2026-01-01) is before `start` (2026-02-01)" in _spec_error(
        {"e": EXPERIMENT | {"start": "2026-02-01", "end": "2026-01-01"}}
    )
    assert "unknown problem 'chrn'" in _spec_error({"e": EXPERIMENT | {"problem": "chrn"}})
    assert "does not collect events" in _spec_error(
        {"e": EXPERIMENT | {"events": "plain"}},
        {"plain": {"path": "p.parquet", "entity": "user_id", "time": "ts"}},
    )
    assert "by its entity 'user_id', not 'session'" in _spec_error(
        {"e": EXPERIMENT | {"unit": "session"}}
    )


def test_overlapping_experiments_on_the_same_unit_and_surface_are_refused() -> None:
    first = EXPERIMENT | {"start": "2026-01-01", "end": "2026-03-31"}
    second = EXPERIMENT | {"start": "2026-03-01", "end": "2026-04-30"}
    message = _spec_error({"a": first, "b": second})
    assert "experiment 'b' overlaps experiment 'a'" in message
    assert "surface 'churn'" in message
    # disjoint dates, or another surface: both fine
    later = EXPERIMENT | {"start": "2026-04-01", "end": "2026-04-30"}
    doc_ok = parse_spec(_doc({"a": first, "b": later, "c": second | {"surface": "emails"}}))
    assert set(doc_ok.experiments) == {"a", "b", "c"}


# -- assignment --------------------------------------------------------------------------------


def _exp(weights: dict[str, float]) -> ExperimentSpec:
    variants = {k: {"weight": w, "model": "baseline"} for k, w in weights.items()}
    return ExperimentSpec.model_validate(
        EXPERIMENT | {"variants": variants, "control": next(iter(weights))}
    )


def test_assignment_is_uniform_over_the_weights() -> None:
    weights = {"control": 0.2, "a": 0.3, "b": 0.5}
    exp = _exp(weights)
    units = [f"user-{i}" for i in range(30_000)]
    got = pd.Series([variant_of(exp, "e", u) for u in units]).value_counts()
    observed = [got.get(v, 0) for v in weights]
    expected = [len(units) * w for w in weights.values()]
    assert stats.chisquare(observed, expected).pvalue > 0.001
    # and it is the weights that decide: a 50/50 split of the same units differs
    other = _exp({"control": 0.5, "a": 0.5})
    assert sum(variant_of(other, "e", u) == "a" for u in units) == pytest.approx(15_000, rel=0.03)


def test_assignment_is_independent_across_experiments() -> None:
    first, second = _exp({"control": 0.5, "t": 0.5}), _exp({"control": 0.5, "t": 0.5})
    units = [f"user-{i}" for i in range(20_000)]
    table = pd.crosstab(
        pd.Series([variant_of(first, "e", u) for u in units]),
        pd.Series([variant_of(second, "f", u) for u in units]),
    )
    assert table.shape == (2, 2)
    assert stats.chi2_contingency(table.to_numpy()).pvalue > 0.001
    assert 0.45 < table.to_numpy()[0, 0] / table.to_numpy()[0].sum() < 0.55


def test_assignment_is_sticky_across_processes(demo_project: Path) -> None:
    _with_experiments(demo_project, {"ranker": EXPERIMENT | {"salt": "s1"}})
    units = [f"u{i}" for i in range(300)]
    code = (
        "import json, sys\n"
        "from cycleml.spec import load_spec\n"
        "from cycleml.experiments._served import variant_of\n"
        "exp = load_spec(sys.argv[1]).experiments['ranker']\n"
        "print(json.dumps([variant_of(exp, 'ranker', u) for u in json.loads(sys.argv[2])]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(demo_project), json.dumps(units)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    theirs = json.loads(out.stdout)
    project = Project(demo_project)
    try:
        exp = project.spec.experiments["ranker"]
        ours = [variant_of(exp, "ranker", u) for u in units]
    finally:
        project.close()
    assert theirs == ours
    assert {"control", "treatment"} == set(ours)
    # the salt is part of the hash: another salt moves some units
    moved = [variant_of(exp.model_copy(update={"salt": "s2"}), "ranker", u) for u in units]
    assert moved != ours


# -- exposures ---------------------------------------------------------------------------------


def test_assign_experiment_stores_the_first_exposure_only(demo_project: Path) -> None:
    _with_experiments(demo_project, {"ranker": EXPERIMENT})
    project = Project(demo_project)
    try:
        project.store.open()
        with pytest.raises(NotFoundError, match="no production model"):
            project.assign_experiment("ranker", "u1")  # the treatment serves production
    finally:
        project.close()
    variants = {
        "control": {"weight": 0.5, "model": "baseline"},
        "treatment": {"weight": 0.5, "model": "baseline"},
    }
    future = {"start": "2999-01-01"}
    _with_experiments(
        demo_project,
        {
            "ranker": EXPERIMENT | {"variants": variants},
            "later": EXPERIMENT | future | {"variants": variants, "surface": "s"},
        },
    )
    project = Project(demo_project)
    try:
        first = [project.assign_experiment("ranker", f"u{i}") for i in range(20)]
        again = [project.assign_experiment("ranker", f"u{i}") for i in range(20)]
        assert first == again
        assert all(a["active"] and a["model_version"] is None for a in first)
        exp = project.spec.experiments["ranker"]
        assert [a["variant"] for a in first] == [
            variant_of(exp, "ranker", f"u{i}") for i in range(20)
        ]
        waiting = project.assign_experiment("later", "u1")
        assert waiting == {
            "experiment": "later",
            "unit": "u1",
            "variant": "control",
            "model_version": None,
            "active": False,
        }
        with project.store.connect() as conn:
            rows = conn.execute(sa.select(exposures)).all()
        assert sorted(r.unit for r in rows) == sorted(f"u{i}" for i in range(20))
        assert {r.experiment for r in rows} == {"ranker"}  # nothing for the inactive one
        with pytest.raises(NotFoundError, match="unknown experiment 'nope'"):
            project.assign_experiment("nope", "u1")
    finally:
        project.close()
    from typer.testing import CliRunner

    from cycleml.cli import app

    said = CliRunner().invoke(
        app, ["experiment", "assign", "ranker", "u7", "-p", str(demo_project)]
    )
    assert said.exit_code == 0, said.stderr
    expected = first[7]["variant"]
    assert f"ranker u7: {expected} (no model (baseline); running)" in " ".join(said.stdout.split())


def _race(url: str, base: Path) -> list[tuple]:
    """Four writers hand the same 300 units (different variants) to the store at once."""
    import threading

    stores = [Store(url, base) for _ in range(4)]
    stores[0].open()
    barrier = threading.Barrier(4)

    def write(i: int) -> None:
        writer = ExposureWriter(stores[i], interval=0.001, batch_size=37)
        barrier.wait()
        for u in range(300):
            writer.put("race", f"u{u}", f"v{i}", None, f"r{i}", T0 + timedelta(seconds=i))
        writer.close()

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    with stores[0].connect() as conn:
        rows = conn.execute(sa.select(exposures.c.unit, exposures.c.variant)).all()
    read = read_exposures(stores[0], "race")  # what the analysis reads (ADBC)
    assert sorted(read.column("unit").to_pylist()) == sorted(r.unit for r in rows)
    assert read_exposures(stores[0], "it's-not-there").num_rows == 0
    for store in stores:
        store.dispose()
    return rows


def test_exposures_race_keeps_one_row_per_unit_sqlite(tmp_path: Path) -> None:
    rows = _race(f"sqlite:///{tmp_path / 'store.db'}", tmp_path)
    assert sorted(r.unit for r in rows) == sorted(f"u{u}" for u in range(300))


def test_exposures_race_keeps_one_row_per_unit_postgres(pg_database: str, tmp_path: Path) -> None:
    rows = _race(pg_database, tmp_path)
    assert sorted(r.unit for r in rows) == sorted(f"u{u}" for u in range(300))
    assert {r.variant for r in rows} <= {"v0", "v1", "v2", "v3"}


def test_cli_assign_and_analyze_of_a_served_experiment(served) -> None:
    from typer.testing import CliRunner

    from cycleml.cli import app

    root, exposed, _ = served
    runner = CliRunner()
    unit = exposed.unit.iloc[0]
    result = runner.invoke(app, ["experiment", "assign", "ranker", unit, "-p", str(root), "--json"])
    assert result.exit_code == 5, result.stdout  # the treatment serves production: no model yet
    assert json.loads(result.stdout)["error"] == "NotFoundError"
    assert "no production model" in json.loads(result.stdout)["message"]
    result = runner.invoke(app, ["experiment", "analyze", "ranker", "-p", str(root)])
    assert result.exit_code == 0, result.stderr
    for variant in ("control", "treatment"):
        n = int((exposed.variant == variant).sum())
        assert f"{variant}: {n} units, {n} exposures," in result.stdout
    assert "decision: treatment wins: converted" in " ".join(result.stdout.split())
    result = runner.invoke(app, ["experiment", "analyze", "nope", "-p", str(root)])
    assert result.exit_code == 5 and "unknown experiment 'nope'" in result.stderr
