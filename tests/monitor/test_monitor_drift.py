"""Drift on whole tables: false alarms with no shift stay at the configured rate, known shifts
are found, a million equal rows do not alarm, the domain classifier, data quality, chunks, and
bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cycleml.errors import DataError, SpecError
from cycleml.features import FeatureColumn
from cycleml.monitor import DriftOptions, compare, drift, drift_table

COLUMNS = [
    FeatureColumn("x", "g", "number"),
    FeatureColumn("plan", "g", "category"),
    FeatureColumn("paid", "g", "category"),
]
PLANS = np.array(["free", "basic", "pro"])


def _frame(
    rng, n: int, *, mean=0.0, sd=1.0, shares=(0.5, 0.3, 0.2), plans=PLANS, paid=0.3, null=0.0
) -> pd.DataFrame:
    x = rng.normal(mean, sd, n)
    x[rng.random(n) < null] = np.nan
    return pd.DataFrame(
        {
            "x": x,
            "plan": rng.choice(plans, n, p=list(shares)),
            "paid": np.where(rng.random(n) < paid, "yes", "no"),
        }
    )


def test_no_shift_false_alarms_stay_at_alpha_with_the_tests() -> None:
    rng = np.random.default_rng(77)
    reps, alpha = 300, 0.05
    options = DriftOptions(alpha=alpha, threads=1)
    alarms = {"x": 0, "plan": 0, "paid": 0}
    for _ in range(reps):
        for row in drift_table(_frame(rng, 300), _frame(rng, 200), COLUMNS, options=options):
            assert row["method"] == {"x": "ks", "plan": "chi2", "paid": "z"}[row["feature"]]
            alarms[row["feature"]] += row["drifted"]
    bound = alpha + 3 * np.sqrt(alpha * (1 - alpha) / reps)  # about 0.088
    for feature, count in alarms.items():
        assert count / reps <= bound, (feature, count)
    # a stricter alpha means fewer alarms on the same kind of data
    strict = DriftOptions(alpha=0.001, threads=1)
    rows = [
        drift_table(_frame(rng, 300), _frame(rng, 200), COLUMNS, options=strict) for _ in range(100)
    ]
    assert sum(r["drifted"] for table in rows for r in table) <= 3


def test_no_shift_large_samples_do_not_alarm_with_distances() -> None:
    rng = np.random.default_rng(5)
    options = DriftOptions(threads=1)
    for _ in range(20):
        rows = drift_table(_frame(rng, 5000), _frame(rng, 3000), COLUMNS, options=options)
        assert [r["method"] for r in rows] == ["wasserstein", "jensenshannon", "jensenshannon"]
        assert not any(r["drifted"] for r in rows), rows


def test_a_million_equal_rows_do_not_alarm_while_a_test_would() -> None:
    rng = np.random.default_rng(11)
    n = 1_000_000
    reference = pd.DataFrame({"x": rng.normal(0, 1, n), "plan": rng.choice(PLANS, n)})
    current = pd.DataFrame(
        {"x": rng.normal(0.01, 1, n), "plan": rng.choice(PLANS, n, p=[0.34, 0.33, 0.33])}
    )
    cols = COLUMNS[:2]
    rows = {r["feature"]: r for r in drift_table(reference, current, cols)}
    assert rows["x"]["method"] == "wasserstein" and rows["plan"]["method"] == "jensenshannon"
    assert not rows["x"]["drifted"] and not rows["plan"]["drifted"]
    # the same trivial shifts are "significant" to a test at this size: why distances are used
    forced = DriftOptions(methods={"x": "ks", "plan": "chi2"})
    rows = {r["feature"]: r for r in drift_table(reference, current, cols, options=forced)}
    assert rows["x"]["p_value"] < 0.05 and rows["plan"]["p_value"] < 0.05


@pytest.mark.parametrize("n", [600, 6000], ids=["tests", "distances"])
@pytest.mark.parametrize(
    ("shift", "feature"),
    [
        ({"mean": 0.5}, "x"),
        ({"sd": 1.8}, "x"),
        ({"shares": (0.25, 0.3, 0.45)}, "plan"),
        ({"plans": np.array(["free", "basic", "enterprise"])}, "plan"),
        ({"paid": 0.6}, "paid"),
    ],
    ids=["mean", "variance", "category-shares", "new-category", "binary-share"],
)
def test_known_shifts_are_detected(shift: dict, feature: str, n: int) -> None:
    rng = np.random.default_rng(8)
    rows = drift_table(_frame(rng, n), _frame(rng, n, **shift), COLUMNS)
    by_feature = {r["feature"]: r for r in rows}
    assert by_feature[feature]["drifted"] is True, by_feature[feature]
    assert [r["feature"] for r in rows if r["drifted"]] == [feature]  # only the shifted one


def test_a_missing_rate_jump_and_a_new_category_are_quality_findings() -> None:
    rng = np.random.default_rng(4)
    reference = _frame(rng, 3000, null=0.02)
    current = _frame(rng, 2000, null=0.2, plans=np.array(["free", "basic", "enterprise"]))
    current.loc[:99, "x"] = 50.0  # far outside the training range
    result = compare(reference, current, columns=COLUMNS)
    found = {(q["check"], q["column"]): q for q in result["quality"]}
    assert found[("missing_rate", "x")]["current_null_rate"] == pytest.approx(
        current["x"].isna().mean()
    )
    assert found[("new_categories", "plan")]["categories"] == ["enterprise"]
    assert found[("new_categories", "plan")]["share"] == pytest.approx(
        (current["plan"] == "enterprise").mean()
    )
    assert found[("out_of_range", "x")]["share"] >= 100 / current["x"].notna().sum()
    # no finding where nothing changed
    calm = compare(_frame(rng, 3000), _frame(rng, 2000), columns=COLUMNS)
    assert calm["quality"] == []


def test_domain_classifier_finds_the_feature_that_moved() -> None:
    rng = np.random.default_rng(9)
    n = 3000
    reference = _frame(rng, n).assign(**{f"z{i}": rng.normal(size=n) for i in range(5)})
    current = _frame(rng, n, mean=0.8).assign(**{f"z{i}": rng.normal(size=n) for i in range(5)})
    moved = compare(reference, current)["domain_classifier"]
    assert moved["drifted"] is True and moved["roc_auc"] > 0.6
    assert moved["top_features"][0]["feature"] == "x"
    same = _frame(rng, n).assign(**{f"z{i}": rng.normal(size=n) for i in range(5)})
    calm = compare(reference, same)["domain_classifier"]
    assert calm["drifted"] is False and abs(calm["roc_auc"] - 0.5) < 0.05


def test_methods_and_thresholds_set_per_column() -> None:
    rng = np.random.default_rng(3)
    reference, current = _frame(rng, 3000), _frame(rng, 3000, mean=0.15)
    options = DriftOptions(methods={"x": "psi", "plan": "kl"}, thresholds={"x": 0.01, "kl": 0.5})
    rows = {r["feature"]: r for r in drift_table(reference, current, COLUMNS, options=options)}
    assert rows["x"]["method"] == "psi" and rows["x"]["threshold"] == 0.01
    assert rows["x"]["drifted"] == (rows["x"]["statistic"] >= 0.01)
    assert rows["plan"]["method"] == "kl" and rows["plan"]["threshold"] == 0.5
    assert rows["paid"]["method"] == "jensenshannon" and rows["paid"]["threshold"] == 0.1
    with pytest.raises(SpecError, match="does not apply to category column 'plan'"):
        drift_table(reference, current, COLUMNS, options=DriftOptions(methods={"plan": "ks"}))
    with pytest.raises(SpecError, match="unknown drift method"):
        DriftOptions(methods={"x": "t-test"})


def test_chunks_by_day_skip_small_ones_and_find_the_shifted_days(tmp_path) -> None:
    rng = np.random.default_rng(12)
    reference = _frame(rng, 4000)
    days = [_frame(rng, 400, mean=0.6 if day >= 3 else 0.0) for day in range(5)]
    days.append(_frame(rng, 10))  # a day too small for the tests
    for day, frame in enumerate(days):
        frame["ts"] = pd.Timestamp("2025-03-01") + pd.Timedelta(days=day, hours=6)
    current = pd.concat(days, ignore_index=True)
    result = compare(
        reference, current, columns=COLUMNS, time_column="ts", chunk="day",
        options=DriftOptions(domain_classifier=False),
    )  # fmt: skip
    chunks = result["chunks"]
    assert [c["chunk"] for c in chunks] == [f"2025-03-0{d}" for d in range(1, 7)]
    assert [("x" in c.get("drifted", [])) for c in chunks[:5]] == [False] * 3 + [True] * 2
    assert "too few rows in this chunk: 10" in chunks[5]["skipped"]
    assert any(q["check"] == "volume" and q["rows"] == 10 for q in result["quality"])
    from cycleml.reports._drift_report import drift_report

    html = drift_report(tmp_path / "chunks.html", result).read_text()
    assert "Drift over time" in html and "2025-03-06: too few rows in this chunk: 10" in html
    assert html.count('class="bad">yes<') == len(result["drifted"])


def test_weekly_chunks_start_on_monday() -> None:
    rng = np.random.default_rng(13)
    reference = _frame(rng, 1000)
    current = _frame(rng, 14 * 50)
    # 2026-06-17 is a Wednesday: two weeks of days from it fall in three Monday-started weeks
    current["ts"] = pd.Timestamp("2026-06-17") + pd.to_timedelta(np.arange(14 * 50) // 50, "D")
    result = compare(
        reference, current, columns=COLUMNS, time_column="ts", chunk="week",
        options=DriftOptions(domain_classifier=False, min_chunk_rows=10),
    )  # fmt: skip
    starts = [pd.Timestamp(c["chunk"]) for c in result["chunks"]]
    assert [s.day_name() for s in starts] == ["Monday"] * 3
    assert [c["rows"] for c in result["chunks"]] == [5 * 50, 7 * 50, 2 * 50]


def test_a_column_on_one_side_only_is_reported_not_a_crash() -> None:
    rng = np.random.default_rng(6)
    reference = _frame(rng, 500)
    current = _frame(rng, 500).drop(columns=["plan"]).assign(extra=1.0)
    result = compare(reference, current)
    rows = {r["feature"]: r for r in result["features"]}
    assert rows["plan"]["skipped"] == "column missing on the current side"
    assert rows["extra"]["skipped"] == "column missing on the reference side"
    assert not rows["plan"]["drifted"] and rows["x"]["p_value"] is not None
    schema = {q["column"]: q for q in result["quality"] if q["check"] == "schema"}
    assert set(schema) == {"plan", "extra"}
    assert result["tested"] == 2  # x and paid
    # time columns differ between two windows by design: left out unless named
    stamped = compare(
        reference.assign(ts=pd.Timestamp("2025-01-01")),
        current.assign(ts=pd.Timestamp("2025-06-01")),
    )
    assert stamped["not_compared"] == ["ts"]
    assert "ts" not in {r["feature"] for r in stamped["features"]}


@pytest.mark.parametrize("side", ["reference", "current"])
def test_an_all_null_column_is_skipped_and_reported(side: str) -> None:
    rng = np.random.default_rng(6)
    reference, current = _frame(rng, 500), _frame(rng, 500)
    target = reference if side == "reference" else current
    target["x"] = np.nan
    target["plan"] = None
    result = compare(reference, current, columns=COLUMNS)
    rows = {r["feature"]: r for r in result["features"]}
    for feature in ("x", "plan"):
        assert rows[feature]["skipped"] == "no values on one side"
        assert rows[feature]["statistic"] is None and rows[feature]["drifted"] is False
    assert rows["x"][f"{side}_null_rate"] == 1.0
    all_null = {q["column"] for q in result["quality"] if q["check"] == "all_null"}
    assert all_null == {"x", "plan"}


def test_too_few_values_for_the_method_are_skipped_with_the_reason() -> None:
    reference = pd.DataFrame({"plan": ["a", "b"] * 50})
    current = pd.DataFrame({"plan": ["a", "b", None, None, None, None, None, None]})
    (row,) = drift_table(reference, current, ["plan"])
    assert row["method"] == "z"
    assert row["skipped"].startswith("too few values for z-test for proportions: 2")


def test_empty_inputs_are_clear_errors(tmp_path) -> None:
    rng = np.random.default_rng(1)
    frame = _frame(rng, 50)
    with pytest.raises(DataError, match="the reference has no rows"):
        compare(frame.iloc[:0], frame)
    with pytest.raises(DataError, match="the current data has no rows"):
        compare(frame, frame.iloc[:0])


def test_drift_reads_parquet_and_csv_files_and_writes_the_report(tmp_path) -> None:
    rng = np.random.default_rng(2)
    ref_path, cur_path = tmp_path / "ref.parquet", tmp_path / "cur.csv"
    _frame(rng, 800).to_parquet(ref_path)
    _frame(rng, 600, mean=0.7).to_csv(cur_path, index=False)
    result = drift(ref_path, cur_path, html=tmp_path / "out" / "drift.html", alpha=0.01)
    assert result["drifted"] == ["x"]
    assert result["options"]["alpha"] == 0.01
    assert result["reference"]["path"] == str(ref_path)
    html = (tmp_path / "out" / "drift.html").read_text()
    assert "Plotly.newPlot" in html and "wasserstein" not in html  # tests at this size
    assert ">ks<" in html and "Drift per feature" in html
    with pytest.raises(Exception, match="does not exist"):
        drift(tmp_path / "nope.parquet", cur_path)
