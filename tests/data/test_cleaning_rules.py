"""Cleaning rules: each fires on a frame built to trigger it and stays quiet on a clean frame
(a contract over every rule), and the statistics in the evidence match scipy/statsmodels."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from cycleml.data import SourceSet, profile_source, suggest_cleaning
from cycleml.data._cleaning_rules import RULES, variance_inflation
from cycleml.spec import load_spec

N = 400

SPEC = """\
spec_version: 1
name: t
sources:
  t: {path: t.parquet, entity: user_id, time: signup_at}
problems:
  p:
    entity: user_id
    task: binary
    label: {kind: column, source: t, column: label}
    features: [g]
features:
  g: {source: t, columns: [plan, amount, score], dates: {signup_at: [month]}}
"""


def clean_frame(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "user_id": np.arange(1, N + 1),
            "plan": rng.choice(["basic", "pro", "team"], N),
            "amount": rng.uniform(10, 100, N),
            "score": rng.uniform(0, 1, N),
            "signup_at": pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(N), unit="h"),
            "label": rng.integers(0, 2, N),
        }
    )


def _with(**columns) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        rng = np.random.default_rng(1)
        for name, make in columns.items():
            frame[name] = make(frame, rng)
        return frame

    return change


def _nulls(share):
    def make(frame, rng):
        values = frame["score"].copy()
        values[rng.random(N) < share] = np.nan
        return values

    return make


def _duplicate(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([frame, frame.head(5)], ignore_index=True)


def _rename(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(**{"First Name": "x", "select": 1.0, "2nd try": "y"}).assign(
        **{
            "First Name": [f"n{i % 7}" for i in range(N)],
            "2nd try": [f"v{i % 5}" for i in range(N)],
        }
    )


def _outlier(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[0, "amount"] = 10_000.0
    return frame


def _imbalanced(frame: pd.DataFrame) -> pd.DataFrame:
    frame["label"] = (np.arange(N) % 20 == 0).astype(int)
    return frame


def _spaced_time(frame, rng, days=10):
    return frame["signup_at"] + pd.Timedelta(days=days)


# rule -> (how to break the clean frame, an id the rule must then suggest)
TRIGGERS: dict[str, tuple[Callable[[pd.DataFrame], pd.DataFrame], str]] = {
    "clean_names": (_rename, "t.clean_names"),
    "drop_empty": (
        _with(legacy_id=lambda f, r: np.where(np.arange(N) % 10 == 0, 1.0, np.nan)),
        "t.drop_empty.legacy_id",
    ),
    "drop_single_value": (_with(country=lambda f, r: "DE"), "t.drop_single_value.country"),
    "fix_invalid": (
        _with(
            email=lambda f, r: [f"user{i}@example.com" if i else "not-an-email" for i in range(N)]
        ),
        "t.fix_invalid.email",
    ),
    "reformat_case": (
        _with(tier=lambda f, r: r.choice(["Gold", "gold", "GOLD", "silver"], N)),
        "t.reformat_case.tier",
    ),
    "currency_to_number": (
        _with(price=lambda f, r: [f"${1000 + i:,}.50" for i in range(N)]),
        "t.currency_to_number.price",
    ),
    "parse_datetime": (
        _with(
            seen=lambda f, r: [f"2024-02-{1 + i % 28:02d}" if i % 2 else "soon" for i in range(N)]
        ),
        "t.parse_datetime.seen",
    ),
    "impute": (_with(score=_nulls(0.1)), "t.impute.score"),
    "drop_collinear": (
        _with(
            x1=lambda f, r: r.normal(size=N),
            x2=lambda f, r: r.normal(size=N),
            x3=lambda f, r: f["x1"] + f["x2"] + r.normal(scale=0.01, size=N),
        ),
        "t.drop_collinear.x3",
    ),
    "drop_duplicates": (_duplicate, "t.drop_duplicates"),
    "remove_outliers": (_outlier, "t.remove_outliers.amount"),
    "exclude_identifier": (
        _with(order_code=lambda f, r: [f"A{i:05d}" for i in range(N)]),
        "t.exclude_identifier.order_code",
    ),
    "leakage": (_with(refund=lambda f, r: f["label"] * 3.0), "t.leakage.refund"),
    "encode": (
        _with(city=lambda f, r: [f"city{i % 300}" for i in range(N)]),
        "t.encode.city",
    ),
    "log_transform": (
        _with(spend=lambda f, r: r.lognormal(0, 1.5, N)),
        "t.log_transform.spend",
    ),
    "expand_dates": (_with(last_seen=_spaced_time), "t.expand_dates.last_seen"),
    "class_imbalance": (_imbalanced, "t.class_imbalance.p"),
}


def test_every_rule_has_a_trigger() -> None:
    assert set(TRIGGERS) == set(RULES)


@pytest.fixture
def make_project(write_project):
    def make(frame: pd.DataFrame, spec: str = SPEC) -> Path:
        root = write_project(spec)
        frame.to_parquet(root / "t.parquet", index=False)
        return root

    return make


def suggestions(root: Path, rules: list[str] | None = None, source: str = "t") -> dict:
    spec = load_spec(root)
    with SourceSet(spec, root) as sources:
        profile = profile_source(sources, source)
        return {s.id: s for s in suggest_cleaning(profile, sources, rules=rules)}


def test_clean_frame_gets_no_suggestion(make_project) -> None:
    found = suggestions(make_project(clean_frame()))
    assert found == {}, [s.title for s in found.values()]


@pytest.mark.parametrize("rule", sorted(TRIGGERS))
def test_rule_fires_on_its_trigger_and_is_quiet_on_a_clean_frame(rule, make_project) -> None:
    change, expected = TRIGGERS[rule]
    found = suggestions(make_project(change(clean_frame())), rules=[rule])
    assert expected in found, list(found)
    suggestion = found[expected]
    assert suggestion.title and suggestion.evidence
    if suggestion.action is not None:
        assert suggestion.action["id"] == expected
        assert suggestion.action["source"] == "t"
    assert suggestions(make_project(clean_frame()), rules=[rule]) == {}


def test_ids_are_stable(make_project) -> None:
    frame = TRIGGERS["drop_empty"][0](clean_frame())
    root = make_project(frame)
    assert list(suggestions(root)) == list(suggestions(root))


def test_clean_names_mapping(make_project) -> None:
    found = suggestions(make_project(_rename(clean_frame())), rules=["clean_names"])
    mapping = found["t.clean_names"].action["mapping"]
    assert mapping == {"First Name": "first_name", "select": "select_", "2nd try": "_2nd_try"}


def test_impute_strategy_follows_scipy_skew(make_project) -> None:
    frame = clean_frame()
    rng = np.random.default_rng(3)
    frame["spend"] = rng.lognormal(0, 1.0, N)
    frame.loc[frame.index % 9 == 0, "spend"] = np.nan
    frame.loc[frame.index % 9 == 0, "score"] = np.nan
    found = suggestions(make_project(frame), rules=["impute"])
    for column in ("score", "spend"):
        skew = stats.skew(frame[column].dropna(), bias=False)
        step = found[f"t.impute.{column}"].action
        assert step["strategy"] == ("mean" if abs(skew) < 0.7 else "median"), column
        assert found[f"t.impute.{column}"].evidence["skew"] == pytest.approx(skew, rel=1e-6)
    assert found["t.drop_incomplete_rows"].action["columns"] == ["score", "spend"]


def test_forward_fill_for_a_time_series(make_project) -> None:
    frame = clean_frame()
    frame["user_id"] = np.arange(N) % 20  # 20 rows per entity over time
    frame.loc[frame.index % 7 == 3, "score"] = np.nan
    found = suggestions(make_project(frame), rules=["impute"])
    assert found["t.impute.score"].action["action"] == "forward_fill"


def test_no_drop_incomplete_rows_when_under_70_percent_complete(make_project) -> None:
    frame = _with(score=_nulls(0.45))(clean_frame())
    found = suggestions(make_project(frame), rules=["impute"])
    assert "t.impute.score" in found
    assert "t.drop_incomplete_rows" not in found


def test_outlier_bounds_are_mean_plus_minus_three_std(make_project) -> None:
    frame = _outlier(clean_frame())
    step = suggestions(make_project(frame), rules=["remove_outliers"])[
        "t.remove_outliers.amount"
    ].action
    mean, std = frame["amount"].mean(), frame["amount"].std(ddof=1)
    assert step["lower"] == pytest.approx(mean - 3 * std, rel=1e-9)
    assert step["upper"] == pytest.approx(mean + 3 * std, rel=1e-9)


def test_vif_matches_statsmodels() -> None:
    from statsmodels.stats.outliers_influence import variance_inflation_factor

    rng = np.random.default_rng(5)
    x = rng.normal(size=(300, 3))
    x[:, 2] = x[:, 0] * 0.8 + x[:, 1] * 0.5 + rng.normal(scale=0.3, size=300)
    design = np.column_stack([np.ones(300), x])
    expected = [variance_inflation_factor(design, i) for i in range(1, 4)]
    assert variance_inflation(x) == pytest.approx(expected, rel=1e-8)
    exact = np.column_stack([x[:, 0], x[:, 1], x[:, 0] + x[:, 1]])
    assert np.all(variance_inflation(exact) > 1e6)


def test_collinear_evidence_is_the_statsmodels_vif(make_project) -> None:
    from statsmodels.stats.outliers_influence import variance_inflation_factor

    frame = TRIGGERS["drop_collinear"][0](clean_frame())
    found = suggestions(make_project(frame), rules=["drop_collinear"])
    cols = ["amount", "score", "x1", "x2", "x3"]
    design = np.column_stack([np.ones(N), frame[cols].to_numpy()])
    vif = variance_inflation_factor(design, 1 + cols.index("x3"))
    assert found["t.drop_collinear.x3"].evidence["vif"] == pytest.approx(vif, rel=1e-4)
    # once x3 is gone nothing else is collinear
    assert list(found) == ["t.drop_collinear.x3"]


def test_leakage_auc_matches_sklearn(make_project) -> None:
    from sklearn.metrics import roc_auc_score

    frame = clean_frame()
    rng = np.random.default_rng(9)
    frame["almost"] = frame["label"] + rng.normal(scale=0.05, size=N)
    frame["weak"] = frame["label"] + rng.normal(scale=2.0, size=N)
    found = suggestions(make_project(frame), rules=["leakage"])
    auc = roc_auc_score(frame["label"], frame["almost"])
    assert found["t.leakage.almost"].evidence["roc_auc"] == pytest.approx(auc, abs=1e-4)
    assert "t.leakage.weak" not in found


def test_future_timestamp_is_a_leakage_suspect(make_project) -> None:
    frame = clean_frame()
    frame["cancelled_at"] = frame["signup_at"] + pd.Timedelta(days=3)
    found = suggestions(make_project(frame), rules=["leakage"])
    assert found["t.future_time.cancelled_at"].evidence["rows_after_time"] == N


def test_class_imbalance_is_informational(make_project) -> None:
    found = suggestions(make_project(_imbalanced(clean_frame())), rules=["class_imbalance"])
    note = found["t.class_imbalance.p"]
    assert note.action is None and note.where == "info"
    assert note.evidence["minority_share"] == pytest.approx(0.05)
    assert "PR-AUC" in note.note


def test_preview_shows_the_affected_values(make_project) -> None:
    frame = TRIGGERS["fix_invalid"][0](clean_frame())
    found = suggestions(make_project(frame), rules=["fix_invalid"])
    assert found["t.fix_invalid.email"].preview == ["not-an-email"]
    assert found["t.fix_invalid.email"].evidence["invalid"] == 1


def test_isolation_forest_option_is_recorded_with_its_parameters(make_project) -> None:
    from sklearn.ensemble import IsolationForest

    frame = _outlier(clean_frame())
    root = make_project(frame)
    found = suggestions(root, rules=["remove_outliers"])
    option = found["t.remove_outliers_iforest"]
    step = option.action
    assert step["columns"] == ["amount", "score"]
    assert step["contamination"] == pytest.approx(1 / N)
    # the evidence is what scikit-learn flags with the recorded parameters
    data = frame[["amount", "score"]].sort_values(["amount", "score"]).to_numpy()
    forest = IsolationForest(
        n_estimators=step["n_estimators"],
        contamination=step["contamination"],
        random_state=step["random_state"],
    ).fit(data)
    assert option.evidence["flagged"] == int((forest.predict(data) == -1).sum())
    assert option.preview[0]["amount"] == 10_000.0
    # recorded, the view drops the same rows, the same way every time it is built
    from cycleml import Project

    Project(root).apply_cleaning("t.remove_outliers_iforest")
    counts = []
    for _ in range(2):
        with SourceSet(load_spec(root), root) as sources:
            sources.view("t")
            counts.append(sources.con.sql("SELECT count(*), max(amount) FROM t").fetchall()[0])
    assert counts[0] == counts[1] == (N - option.evidence["flagged"], frame["amount"][1:].max())


def test_text_rules_give_the_same_suggestions_from_profile_counts_own_sql_and_sample_screen(
    make_project, monkeypatch
) -> None:
    """The text rules read the profile's grouped counts (``text_checks``); without them they
    count with their own SQL, and on a large source first screen the columns on a sample. All
    three must give the same suggestions with the same exact evidence."""
    import cycleml.data._cleaning_rules as rules
    from cycleml.data import _profile_columns

    rng = np.random.default_rng(3)
    n = 4000
    frame = pd.DataFrame(
        {
            "user_id": np.arange(n),
            "when": [
                f"{m:02d}/{d:02d}/2024"
                for m, d in zip(rng.integers(1, 13, n), rng.integers(1, 29, n), strict=True)
            ],
            "price": [f"${v:,.2f}" for v in rng.uniform(1, 5000, n)],
            "word": rng.choice(["alpha", "beta", "gamma"], n),
            "plan": rng.choice(["Pro", "pro", "PRO", "free", "Free"], n),
            "contact_email": [f"u{i}@example.com" if i % 50 else "not an email" for i in range(n)],
            "amount": [f"{v:.2f}" if i % 40 else "n/a" for i, v in enumerate(rng.normal(size=n))],
        }
    )
    root = make_project(frame)
    wanted = ["parse_datetime", "currency_to_number", "fix_invalid", "reformat_case"]
    spec = load_spec(root)
    with SourceSet(spec, root) as sources:
        profile = profile_source(sources, "t")
    checks = {c["name"]: c.get("text_checks") for c in profile["columns"]}
    assert checks["when"] and checks["when"]["non_null"] == n
    assert checks["contact_email"]["fits_email"] == n - n // 50
    from_profile = suggestions(root, wanted)
    # No grouped counts in the profile: the rules count with their own SQL ...
    monkeypatch.setattr(_profile_columns, "TOP_GROUP_LIMIT", 2)
    with SourceSet(spec, root) as sources:
        assert all(
            c.get("text_checks") is None
            for c in profile_source(sources, "t")["columns"]
            if c["kind"] == "string"
        )
    own_sql = suggestions(root, wanted)
    # ... and, on a "large" source, screen the columns on a sample first.
    monkeypatch.setattr(rules, "PREFILTER_ROWS", 100)
    monkeypatch.setattr(rules, "PREFILTER_SAMPLE", 500)
    spec = load_spec(root)
    sampled_notes: list[dict] = []
    with SourceSet(spec, root) as sources:
        profile = profile_source(sources, "t")
        screened = {
            s.id: s for s in suggest_cleaning(profile, sources, rules=wanted, sampled=sampled_notes)
        }
        # the screening sample, drawn once for all the rules, is not left behind
        tables = sources.con.sql("SELECT table_name FROM duckdb_tables()").fetchall()
        assert not [t for (t,) in tables if t.startswith("_cycleml_screen_")]
    assert {
        "t.parse_datetime.when",
        "t.currency_to_number.price",
        "t.fix_invalid.contact_email",
        "t.fix_invalid.amount",
        "t.reformat_case.plan",
    } <= set(from_profile)
    assert set(own_sql) == set(screened) == set(from_profile)
    for key, found in from_profile.items():
        assert own_sql[key].evidence == found.evidence == screened[key].evidence, key
        assert own_sql[key].action == found.action == screened[key].action
    assert from_profile["t.fix_invalid.contact_email"].evidence["invalid"] == n // 50
    # the screen is reported as sampled; every count above is exact
    assert any("cleaning rule parse_datetime" in note["statistic"] for note in sampled_notes)
    assert all(note["rows"] == 500 and note["of"] == n for note in sampled_notes)
