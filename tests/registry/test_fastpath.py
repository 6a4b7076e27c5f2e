"""The compiled fast scorer for small inputs gives the pipeline's answers (within 1e-9), and
anything it does not support falls back to the pipeline with the same answers."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest

from cycleml.features import FeatureColumn
from cycleml.registry import ModelBundle
from cycleml.registry._fastpath import MAX_ROWS, compile_scorer
from cycleml.spec._cleaning import Encode, Impute, LogTransform
from cycleml.train import prepare_frame
from cycleml.train._candidates import make_pipeline_for
from cycleml.train._kit import predict_scores

ALGORITHMS = ("baseline", "logistic", "random_forest", "hist_gradient_boosting", "lightgbm")
SMALL = {  # fewer trees: the test is about equality, not model quality
    "random_forest": {"n_estimators": 15},
    "hist_gradient_boosting": {"max_iter": 20},
    "lightgbm": {"n_estimators": 30},
}
COLUMNS = [
    FeatureColumn("age", "users", "number"),
    FeatureColumn("spend", "users", "number"),
    FeatureColumn("visits", "users", "number"),  # all missing in training for some tests
    FeatureColumn("plan", "users", "category"),
    FeatureColumn("city", "users", "category"),
    FeatureColumn("device", "users", "category"),
]
CITIES = [f"c{i}" for i in range(40)]  # > max_categories: infrequent ones are grouped


def _training(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.normal(40, 12, n)
    age[rng.random(n) < 0.1] = np.nan
    spend = rng.lognormal(3, 1, n)
    spend[rng.random(n) < 0.05] = np.nan
    plan = rng.choice(["free", "pro", "team"], n).astype(object)
    plan[rng.random(n) < 0.1] = None
    city = rng.choice(
        CITIES, n, p=np.linspace(1, 0.05, len(CITIES)) / np.linspace(1, 0.05, 40).sum()
    )
    device = rng.choice(["ios", "android"], n).astype(object)
    return pd.DataFrame(
        {
            "age": age,
            "spend": spend,
            "visits": rng.poisson(3, n).astype(float),
            "plan": plan,
            "city": city.astype(object),
            "device": device,
        }
    )


def _labels(frame: pd.DataFrame, task: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed + 1)
    signal = np.nan_to_num(frame["age"].to_numpy(), nan=40) / 40 + (frame["plan"] == "pro") * 0.8
    signal = signal + rng.normal(0, 0.5, len(frame))
    if task == "binary":
        return (signal > np.median(signal)).astype(int)
    if task == "multiclass":
        return np.digitize(signal, np.quantile(signal, [0.33, 0.66]))
    return signal * 10.0


def _requests(seed: int) -> pd.DataFrame:
    """Rows as scoring sees them: unseen categories, None strings, NaN numbers, numbers as
    strings, a missing value in every column, and ordinary rows."""
    rows = [
        {"age": 30.0, "spend": 12.5, "visits": 2.0, "plan": "pro", "city": "c0", "device": "ios"},
        {"age": None, "spend": None, "visits": None, "plan": None, "city": None, "device": None},
        {"age": np.nan, "spend": 1e6, "visits": 0.0, "plan": "gold", "city": "nowhere"},
        {"age": 99.0, "spend": 0.0, "visits": 7.0, "plan": "team", "city": "c39", "device": "web"},
        {"age": -5.0, "spend": 3.0, "visits": np.nan, "plan": "free", "city": "c20"},
    ]
    frame = pd.DataFrame.from_records(rows)
    extra = _training(20, seed + 7)
    return pd.concat([frame, extra], ignore_index=True)


def _cleaning() -> dict:
    return {
        "spend": [
            Impute(id="i1", source="users", action="impute", column="spend", strategy="mean"),
            LogTransform(id="l1", source="users", action="log_transform", column="spend"),
        ],
        "visits": [
            Impute(
                id="i2",
                source="users",
                action="impute",
                column="visits",
                strategy="constant",
                fill_value=1.5,
            )
        ],
        "city": [Encode(id="e1", source="users", action="encode", column="city", method="target")],
        "device": [
            Impute(
                id="i3",
                source="users",
                action="impute",
                column="device",
                strategy="most_frequent",
            ),
            Encode(id="e2", source="users", action="encode", column="device", method="frequency"),
        ],
    }


def _bundle(algorithm: str, task: str, *, cleaning=None, seed: int = 0) -> ModelBundle:
    train = _training(600, seed)
    y = _labels(train, task, seed)
    pipe = make_pipeline_for(
        algorithm,
        task,
        COLUMNS,
        seed=seed,
        threads=1,
        params=SMALL.get(algorithm),
        cleaning=cleaning,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe.fit(prepare_frame(train, COLUMNS), y)
    classes = sorted(int(v) for v in np.unique(y)) if task == "multiclass" else None
    return ModelBundle(
        problem="p",
        task=task,
        algorithm=algorithm,
        pipeline=pipe,
        columns=COLUMNS,
        threshold=0.5 if task == "binary" else None,
        entity="user_id",
        classes=classes,
    )


ANCHOR = {"age": 41.0, "spend": 9.0, "visits": 3.0, "plan": "pro", "city": "c1", "device": "ios"}


def _pipeline_outputs(bundle: ModelBundle, frame: pd.DataFrame, anchored: bool = True):
    """The pipeline's answers for the rows of ``frame``, scored together with one more row that
    has a value in every column (dropped from the answer). Without it, a category column that is
    missing in every row of ``frame`` (one record with a None) reaches scikit-learn as an object
    column of None, which its imputer does not fill (it fills NaN of string columns, as in
    training): see ``test_missing_category_of_one_record_is_imputed_as_in_training``."""
    anchor = {
        c.name: ANCHOR.get(c.name, 1.0 if c.kind == "number" else "x") for c in bundle.columns
    }
    padded = pd.concat([frame, pd.DataFrame([anchor])], ignore_index=True) if anchored else frame
    x = prepare_frame(padded, bundle.columns)
    rows = slice(0, len(frame))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unseen categories
        if bundle.task == "multiclass":
            proba = predict_scores(bundle.pipeline, x, "multiclass", len(bundle.classes))[rows]
            return proba, np.asarray(bundle.classes, dtype=object)[proba.argmax(axis=1)]
        scores = predict_scores(bundle.pipeline, x, bundle.task)[rows]
        return scores, bundle.labels(scores)


def _check_equal(bundle: ModelBundle, frame: pd.DataFrame, anchored: bool = True) -> None:
    expected_scores, expected_labels = _pipeline_outputs(bundle, frame, anchored)
    scores, labels = bundle.outputs(frame)
    if bundle.task == "multiclass":
        got = bundle.probabilities(frame).to_numpy()
        np.testing.assert_allclose(got, expected_scores, rtol=0, atol=1e-9)
        expected_scores = expected_scores.max(axis=1)
    np.testing.assert_allclose(scores, expected_scores, rtol=0, atol=1e-9)
    if expected_labels is None:
        assert labels is None
    else:
        assert list(labels) == list(expected_labels)
    np.testing.assert_allclose(bundle.score(frame), expected_scores, rtol=0, atol=1e-9)


@pytest.mark.parametrize("task", ["binary", "regression", "multiclass"])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_fast_scores_equal_pipeline_single_rows_and_small_batches(algorithm, task):
    bundle = _bundle(algorithm, task)
    assert bundle.fastpath is None, bundle.fastpath  # compiled: the fast path is what runs
    frame = _requests(1)
    for i in range(len(frame)):
        _check_equal(bundle, frame.iloc[[i]])
    _check_equal(bundle, frame)
    assert "fastpath_error" not in bundle.__dict__


@pytest.mark.parametrize("task", ["binary", "regression"])
@pytest.mark.parametrize("algorithm", ["logistic", "lightgbm"])
def test_fast_scores_equal_pipeline_with_learned_cleaning(algorithm, task):
    bundle = _bundle(algorithm, task, cleaning=_cleaning(), seed=3)
    names = [name for name, _, _ in bundle.pipeline.named_steps["prepare"].transformers_]
    assert {"clean_spend", "clean_visits", "clean_city", "clean_device"} <= set(names)
    assert bundle.fastpath is None, bundle.fastpath
    frame = _requests(2)
    for i in range(len(frame)):
        _check_equal(bundle, frame.iloc[[i]])
    _check_equal(bundle, frame)


def test_fast_matrix_is_the_pipeline_feature_matrix():
    bundle = _bundle("logistic", "binary", cleaning=_cleaning(), seed=5)
    scorer, reason = compile_scorer(bundle.pipeline, bundle.columns)
    assert reason is None
    frame = _requests(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = bundle.pipeline.named_steps["prepare"].transform(
            prepare_frame(frame, bundle.columns)
        )
    np.testing.assert_allclose(scorer.matrix(frame), expected, rtol=0, atol=1e-12)


def test_missing_input_column_and_numbers_as_strings():
    bundle = _bundle("lightgbm", "binary", seed=4)
    frame = _requests(4).drop(columns=["device"])
    frame["age"] = frame["age"].map(lambda v: None if pd.isna(v) else str(v)).astype(object)
    frame.loc[0, "age"] = "not a number"
    _check_equal(bundle, frame.iloc[[0]])
    _check_equal(bundle, frame)


def test_unsupported_step_falls_back_to_pipeline_with_identical_results():
    from sklearn.preprocessing import QuantileTransformer

    bundle = _bundle("logistic", "binary", seed=6)
    number = bundle.pipeline.named_steps["prepare"].named_transformers_["number"]
    # swap the fitted scaler for another fitted transformer the fast path does not know
    prepared = prepare_frame(_training(600, 6), COLUMNS)[["age", "spend", "visits"]]
    quantile = QuantileTransformer(n_quantiles=50).fit(number[:-1].transform(prepared))
    number.steps[-1] = ("quantiletransformer", quantile)
    bundle.__dict__.pop("_fastpath", None)
    assert bundle.fastpath is not None and "QuantileTransformer" in bundle.fastpath
    frame = _requests(6)
    for i in range(3):  # the pipeline as such, also for one record with missing categories
        _check_equal(bundle, frame.iloc[[i]], anchored=False)
    _check_equal(bundle, frame, anchored=False)


def test_large_batches_use_the_pipeline(monkeypatch):
    bundle = _bundle("logistic", "regression", seed=7)
    frame = _training(MAX_ROWS + 1, 8)
    calls = []
    scorer = bundle._fast_scorer()
    monkeypatch.setattr(scorer, "matrix", lambda f: calls.append(len(f)) or 1 / 0)
    _check_equal(bundle, frame)
    assert calls == []  # never asked for more than MAX_ROWS rows
    bundle.outputs(frame.iloc[:2])  # a small batch asks it (and survives its failure)
    assert calls == [2]
    assert "ZeroDivisionError" in bundle.__dict__["fastpath_error"]


def test_bundle_pickles_without_the_compiled_scorer_and_old_pickles_load(tmp_path):
    bundle = _bundle("lightgbm", "multiclass", seed=9)
    frame = _requests(9).iloc[[0]]
    before = bundle.outputs(frame)
    assert "_fastpath" in bundle.__dict__
    path = tmp_path / "model.joblib"
    bundle.save(path)
    assert "_fastpath" not in pickle.loads(pickle.dumps(bundle)).__dict__  # never saved
    loaded = ModelBundle.load_unverified(path)
    assert loaded.__dict__["_fastpath"] is not None  # compiled again at load
    after = loaded.outputs(frame)
    np.testing.assert_allclose(after[0], before[0], rtol=0, atol=1e-12)
    assert list(after[1]) == list(before[1])
    # a bundle pickled before the fast path existed: a plain __dict__ without its keys
    old = pickle.loads(pickle.dumps(bundle))
    for key in ("_fastpath", "fastpath_reason"):
        assert key not in old.__dict__
    assert old.fastpath is None


def test_trained_demo_model_scores_equal_through_fast_path(trained_demo):
    from cycleml import Project

    project = Project(trained_demo)
    try:
        version = project.registry.get("churn")
        bundle = project.registry.load(version)
        assert bundle.fastpath is None, bundle.fastpath
        rng = np.random.default_rng(0)
        rows = []
        for i in range(8):
            row = {}
            for col in bundle.columns:
                if col.kind == "number":
                    row[col.name] = None if i == 1 else float(rng.normal(3, 2))
                else:
                    row[col.name] = None if i == 2 else f"value{i % 3}"
            rows.append(row)
        frame = pd.DataFrame.from_records(rows, columns=bundle.feature_names)
        for i in range(len(frame)):
            _check_equal(bundle, frame.iloc[[i]])
        _check_equal(bundle, frame)
    finally:
        project.close()


def test_missing_category_of_one_record_is_imputed_as_in_training():
    """A category missing from one record alone gets the imputed ``__missing__`` category, as
    in a batch and in training, through the pipeline and through the fast path (scikit-learn's
    imputer does not see None in an object column: ``prepare_frame`` must give NaN)."""
    bundle = _bundle("logistic", "binary", seed=10)
    record = pd.DataFrame.from_records([{**ANCHOR, "plan": None}])
    batch = pd.concat([record, pd.DataFrame([ANCHOR])], ignore_index=True)
    alone = predict_scores(bundle.pipeline, prepare_frame(record, COLUMNS), "binary")
    in_batch = predict_scores(bundle.pipeline, prepare_frame(batch, COLUMNS), "binary")
    np.testing.assert_allclose(alone, in_batch[:1], rtol=0, atol=1e-12)
    fast, _ = bundle.outputs(record)
    assert bundle.fastpath is None
    np.testing.assert_allclose(fast, in_batch[:1], rtol=0, atol=1e-9)


def _records(seed: int) -> list[dict]:
    """Records as the online service passes them: JSON values, None for missing."""
    frame = _requests(seed)
    out = [
        {
            k: (None if pd.isna(v) else (float(v) if isinstance(v, float) else v))
            for k, v in r.items()
        }
        for r in frame.to_dict("records")
    ]
    out.append({**ANCHOR, "age": 7, "plan": 3, "device": True})  # ints for a number/categories
    out.append({"age": 1.0, "plan": "pro"})  # keys left out
    return out


@pytest.mark.parametrize("task", ["binary", "regression", "multiclass"])
def test_records_score_as_their_frame(task):
    bundle = _bundle("lightgbm", task, cleaning=_cleaning(), seed=11)
    records = _records(11)
    for record in records:
        frame = pd.DataFrame.from_records([record], columns=bundle.feature_names)
        expected = bundle.outputs(frame)
        got = bundle.outputs_records([record])
        np.testing.assert_allclose(got[0], expected[0], rtol=0, atol=1e-12)
        assert (got[1] is None) == (expected[1] is None)
        if got[1] is not None:
            assert list(got[1]) == list(expected[1])
    batch = records[:6]
    frame = pd.DataFrame.from_records(batch, columns=bundle.feature_names)
    np.testing.assert_allclose(
        bundle.outputs_records(batch)[0], bundle.outputs(frame)[0], rtol=0, atol=1e-12
    )
    assert "fastpath_error" not in bundle.__dict__
    # and through the pipeline (no compiled scorer): the same answers
    bundle.__dict__["_fastpath"] = None
    np.testing.assert_allclose(
        bundle.outputs_records(batch)[0],
        _pipeline_outputs(bundle, frame)[0].max(axis=1)
        if task == "multiclass"
        else _pipeline_outputs(bundle, frame)[0],
        rtol=0,
        atol=1e-9,
    )


ITEM = FeatureColumn("item_id", "item", "category")


@pytest.mark.parametrize(
    ("algorithm", "task"),
    [("lightgbm", "ranking"), ("logistic", "ranking"), ("hist_gradient_boosting", "forecast")],
)
def test_item_statistics_models_score_as_pipeline(algorithm, task):
    """Ranking and forecast models learn per-item statistics (ItemStats) inside the pipeline."""
    columns = [*COLUMNS, ITEM]
    train = _training(600, 12)
    rng = np.random.default_rng(12)
    train["item_id"] = rng.choice([f"i{k}" for k in range(25)], len(train)).astype(object)
    train.loc[train.index[:5], "item_id"] = None
    y = _labels(train, "binary" if task == "ranking" else "regression", 12)
    pipe = make_pipeline_for(
        algorithm, task, columns, seed=0, threads=1, params=SMALL.get(algorithm)
    )
    fit = {"model__group": [20] * 30} if algorithm == "lightgbm" else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe.fit(prepare_frame(train, columns), y, **fit)
    bundle = ModelBundle("p", task, algorithm, pipe, columns, None, "user_id")
    assert bundle.fastpath is None, bundle.fastpath
    frame = _requests(12)
    frame["item_id"] = ["i3", "new-item", None] + [f"i{k % 30}" for k in range(len(frame) - 3)]
    for i in range(len(frame)):
        _check_equal(bundle, frame.iloc[[i]])
    _check_equal(bundle, frame)


def test_item_baseline_keeps_the_pipeline():
    columns = [*COLUMNS, ITEM]
    train = _training(200, 13)
    train["item_id"] = np.where(np.arange(200) % 2 == 0, "a", "b").astype(object)
    pipe = make_pipeline_for("baseline", "forecast", columns, seed=0, threads=1)
    pipe.fit(prepare_frame(train, columns), _labels(train, "regression", 13))
    bundle = ModelBundle("p", "forecast", "baseline", pipe, columns, None, "user_id")
    assert "ColumnTransformer" in bundle.fastpath  # the item mean alone: no preparation step
    frame = _requests(13).iloc[[0, 1]].assign(item_id=["a", "zz"])
    _check_equal(bundle, frame, anchored=False)
