"""`suggest` on the demo product: the families it finds, and its evidence checked in pandas."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from cycleml.spec import load_spec, parse_spec
from cycleml.suggest import suggest_problems
from cycleml.suggest._apply import add_entries


@pytest.fixture(scope="module")
def report(demo_template):
    return suggest_problems(load_spec(demo_template), demo_template)


@pytest.fixture(scope="module")
def events(demo_template) -> pd.DataFrame:
    return pd.read_parquet(demo_template / "data" / "events.parquet")


def _one(report, family, **label):
    found = [
        s
        for s in report
        if s.family == family and all(s.problem["label"].get(k) == v for k, v in label.items())
    ]
    assert found, f"no {family} suggestion with {label}: {[s.name for s in report]}"
    return found[0]


def _cutoffs(start: pd.Timestamp, last: pd.Timestamp, days: int) -> list[pd.Timestamp]:
    out, current = [], start
    while current <= last - timedelta(days=days):
        out.append(current)
        current += timedelta(days=7)
    return out


def test_finds_churn_conversion_value_ranking_and_column(report):
    churn = _one(report, "churn", kind="inactivity", source="events")
    purchase = _one(report, "conversion", kind="event_within", event_types=["purchase"])
    value = _one(report, "value", kind="sum_within", source="events", column="value")
    click = _one(report, "ranking", kind="click", source="impressions", column="clicked")
    assert click.problem["label"]["item"] == "product_id"
    column = _one(report, "column", kind="column", source="users")
    for s in (churn, purchase, value, click, column):
        assert s.status == "ready", (s.name, s.readiness)
    # The demo spec's own churn problem has the same label: it is recognised, not re-proposed.
    assert churn.defined_as == "churn"
    # Numbered 1..N in rank order; the main churn problem and the purchase conversion lead.
    assert [s.rank for s in report] == list(range(1, len(report) + 1))
    scores = [s.score for s in report if s.status == "ready"]
    assert scores == sorted(scores, reverse=True)
    assert {report[0].family, report[1].family} == {"churn", "conversion"}
    # No problem of a timeless table over time, and nothing about products' clicks as churn.
    assert not any(
        s.family in ("churn", "conversion", "value") for s in report if s.source == "products"
    )


def test_churn_evidence_matches_pandas(report, events):
    churn = _one(report, "churn", kind="inactivity", source="events")
    ev = events.dropna(subset=["user_id", "ts"])
    f = churn.figures
    assert f["rows"] == len(ev)
    assert f["entities"] == ev["user_id"].nunique()
    span = (ev["ts"].max() - ev["ts"].min()).total_seconds() / 86400
    assert f["span_days"] == pytest.approx(span, abs=1e-3)
    # 90th percentile of the days between a user's consecutive active days.
    days = ev.assign(day=ev["ts"].dt.normalize())[["user_id", "day"]].drop_duplicates()
    gaps = days.sort_values(["user_id", "day"]).groupby("user_id")["day"].diff().dt.days.dropna()
    assert f["return_gap_p90_days"] == pytest.approx(np.quantile(gaps, 0.9))
    horizon = churn.readiness["horizon_days"]
    assert horizon >= np.quantile(gaps, 0.9)
    examples = positives = 0
    cutoffs = _cutoffs(pd.Timestamp(f["cutoff_start"]), ev["ts"].max(), horizon)
    for c in cutoffs:
        d = timedelta(days=horizon)
        active = set(ev.loc[(ev["ts"] < c) & (ev["ts"] >= c - d), "user_id"])
        later = set(ev.loc[(ev["ts"] >= c) & (ev["ts"] < c + d), "user_id"])
        examples += len(active)
        positives += len(active - later)
    assert churn.readiness["cutoffs"] == len(cutoffs)
    assert churn.readiness["examples"] == examples
    assert churn.readiness["positives"] == positives
    assert churn.readiness["positive_rate"] == pytest.approx(positives / examples, abs=1e-4)
    assert f"{ev['user_id'].nunique():,} user_id" in churn.evidence[0]


def test_conversion_and_value_evidence_match_pandas(report, events):
    purchase = _one(report, "conversion", kind="event_within", event_types=["purchase"])
    value = _one(report, "value", kind="sum_within", column="value")
    ev = events.dropna(subset=["user_id", "ts"])
    assert purchase.figures["event_rows"] == int((events["event_type"] == "purchase").sum())
    horizon = purchase.readiness["horizon_days"]
    first = ev.groupby("user_id")["ts"].min()
    examples = positives = nonzero = 0
    total = 0.0
    cutoffs = _cutoffs(pd.Timestamp(purchase.figures["cutoff_start"]), ev["ts"].max(), horizon)
    for c in cutoffs:
        exists = set(first[first < c].index)
        window = ev[(ev["ts"] >= c) & (ev["ts"] < c + timedelta(days=horizon))]
        bought = set(window.loc[window["event_type"] == "purchase", "user_id"])
        sums = window.groupby("user_id")["value"].sum()
        examples += len(exists)
        positives += len(exists & bought)
        nonzero += int((sums.reindex(sorted(exists)).fillna(0) != 0).sum())
        total += float(sums.reindex(sorted(exists)).fillna(0).sum())
    assert purchase.readiness["examples"] == examples
    assert purchase.readiness["positives"] == positives
    assert value.readiness["examples"] == examples
    assert value.readiness["with_value"] == nonzero
    assert value.readiness["mean"] == pytest.approx(total / examples, abs=1e-3)
    assert value.figures["nonzero_rows"] == int((events["value"] != 0).sum())
    assert value.figures["sum"] == pytest.approx(float(events["value"].sum()))


def test_ranking_evidence_matches_pandas(report, demo_template):
    click = _one(report, "ranking", kind="click", source="impressions")
    imp = pd.read_parquet(demo_template / "data" / "impressions.parquet")
    imp = imp.dropna(subset=["clicked"])
    assert click.readiness["examples"] == len(imp)
    assert click.readiness["positives"] == int(imp["clicked"].sum())
    assert click.readiness["items"] == imp["product_id"].nunique()


def test_column_evidence_matches_pandas(report, demo_template):
    users = pd.read_parquet(demo_template / "data" / "users.parquet")
    plan = _one(report, "column", kind="column", source="users", column="plan")
    assert plan.readiness["class_counts"] == users["plan"].value_counts().to_dict()
    assert plan.problem["task"] == ("binary" if users["plan"].nunique() == 2 else "multiclass")
    # The target never feeds its own features (leakage).
    for name, group in plan.features.items():
        assert "plan" not in group.get("columns", []), name
    assert "profile" not in plan.reuses  # the demo's profile group reads plan


def test_every_block_validates_with_the_demo_spec(report, demo_template):
    text = (demo_template / "cycleml.yaml").read_text()
    for s in report:
        if s.defined_as:
            continue
        new = add_entries(text, "features", s.features) if s.features else text
        new = add_entries(new, "problems", {s.name: s.problem})
        spec = parse_spec(new)
        assert s.name in spec.problems
        assert set(spec.problems[s.name].features) <= set(spec.features)
        # The block printed to the user is the same YAML.
        assert s.yaml().splitlines()[1].strip() == f"{s.name}:"


def test_report_as_json_is_plain(report):
    import json

    body = json.loads(json.dumps(report.to_dict(), default=str))
    assert body["suggestions"][0]["rank"] == 1
    assert {"evidence", "readiness", "missing", "yaml", "problem"} <= set(body["suggestions"][0])
