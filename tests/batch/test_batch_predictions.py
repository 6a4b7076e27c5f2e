"""Batch predictions into the store's predictions table: one row per eligible entity, reruns
replace their partition, and scores come from the one feature definition."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from cycleml import Project
from cycleml.errors import DataError, NotFoundError
from cycleml.store.tables import prediction_runs, predictions

AS_OF = datetime(2026, 6, 1)  # the demo's data end; conftest's trained_demo scored as of it
ACTIVE_DAYS = 30  # churn eligibility: an event in the 30 days before as_of


def _eligible(root: Path, as_of: datetime) -> set[str]:
    """Users with an event in [as_of - 30d, as_of), read straight from the event file."""
    events = pd.read_parquet(root / "data/events.parquet", columns=["user_id", "ts"])
    recent = events[(events["ts"] >= as_of - timedelta(days=ACTIVE_DAYS)) & (events["ts"] < as_of)]
    return set(recent["user_id"].astype(str))


def _rows(project: Project, as_of: datetime | None = None) -> pd.DataFrame:
    query = sa.select(predictions).where(predictions.c.problem == "churn")
    if as_of is not None:
        query = query.where(predictions.c.as_of == as_of)
    with project.store.connect() as conn:
        return pd.DataFrame(conn.execute(query).mappings().all())


def test_one_row_per_eligible_entity_with_lineage(trained_demo):
    project = Project(trained_demo)  # read-only
    try:
        rows = _rows(project)
        production = project.model("churn")
        expected = _eligible(trained_demo, AS_OF)
        assert expected  # the demo has active users at its end
        assert len(rows) == len(expected)
        assert set(rows["entity"]) == expected
        assert not rows["entity"].duplicated().any()
        assert set(rows["model_version_id"]) == {production.id}
        assert set(rows["as_of"]) == {pd.Timestamp(AS_OF)}
        assert rows["score"].between(0, 1).all()
        assert (rows["label"] == (rows["score"] >= production.threshold).astype(int)).all()
        with project.store.connect() as conn:
            runs = conn.execute(sa.select(prediction_runs)).mappings().all()
        assert len(runs) == 1
        assert runs[0]["rows"] == len(rows) and runs[0]["model_version_id"] == production.id
        assert set(rows["run_id"]) == {runs[0]["id"]}
    finally:
        project.close()


def test_scores_equal_the_bundle_on_computed_features(trained_demo):
    """One definition end to end: the stored score of each entity is the production model's
    score of ``features("churn").compute(entities, as_of)``."""
    project = Project(trained_demo)
    try:
        stored = _rows(project, AS_OF).set_index("entity")["score"]
        entities = sorted(stored.index)[:40] + ["u_never_seen"]
        _, bundle = project.load_model("churn")
        fs = project.features("churn")
        try:
            frame = fs.compute(entities, AS_OF)
        finally:
            fs.sources.close()
        scored = pd.Series(bundle.score(frame), index=frame["user_id"])
        common = sorted(stored.index)[:40]
        np.testing.assert_allclose(
            scored.loc[common].to_numpy(), stored.loc[common].to_numpy(), rtol=0, atol=1e-9
        )
        assert "u_never_seen" in scored.index  # computed (empty history) but never batch-scored
    finally:
        project.close()


def test_rerun_replaces_and_another_as_of_adds_a_partition(trained_copy):
    project = Project(trained_copy)
    try:
        first = _rows(project)
        run = project.predict_batch("churn", as_of=AS_OF)
        again = _rows(project)
        assert run.rows == len(first) == len(again)
        assert not again.duplicated(["entity", "as_of"]).any()
        assert set(again["run_id"]) == {run.id}  # every row comes from the new run
        assert set(again["entity"]) == set(first["entity"])
        pd.testing.assert_series_equal(
            again.sort_values("entity")["score"].reset_index(drop=True),
            first.sort_values("entity")["score"].reset_index(drop=True),
        )

        earlier = AS_OF - timedelta(days=7)
        other = project.predict_batch("churn", as_of=earlier)
        expected = _eligible(trained_copy, earlier)
        assert other.rows == len(expected)
        now = _rows(project)
        assert len(now) == len(first) + len(expected)
        assert set(_rows(project, earlier)["entity"]) == expected
        assert len(_rows(project, AS_OF)) == len(first)  # the first partition is untouched
        assert not now.duplicated(["entity", "as_of"]).any()
    finally:
        project.close()


def test_an_aware_as_of_is_the_same_instant_in_utc(trained_copy):
    project = Project(trained_copy)
    try:
        first = _rows(project)
        paris_summer = timezone(timedelta(hours=2))
        run = project.predict_batch("churn", as_of=datetime(2026, 6, 1, 2, 0, tzinfo=paris_summer))
        assert run.as_of == AS_OF
        again = _rows(project)
        assert len(again) == len(first)  # the same partition, replaced
        assert set(again["as_of"]) == {pd.Timestamp(AS_OF)}
    finally:
        project.close()


def test_no_eligible_entity_is_a_data_error(trained_copy):
    project = Project(trained_copy)
    try:
        before = project.counts()["predictions"]
        with pytest.raises(DataError) as info:
            project.predict_batch("churn", as_of=datetime(2000, 1, 1))
        assert "--as-of" in info.value.hint
        assert project.counts()["predictions"] == before
    finally:
        project.close()


def test_no_production_model_is_not_found_with_a_hint_to_train(demo_project, trained_copy):
    project = Project(demo_project)  # never trained
    try:
        with pytest.raises(NotFoundError) as info:
            project.predict_batch("churn", as_of=AS_OF)
        assert "cycleml train churn" in info.value.hint
        assert project.counts()["predictions"] == 0
    finally:
        project.close()
    project = Project(trained_copy)  # its only model archived
    try:
        project.promote("churn", 1, stage="archived")
        with pytest.raises(NotFoundError) as info:
            project.predict_batch("churn", as_of=AS_OF - timedelta(days=1))
        assert "train" in info.value.hint
    finally:
        project.close()
