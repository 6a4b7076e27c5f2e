"""A multiclass problem of the demo (the users' plan, as `cycleml suggest` proposes it) through
Project: train, register with its class values, report, compare on accuracy, score."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn import metrics as skm

from cycleml import Project
from cycleml.features import load_dataset
from cycleml.train import split_for

PLAN = """\
  users_plan:
    entity: user_id
    task: multiclass
    label: {kind: column, source: users, column: plan}
    metric: {name: accuracy}
    features: [activity, channels, users_profile]

features:
  users_profile:
    source: users
    columns: [country, age]
    dates: {signup_at: [month, days_since]}
"""


def test_demo_multiclass_trains_reports_compares_and_outputs_class_values(demo_project):
    spec = demo_project / "cycleml.yaml"
    spec.write_text(
        spec.read_text(encoding="utf-8").replace("\nfeatures:\n", "\n" + PLAN, 1),
        encoding="utf-8",
    )
    project = Project(demo_project)
    first = project.train("users_plan", budget=5)
    classes = first.result.classes
    assert classes == ["basic", "free", "pro"]
    assert json.loads(json.dumps(first.to_dict()))["classes"] == classes
    assert "accuracy" in first.result.split["selected_by"]
    html = first.report.read_text(encoding="utf-8")
    assert "Per class (test)" in html and "Confusion matrix" in html
    bundle = project.registry.load(first.model)
    assert bundle.classes == classes
    frame = load_dataset(first.dataset, project.artifacts)
    problem = project.spec.problems["users_plan"]
    test = frame.iloc[split_for(frame, problem, project.spec.training, 0).test]
    scores, labels = bundle.outputs(test)
    assert set(labels) <= set(classes)
    assert first.model.metrics["accuracy"] == pytest.approx(
        skm.accuracy_score(test["label"], labels)
    )
    proba = bundle.probabilities(test)
    np.testing.assert_allclose(scores, proba.max(axis=1))
    second = project.train("users_plan", budget=4)
    result = project.compare("users_plan", second.model.version, first.model.version)
    assert result["metric"] == "accuracy" and result["rows"] == len(test)
    assert result["versions"][1]["value"] == pytest.approx(first.model.metrics["accuracy"])
    project.close()
