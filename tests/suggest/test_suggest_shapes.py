"""`suggest` on data that supports nothing, little, or a forecast; the spec text editor."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from cycleml.spec import load_spec, parse_spec
from cycleml.suggest import suggest_problems
from cycleml.suggest._apply import add_entries

HEADER = "spec_version: 1\nname: t\nsources:\n"


def _noise_csv(rows: int = 500, seed: int = 3) -> str:
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    frame = pd.DataFrame(
        {
            "x1": rng.normal(size=rows),
            "x2": rng.uniform(size=rows),
            "x3": rng.integers(0, 1000, size=rows),
            "s1": ["".join(rng.choice(letters, 8)) for _ in range(rows)],
            "s2": ["".join(rng.choice(letters, 5)) for _ in range(rows)],
        }
    )
    return frame.to_csv(index=False)


def test_random_noise_has_nothing_to_predict_and_says_why(write_project):
    root = write_project(HEADER + "  noise: {path: noise.csv}\n", {"noise.csv": _noise_csv()})
    report = suggest_problems(load_spec(root), root)
    assert len(report) == 0
    assert report.notes[0].startswith("nothing to predict")
    text = " ".join(report.notes)
    assert "no time column" in text and "none is declared and no column holds timestamps" in text
    assert "no entity column" in text and "no column is named like an identifier" in text


def test_undeclared_columns_are_named_in_the_notes(write_project):
    frame = pd.DataFrame(
        {
            "customer_id": [f"c{i % 40}" for i in range(400)],
            "at": pd.date_range("2025-01-01", periods=400, freq="6h"),
        }
    )
    root = write_project(HEADER + "  log: {path: log.parquet}\n", {"log.parquet": _parquet(frame)})
    report = suggest_problems(load_spec(root), root)
    assert len(report) == 0
    text = " ".join(report.notes)
    assert "customer_id look(s) like an identifier" in text
    assert "declare one as `time:`" in text and "at" in text


def _parquet(frame: pd.DataFrame) -> bytes:
    import io

    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def test_short_history_says_what_is_missing(write_project):
    # Users come back every 20 days over 45 days: churn wants a 30-day horizon (60 days of
    # history) and falls back to 14 days, saying so.
    start = datetime(2026, 1, 1)
    rows = [
        {"user_id": f"u{u}", "ts": start + timedelta(days=(u % 20) + 20 * k, hours=u % 7)}
        for u in range(200)
        for k in range(3)
        if (u % 20) + 20 * k <= 45
    ]
    frame = pd.DataFrame(rows)
    root = write_project(
        HEADER + "  events: {path: events.parquet, entity: user_id, time: ts}\n",
        {"events.parquet": _parquet(frame)},
    )
    report = suggest_problems(load_spec(root), root)
    churn = next(s for s in report if s.family == "churn")
    span = (frame["ts"].max() - frame["ts"].min()).total_seconds() / 86400
    assert churn.readiness["horizon_days"] == 14
    assert any(
        "churn at a 30-day horizon needs at least 60 days of history" in m
        and f"you have {span:.0f}" in m
        for m in churn.missing
    ), churn.missing
    assert any("no entity table for user_id" in m for m in churn.missing)
    assert churn.features  # a new activity group is proposed, none exists
    parse_spec(
        add_entries(
            add_entries((root / "cycleml.yaml").read_text(), "features", churn.features),
            "problems",
            {churn.name: churn.problem},
        )
    )


def test_daily_sales_per_store_suggest_a_forecast(write_project):
    days = pd.date_range("2025-01-01", periods=120, freq="D")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        [
            {"store_id": f"s{s}", "day": d, "units": int(rng.poisson(20 + 5 * d.day_of_week))}
            for s in range(5)
            for d in days
        ]
    )
    root = write_project(
        HEADER + "  sales: {path: sales.parquet, entity: store_id, time: day}\n",
        {"sales.parquet": _parquet(frame)},
    )
    report = suggest_problems(load_spec(root), root)
    forecast = next(s for s in report if s.family == "forecast")
    assert forecast.problem["label"] == {
        "kind": "forecast",
        "source": "sales",
        "horizon": 7,
        "column": "units",
    }
    assert forecast.problem["task"] == "forecast"
    assert forecast.figures["coverage"] == pytest.approx(1.0)
    new = add_entries((root / "cycleml.yaml").read_text(), "features", forecast.features)
    spec = parse_spec(add_entries(new, "problems", {forecast.name: forecast.problem}))
    assert spec.problems[forecast.name].label.kind == "forecast"


# -- the text editor ---------------------------------------------------------------------------

ENTRY = {"churn": {"entity": "user_id", "features": ["a"]}}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "name: x\nproblems:\n# keep me\nfeatures: {}\n",
            "name: x\nproblems:\n  churn:\n    entity: user_id\n    features: [a]\n# keep me\n"
            "features: {}\n",
        ),
        (
            "name: x\nproblems: {}\n",
            "name: x\nproblems:\n  churn:\n    entity: user_id\n    features: [a]\n",
        ),
        (
            "name: x\nproblems: ~  # none yet\n",
            "name: x\nproblems:  # none yet\n  churn:\n    entity: user_id\n    features: [a]\n",
        ),
        (
            "name: x\n",
            "name: x\n\nproblems:\n  churn:\n    entity: user_id\n    features: [a]\n",
        ),
        (
            "problems: {old: {entity: u}}\nname: x\n",
            "problems: {old: {entity: u}, churn: {entity: user_id, features: [a]}}\nname: x\n",
        ),
        (
            "problems:\n    old:\n        entity: u  # note\n\n# next section\nname: x\n",
            "problems:\n    old:\n        entity: u  # note\n    churn:\n      entity: user_id\n"
            "      features: [a]\n\n# next section\nname: x\n",
        ),
    ],
)
def test_add_entries_keeps_the_text(text, expected):
    assert add_entries(text, "problems", ENTRY) == expected


def test_unreadable_empty_and_missing_sources_are_explained(write_project):
    empty = pd.DataFrame(
        {"user_id": pd.Series([], dtype="str"), "ts": pd.Series([], dtype="datetime64[us]")}
    )
    root = write_project(
        HEADER
        + "  gone: {path: nowhere.parquet, entity: user_id, time: ts}\n"
        + "  empty: {path: empty.parquet, entity: user_id, time: ts}\n"
        + "  wrong: {path: empty.parquet, entity: customer, time: ts}\n",
        {"empty.parquet": _parquet(empty)},
    )
    report = suggest_problems(load_spec(root), root)
    assert len(report) == 0
    notes = "\n".join(report.notes)
    assert "gone: left out: source 'gone': no file matches nowhere.parquet" in notes
    assert "empty: has no rows" in notes
    assert "wrong: left out: source 'wrong': entity column 'customer' is not in the data" in notes


def test_no_sources_at_all(write_project):
    root = write_project("spec_version: 1\nname: t\n")
    report = suggest_problems(load_spec(root), root)
    assert len(report) == 0
    assert any("no sources" in note for note in report.notes)
