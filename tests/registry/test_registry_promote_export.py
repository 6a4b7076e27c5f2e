"""Registry: lineage (artifact size and sha256), compare on the same test rows, promotion
guarded by the champion, and export as an MLflow pyfunc directory."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import yaml
from sklearn import metrics as skm
from sklearn.dummy import DummyClassifier
from sklearn.pipeline import Pipeline

from cycleml import Project
from cycleml.errors import ModelError, RequestError
from cycleml.features import FeatureColumn, get_dataset, load_dataset
from cycleml.features._labels import label_horizon_days
from cycleml.registry import ModelBundle
from cycleml.store._artifacts import sha256_file
from cycleml.train import TrainResult, make_split, prepare_frame, preprocessor


@pytest.fixture
def with_worse_challenger(trained_copy: Path):
    """The trained demo (v1 in production) plus v2: a majority-class model, registered."""
    project = Project(trained_copy)
    champion = project.model("churn")
    dataset = get_dataset(project.store, champion.dataset_version_id)
    frame = load_dataset(dataset, project.artifacts)
    columns = [FeatureColumn(f["name"], f["group"], f["kind"]) for f in dataset.features]
    pipe = Pipeline([("prepare", preprocessor(columns)), ("model", DummyClassifier())])
    pipe.fit(prepare_frame(frame, columns), frame["label"].astype(int))
    result = TrainResult("baseline", pipe, "binary", 0.5, "fixed", {"roc_auc": 0.5}, [], {})
    bundle = ModelBundle("churn", "binary", "baseline", pipe, columns, 0.5, "user_id")
    project.registry.register("churn", dataset.id, result, bundle)
    yield project, frame
    project.close()


def test_lineage_records_artifact_size_and_sha256(trained_demo: Path):
    project = Project(trained_demo)
    try:
        mv = project.model("churn")
        path = project.artifacts.root / "models" / f"churn-v{mv.version}.joblib"
        assert mv.artifact_size == path.stat().st_size
        assert mv.artifact_sha256 == sha256_file(path)
        assert mv.to_dict()["artifact_size"] == mv.artifact_size
        assert mv.params and mv.code_version and mv.training_seconds > 0
    finally:
        project.close()


def test_compare_scores_both_versions_on_the_same_test_rows(with_worse_challenger):
    project, frame = with_worse_challenger
    result = project.compare("churn", 1, 2)
    spec = project.spec
    split = make_split(
        frame,
        method=spec.training.split,
        test_size=spec.training.test_size,
        horizon_days=label_horizon_days(spec.problems["churn"]),
        seed=spec.training.seed,
        classify=True,
    )
    test = frame.iloc[split.test]
    _, champion = project.load_model("churn", 1)
    assert result["rows"] == len(test) and result["metric"] == "roc_auc"
    one, two = result["versions"]
    expected = skm.roc_auc_score(test["label"].astype(int), champion.score(test))
    assert one["value"] == pytest.approx(expected)
    assert two["value"] == pytest.approx(0.5)
    assert one["best"] and not two["best"]
    assert "both versions" in result["basis"]


def test_promote_refuses_a_worse_challenger_unless_forced(with_worse_challenger):
    project, _ = with_worse_challenger
    with pytest.raises(ModelError) as info:
        project.promote("churn", 2)
    assert "does not beat" in info.value.message and "--force" in info.value.hint
    assert project.model("churn").version == 1  # nothing changed
    # other stages are not guarded
    assert project.promote("churn", 2, stage="staging").stage == "staging"
    promoted = project.promote("churn", 2, force=True)
    assert promoted.stage == "production"
    assert project.model("churn", 1).stage == "archived"
    # the old champion beats the current one: promoting it back needs no force
    assert project.promote("churn", 1).stage == "production"


def test_export_writes_an_mlflow_pyfunc_directory(trained_demo: Path, tmp_path: Path):
    project = Project(trained_demo)
    try:
        mv, bundle = project.load_model("churn")
        dest = project.export("churn", mv.version, tmp_path / "mlflow-model")
        mlmodel = yaml.safe_load((dest / "MLmodel").read_text())
        flavor = mlmodel["flavors"]["python_function"]
        assert flavor["loader_module"] == "cycleml.registry._mlflow"
        assert (dest / flavor["data"]).is_file()
        assert sha256_file(dest / flavor["data"]) == mv.artifact_sha256
        for name in ("conda.yaml", "python_env.yaml", "requirements.txt"):
            assert (dest / name).is_file()
        assert "cycleml==" in (dest / "requirements.txt").read_text()
        dataset = get_dataset(project.store, mv.dataset_version_id)
        frame = load_dataset(dataset, project.artifacts).head(50)
        # what MLflow does on load: import the loader module, call _load_pyfunc(data path)
        module = importlib.import_module(flavor["loader_module"])
        model = module._load_pyfunc(str(dest / flavor["data"]))
        np.testing.assert_allclose(model.predict(frame), bundle.score(frame))
        with pytest.raises(RequestError):
            project.export("churn", mv.version, dest)  # not empty
        with pytest.raises(RequestError):
            project.export("churn", mv.version, tmp_path / "x", format="onnx")
        if importlib.util.find_spec("mlflow") is not None:
            import mlflow.pyfunc

            loaded = mlflow.pyfunc.load_model(str(dest))
            np.testing.assert_allclose(np.asarray(loaded.predict(frame)), bundle.score(frame))
    finally:
        project.close()


def test_cli_models_show_compare_export_and_a_tiny_budget(trained_copy: Path, tmp_path: Path):
    import json

    from typer.testing import CliRunner

    from cycleml.cli import app

    runner = CliRunner()
    root = str(trained_copy)
    shown = json.loads(runner.invoke(app, ["models", "show", "churn", "-p", root, "--json"]).stdout)
    assert shown["name"] == "churn-v1" and shown["artifact_size"] > 0
    compared = runner.invoke(app, ["models", "compare", "churn", "1", "1", "-p", root, "--json"])
    body = json.loads(compared.stdout)
    assert body["versions"][0]["metrics"] == body["versions"][1]["metrics"]
    dest = tmp_path / "exported"
    result = runner.invoke(app, ["models", "export", "churn", "1", "--to", str(dest), "-p", root])
    assert result.exit_code == 0 and (dest / "MLmodel").is_file()
    # a budget too small to train anything: exit code 7, a message and a hint, nothing registered
    result = runner.invoke(app, ["train", "churn", "--budget", "0.001", "-p", root])
    assert result.exit_code == 7, result.output
    assert "too small" in result.stderr and "Traceback" not in result.output
    project = Project(trained_copy)
    try:
        assert [v.version for v in project.models("churn")] == [1]
    finally:
        project.close()


def test_the_training_report_is_offline_html_with_its_charts(trained_demo: Path):
    html = (trained_demo / ".cycleml" / "reports" / "churn-v1.html").read_text()
    assert html.count("plotly.js v") == 1  # the library inlined once
    assert "<script src=" not in html  # nothing fetched from the network
    for heading in (
        "Leaderboard",
        "ROC curve",
        "Precision-recall curve",
        "Calibration",
        "Confusion matrix",
        "Importance",
        "Suggestions",
    ):
        assert f"<h2>{heading}" in html
