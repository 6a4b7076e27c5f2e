"""Learned cleaning steps (impute, encode, log transform, exclusion) inside the model pipeline:
fitted on the training split only, saved with the model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.impute import SimpleImputer

from cycleml import Project
from cycleml.data._learned import FrequencyEncoder, resolve_learned
from cycleml.features import FeatureColumn
from cycleml.spec import parse_spec
from cycleml.train import preprocessor

SPEC = """\
spec_version: 1
name: t
sources:
  t: {path: t.csv, entity: user_id}
  e: {path: e.csv, entity: user_id, time: ts}
features:
  g: {source: t, columns: [age, city, spend, user_code]}
  w: {source: e, windows: [7d], aggregate: {sum: age}}
cleaning:
  - {id: t.impute.age, source: t, action: impute, column: age, strategy: median}
  - {id: t.encode.city, source: t, action: encode, column: city, method: frequency}
  - {id: t.log_transform.spend, source: t, action: log_transform, column: spend}
  - {id: t.exclude_identifier.user_code, source: t, action: exclude_features,
     columns: [user_code], reason: identifier}
  - {id: e.impute.age, source: e, action: impute, column: age, strategy: mean}
"""

COLUMNS = [
    FeatureColumn("age", "g", "number"),
    FeatureColumn("city", "g", "category"),
    FeatureColumn("spend", "g", "number"),
    FeatureColumn("user_code", "g", "category"),
    FeatureColumn("w_sum_age_7d", "w", "number"),
]


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 200
    age = np.r_[rng.uniform(20, 30, 100), rng.uniform(60, 70, 100)]
    age[::7] = np.nan
    return pd.DataFrame(
        {
            "age": age,
            "city": [f"c{i % 3}" if i < 100 else f"c{i % 5}" for i in range(n)],
            "spend": rng.lognormal(0, 1, n),
            "user_code": [f"u{i}" for i in range(n)],
            "w_sum_age_7d": rng.normal(size=n),
        }
    )


def test_steps_resolve_to_entity_columns_of_their_source_only() -> None:
    learned = resolve_learned(parse_spec(SPEC), COLUMNS)
    assert {k: [s.id for s in v] for k, v in learned.items()} == {
        "age": ["t.impute.age"],
        "city": ["t.encode.city"],
        "spend": ["t.log_transform.spend"],
        "user_code": ["t.exclude_identifier.user_code"],
    }


def test_imputation_value_is_the_training_split_median_not_the_full_data() -> None:
    frame = _frame()
    learned = resolve_learned(parse_spec(SPEC), COLUMNS)
    train = frame.iloc[:100]  # ages 20-30; the full data's median is near 45
    prep = preprocessor(COLUMNS, learned).fit(train)
    imputer = prep.named_transformers_["clean_age"].named_steps["simpleimputer"]
    assert isinstance(imputer, SimpleImputer) and imputer.strategy == "median"
    assert imputer.statistics_[0] == pytest.approx(np.nanmedian(train["age"]))
    assert imputer.statistics_[0] != pytest.approx(np.nanmedian(frame["age"]))


def test_frequency_encoding_log_transform_and_exclusion() -> None:
    frame = _frame()
    learned = resolve_learned(parse_spec(SPEC), COLUMNS)
    train = frame.iloc[:100]
    prep = preprocessor(COLUMNS, learned).fit(train)
    out = pd.DataFrame(prep.transform(frame), columns=prep.get_feature_names_out())
    assert "city_frequency" in out.columns
    assert not any(name.startswith("user_code") for name in out.columns)
    expected = train["city"].value_counts(normalize=True)
    assert out["city_frequency"].iloc[0] == pytest.approx(expected[frame["city"].iloc[0]])
    unseen = frame.index[~frame["city"].isin(train["city"])][0]
    assert out["city_frequency"].iloc[unseen] == 0.0
    logged = np.log1p(train["spend"])
    scaled = (np.log1p(frame["spend"]) - logged.mean()) / logged.std(ddof=0)
    assert out["spend"].to_numpy() == pytest.approx(scaled.to_numpy())


def test_target_encoding_is_cross_fitted_on_the_training_rows() -> None:
    spec = parse_spec(SPEC.replace("method: frequency", "method: target"))
    frame = _frame()
    y = (frame["city"].isin(["c0", "c1"])).astype(int).to_numpy()
    prep = preprocessor(COLUMNS, resolve_learned(spec, COLUMNS))
    prep.fit(frame.iloc[:150], y[:150])
    encoder = prep.named_transformers_["clean_city"].named_steps["targetencoder"]
    assert set(encoder.categories_[0]) == set(frame["city"].iloc[:150])


def test_frequency_encoder_fits_only_what_it_is_given() -> None:
    enc = FrequencyEncoder().fit(pd.DataFrame({"c": ["a", "a", "b", "c"]}))
    assert enc.transform(pd.DataFrame({"c": ["a", "z"]})).ravel().tolist() == [0.5, 0.0]


@pytest.mark.slow
def test_train_puts_the_recorded_imputation_in_the_model(demo_project: Path) -> None:
    text = (demo_project / "cycleml.yaml").read_text()
    text = text.replace("algorithms: [baseline, logistic, lightgbm]", "algorithms: [logistic]")
    (demo_project / "cycleml.yaml").write_text(text)
    project = Project(demo_project)
    project.apply_cleaning("users.impute.age")
    project = Project(demo_project)
    outcome = project.train("churn")
    _, bundle = project.load_model("churn", outcome.model.version)
    prep = bundle.pipeline.named_steps["prepare"]
    imputer = prep.named_transformers_["clean_age"].named_steps["simpleimputer"]
    assert imputer.strategy == "median"
    ages = pd.read_parquet(demo_project / "data/users.parquet")["age"]
    assert ages.min() <= imputer.statistics_[0] <= ages.max()
