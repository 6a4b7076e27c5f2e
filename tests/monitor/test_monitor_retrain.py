"""The retrain loop on the demo product: a champion trained on a crippled feature set loses to a
challenger that has the signal and is replaced; a worse challenger is kept out; a gain within
the margin keeps the champion; a challenger that fails to train leaves the champion in
production and registers nothing; decisions are stored with lineage (CLI, schedule)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from cycleml import Project
from cycleml.cli import app
from cycleml.errors import DataError
from cycleml.features import AS_OF_COLUMN, LABEL_COLUMN, get_dataset, load_dataset
from cycleml.features._labels import label_horizon_days
from cycleml.store.tables import model_versions, retrain_decisions
from cycleml.train import split_for

runner = CliRunner()
FULL = "features: [profile, activity, channels]"
CRIPPLED = "features: [profile]"  # plan, country, age, signup date: little churn signal
AS_OF = datetime(2026, 6, 1)


def _spec(root: Path, features: str, monitoring: str = "", training: str = "") -> None:
    """The demo spec with ``features``, fast training (no tuning) and a ``monitoring:`` block."""
    path, original = root / "cycleml.yaml", root / "demo-spec.yaml"
    if not original.exists():
        original.write_text(path.read_text(), encoding="utf-8")
    text = (
        original.read_text()
        .replace(FULL, features)
        .replace(
            "algorithms: [baseline, logistic, lightgbm]",
            "algorithms: [baseline, logistic]\n  tune: {timeout: 3, top: 0}" + training,
        )
    )
    path.write_text(text + (f"monitoring:\n{monitoring}" if monitoring else ""), encoding="utf-8")


def _champion(root: Path, features: str) -> tuple[int, int]:
    """Train the champion on ``features`` and score a batch; (its id, how many versions)."""
    _spec(root, features)
    project = Project(root)
    try:
        model = project.train("churn").model
        project.predict_batch("churn", as_of=AS_OF)
        return model.id, len(project.models("churn"))
    finally:
        project.close()


def _stages(project: Project) -> dict[int, str]:
    with project.store.connect() as conn:
        rows = conn.execute(sa.select(model_versions.c.id, model_versions.c.stage)).all()
    return {r.id: r.stage for r in rows}


def _decisions(project: Project) -> list[dict]:
    with project.store.connect() as conn:
        rows = conn.execute(sa.select(retrain_decisions).order_by(retrain_decisions.c.id)).all()
    return [dict(r._mapping) for r in rows]


def _eval_rows(project: Project, champion_id: int, challenger_id: int) -> pd.DataFrame:
    """Recomputed here: the new dataset's test split minus the champion's fit + valid rows."""
    spec_problem = project.spec.problems["churn"]
    horizon = label_horizon_days(spec_problem)
    ids = {mv.id: mv for mv in project.models("churn")}
    frames = []
    for model_id in (champion_id, challenger_id):
        dataset = get_dataset(project.store, ids[model_id].dataset_version_id)
        frame = load_dataset(dataset, project.artifacts)
        frames.append((frame, split_for(frame, spec_problem, project.spec.training, horizon)))
    (old, old_split), (new, new_split) = frames
    seen = old.iloc[np.concatenate([old_split.fit, old_split.valid])]
    seen_keys = set(zip(seen["user_id"], seen[AS_OF_COLUMN], strict=True))
    test = new.iloc[new_split.test]
    keep = [k not in seen_keys for k in zip(test["user_id"], test[AS_OF_COLUMN], strict=True)]
    return test[keep]


def test_a_better_challenger_is_promoted_on_an_alert_with_lineage(demo_project: Path) -> None:
    champion_id, _ = _champion(demo_project, CRIPPLED)
    _spec(
        demo_project,
        FULL,
        "  domain_classifier: false\n  retrain: {margin: 0.02}\n"
        "  rules: {age_moves: {metric: features.age.statistic, above: -1}}\n",
    )
    project = Project(demo_project)
    try:
        result = project.monitor_and_retrain("churn")
        decision = result["retrain"]
        assert decision["retrained"] and decision["promoted"], decision["reason"]
        challenger_id = decision["challenger"]["id"]
        assert _stages(project) == {champion_id: "archived", challenger_id: "production"}
        assert project.model("churn").id == challenger_id

        # both scored on the same rows, recomputed here from the stored datasets and models
        rows = _eval_rows(project, champion_id, challenger_id)
        assert decision["rows"] == len(rows) > 0
        ids = {mv.id: mv for mv in project.models("churn")}
        for key, model_id in (("champion_score", champion_id), ("challenger_score", challenger_id)):
            scores = project.registry.load(ids[model_id]).score(rows)
            assert decision[key] == pytest.approx(roc_auc_score(rows[LABEL_COLUMN], scores))
        assert decision["challenger_score"] - decision["champion_score"] > 0.02

        (stored,) = _decisions(project)
        assert stored["promoted"] == 1 and stored["id"] == decision["id"]
        assert stored["dataset_version_id"] == ids[challenger_id].dataset_version_id
        assert stored["dataset_version_id"] != ids[champion_id].dataset_version_id
        assert (stored["champion_version_id"], stored["challenger_version_id"]) == (
            champion_id,
            challenger_id,
        )
        assert stored["alert_id"] == result["alerts"][0]["id"]
        assert stored["monitor_run_id"] == result["id"]
        assert (stored["metric"], stored["margin"]) == ("roc_auc", 0.02)
        assert stored["challenger_score"] == pytest.approx(decision["challenger_score"])
        assert "promoted" in stored["reason"]
    finally:
        project.close()
    listed = runner.invoke(app, ["monitor", "decisions", "churn", "-p", str(demo_project)])
    assert listed.exit_code == 0, listed.output
    assert "promoted" in listed.output and "churn-v2" in listed.output


def test_a_worse_challenger_is_kept_out(demo_project: Path) -> None:
    champion_id, _ = _champion(demo_project, FULL)
    _spec(demo_project, CRIPPLED, "  domain_classifier: false\n")
    cli = runner.invoke(
        app,
        ["monitor", "churn", "--retrain", "--force", "--budget", "3", "-p", str(demo_project),
         "--json"],
    )  # fmt: skip
    assert cli.exit_code == 0, cli.output
    decision = json.loads(cli.output)["retrain"]
    assert decision["promoted"] is False and decision["alert_id"] is None  # forced: no alert
    assert decision["challenger_score"] < decision["champion_score"]
    assert "does not beat" in decision["reason"]
    # the challenger's spec dropped features the champion needs: they come from its own dataset
    assert "that the new dataset lacks (activity_" in decision["basis"]
    assert decision["rows"] > 0
    project = Project(demo_project)
    try:
        stages = _stages(project)
        assert stages[champion_id] == "production"
        assert stages[decision["challenger"]["id"]] == "staging"
        (stored,) = _decisions(project)
        assert stored["promoted"] == 0 and stored["challenger_score"] < stored["champion_score"]
    finally:
        project.close()


def test_a_gain_within_the_margin_keeps_the_champion(demo_project: Path) -> None:
    """The same training twice is a tie (margin 0); a real gain below a wide margin also keeps
    the champion. The second retrain runs as a scheduled monitor job with `retrain: true`."""
    champion_id, _ = _champion(demo_project, CRIPPLED)
    project = Project(demo_project)
    try:
        tie = project.retrain("churn")
        assert tie["challenger_score"] == pytest.approx(tie["champion_score"], abs=1e-12)
        assert tie["gain"] == pytest.approx(0.0, abs=1e-12) and not tie["promoted"]
        assert tie["dataset_reused"] is True
    finally:
        project.close()
    schedule = (
        "schedules:\n  watch: {cron: '0 3 * * *', job: monitor, problem: churn, retrain: true}\n"
    )
    _spec(
        demo_project,
        FULL,
        "  domain_classifier: false\n  retrain: {margin: 0.9}\n"
        "  rules: {age_moves: {metric: features.age.statistic, above: -1}}\n",
    )
    (demo_project / "cycleml.yaml").write_text(
        (demo_project / "cycleml.yaml").read_text().replace("monitoring:", schedule + "monitoring:")
    )
    project = Project(demo_project)
    try:
        (run,) = project.run_schedules(now=datetime(2026, 6, 2, 4))
        assert run.status == "done", run.message
        first, second = _decisions(project)
        assert first["reason"].startswith("churn-v2 does not beat churn-v1")
        assert second["challenger_score"] > second["champion_score"]  # better, not by 0.9
        assert second["promoted"] == 0 and "margin 0.9" in second["reason"]
        assert f"retrain decision {second['id']}" in run.message
        assert _stages(project)[champion_id] == "production"
    finally:
        project.close()


def test_a_challenger_that_fails_to_train_leaves_the_champion(demo_project: Path) -> None:
    champion_id, versions = _champion(demo_project, FULL)
    _spec(demo_project, FULL, training="\n  segment: no_such_column")
    project = Project(demo_project)
    try:
        with pytest.raises(DataError, match="no_such_column"):
            project.retrain("churn")
        assert len(project.models("churn")) == versions  # nothing registered
        assert _stages(project) == {champion_id: "production"}
        (stored,) = _decisions(project)
        assert stored["promoted"] == 0 and stored["challenger_version_id"] is None
        assert stored["reason"].startswith("training the challenger failed")
        # without an alert (no rules) and without force, nothing is retrained
        result = project.monitor_and_retrain("churn")
        assert result["retrain"]["retrained"] is False and len(_decisions(project)) == 1
    finally:
        project.close()


def test_alerts_and_the_retrain_loop_on_a_postgresql_store(
    demo_project: Path, pg_database: str
) -> None:
    spec = demo_project / "cycleml.yaml"
    spec.write_text(
        spec.read_text().replace("store: sqlite:///.cycleml/store.db", f"store: '{pg_database}'"),
        encoding="utf-8",
    )
    champion_id, _ = _champion(demo_project, CRIPPLED)
    _spec(
        demo_project,
        FULL,
        "  domain_classifier: false\n"
        "  rules: {age_moves: {metric: features.age.statistic, above: -1, severity: critical}}\n",
    )
    project = Project(demo_project)
    try:
        assert project.store.engine.dialect.name == "postgresql"
        result = project.monitor_and_retrain("churn")
        (alert,) = project.alerts("churn")
        assert alert["id"] == result["alerts"][0]["id"] and alert["severity"] == "critical"
        (stored,) = project.retrain_decisions("churn")
        assert stored["alert_id"] == alert["id"] and stored["monitor_run_id"] == result["id"]
        assert stored["promoted"] is result["retrain"]["promoted"] is True
        assert _stages(project)[champion_id] == "archived"
        assert stored["result"]["champion"]["id"] == champion_id
    finally:
        project.close()
