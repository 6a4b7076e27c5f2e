"""The demo's ranking problem (what `cycleml suggest` proposes on the impressions) end to end:
train, register, compare on NDCG, promote, and score rows of entity features + item."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from cycleml import Project
from cycleml.errors import DataError, ModelError
from cycleml.features import load_dataset
from cycleml.train import split_for

RANKING = """\
  click_impressions:
    entity: user_id
    task: ranking
    label: {kind: click, source: impressions, item: product_id, column: clicked}
    metric: {name: pr_auc}
    features: [profile, activity, impressions_activity]

features:
  impressions_activity:
    source: impressions
    windows: [7d, 30d]
    aggregate: {count: '*'}
    recency: true
"""


def _with_ranking(root):
    spec = root / "cycleml.yaml"
    text = spec.read_text(encoding="utf-8").replace("\nfeatures:\n", "\n" + RANKING, 1)
    spec.write_text(text, encoding="utf-8")
    return Project(root)


def _algorithms(root, algorithms: str) -> Project:
    spec = root / "cycleml.yaml"
    text = spec.read_text(encoding="utf-8")
    assert "algorithms: [baseline, logistic, lightgbm]" in text
    spec.write_text(text.replace("[baseline, logistic, lightgbm]", algorithms), encoding="utf-8")
    return Project(root)


def test_demo_ranking_trains_registers_compares_promotes_and_scores(demo_project):
    project = _with_ranking(demo_project)
    first = project.train("click_impressions", budget=6)
    assert first.model.stage == "production"  # the first version
    metrics = first.result.metrics
    assert {"ndcg@10", "map@10", "groups"} <= set(metrics)
    assert [f["name"] for f in first.model.features][-1] == "product_id"
    assert first.model.features[-1]["group"] == "item"
    # the stored NDCG@10 is the registered model's on the test groups, by scikit-learn
    bundle = project.registry.load(project.model("click_impressions"))
    frame = load_dataset(first.dataset, project.artifacts)
    problem = project.spec.problems["click_impressions"]
    test = frame.iloc[split_for(frame, problem, project.spec.training, 0).test]
    assert len(test) == metrics["rows"] and test["as_of"].min() > frame["as_of"].min()
    rows = test.drop(columns=["label", "group"])  # entity features + the item column
    scores, labels = bundle.outputs(rows)
    assert labels is None and np.isfinite(scores).all()
    per_group = [
        skm.ndcg_score([test.label[m]], [scores[m.to_numpy()]], k=10)
        for g in test.group.unique()
        if test.label[(m := test.group == g)].sum()
    ]
    assert metrics["ndcg@10"] == pytest.approx(np.mean(per_group))
    assert metrics["groups_scored"] == len(per_group)
    # a second version, then the champion comparison on NDCG@10 over the same test groups
    project.close()
    project = _algorithms(demo_project, "[baseline, logistic]")
    second = project.train("click_impressions", budget=4)
    assert second.model.stage == "staging"
    result = project.compare("click_impressions", second.model.version, first.model.version)
    assert result["metric"] == "ndcg@10" and result["rows"] == metrics["rows"]
    challenger, champion = result["versions"]
    assert champion["value"] == pytest.approx(metrics["ndcg@10"])
    if challenger["value"] >= champion["value"]:
        promoted = project.promote("click_impressions", second.model.version)
        assert promoted.stage == "production"
    else:
        with pytest.raises(ModelError, match="ndcg@10"):
            project.promote("click_impressions", second.model.version)
        assert project.model("click_impressions").version == first.model.version
    project.close()


IMPS = """\
imp_id,user_id,product_id,ts,clicked
{rows}
"""

SPEC = """\
spec_version: 1
name: rank
sources:
  imps: {path: data/imps.csv, entity: user_id, time: ts}
problems:
  rank:
    entity: user_id
    task: ranking
    label: {kind: click, source: imps, item: product_id, column: clicked, group: imp_id}
    features: [seen]
features:
  seen: {source: imps, windows: [7d], aggregate: {count: "*"}}
"""


def test_ranking_with_one_item_per_group_is_refused_and_nothing_is_registered(write_project):
    rows = "\n".join(
        f"i{i},u{i % 5},p{i % 7},2024-03-{1 + i // 10:02d} {i % 10:02d}:00:00,{int(i % 3 == 0)}"
        for i in range(60)
    )
    project = Project(write_project(SPEC, {"data/imps.csv": IMPS.format(rows=rows)}))
    with pytest.raises(DataError, match="one item only"):
        project.train("rank", budget=5)
    assert project.models("rank") == []
    project.close()
