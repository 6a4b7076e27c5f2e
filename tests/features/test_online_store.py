"""The online store: `materialize` writes one feature vector per eligible entity (SQLite and
PostgreSQL stores), `lookup` reads them back so the model scores exactly as on `compute`."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from cycleml import Project
from cycleml.cli import app as cli
from cycleml.errors import RequestError
from cycleml.serve._online_store import SCHEMA_KEY, lookup
from cycleml.store.tables import online_features

AS_OF = datetime(2026, 6, 1)


def _rows(project: Project, problem: str = "churn") -> list:
    with project.store.connect() as conn:
        return conn.execute(
            sa.select(online_features).where(online_features.c.problem == problem)
        ).fetchall()


def test_materialize_then_lookup_scores_equal_compute(trained_copy: Path) -> None:
    project = Project(trained_copy)
    try:
        result = project.materialize("churn", AS_OF)
        with project.features("churn") as fs:
            expected = fs.compute(None, AS_OF).reset_index(drop=True)
        assert result["entities"] == len(expected) > 50
        assert result["as_of"] == AS_OF.isoformat()
        rows = _rows(project)
        assert len(rows) == len(expected) + 1  # + the schema row
        assert {r.entity for r in rows} == set(expected["user_id"]) | {SCHEMA_KEY}

        asked = list(expected["user_id"].iloc[[5, 0, 17]]) + ["nobody"]
        frame, info = lookup(project.store, "churn", asked)
        assert info["as_of"] == AS_OF and info["materialized_at"] >= AS_OF
        assert list(frame["user_id"]) == asked[:3]  # in the order asked, unknown left out
        want = expected.set_index("user_id").loc[asked[:3]].reset_index()
        assert list(frame.columns) == list(expected.columns)
        assert dict(frame.dtypes) == dict(expected.dtypes)  # the dtypes compute gave
        pd.testing.assert_frame_equal(frame, want)

        _, bundle = project.load_model("churn")
        online_scores, online_labels = bundle.outputs(frame)
        computed_scores, computed_labels = bundle.outputs(want)
        np.testing.assert_array_equal(online_scores, computed_scores)
        np.testing.assert_array_equal(online_labels, computed_labels)
    finally:
        project.close()


def test_materialize_again_replaces_the_rows(trained_copy: Path) -> None:
    project = Project(trained_copy)
    try:
        first = project.materialize("churn", AS_OF)
        earlier = project.materialize("churn", datetime(2026, 3, 1))
        assert earlier["entities"] != first["entities"]
        rows = _rows(project)
        assert len(rows) == earlier["entities"] + 1
        assert {r.as_of for r in rows} == {datetime(2026, 3, 1)}
        again = project.materialize("churn", datetime(2026, 3, 1))
        assert len(_rows(project)) == again["entities"] + 1
    finally:
        project.close()


def test_a_run_failing_midway_leaves_the_previous_rows(trained_copy: Path, monkeypatch) -> None:
    from cycleml.serve import _online_store

    project = Project(trained_copy)
    try:
        first = project.materialize("churn", AS_OF)
        before = {(r.entity, r.as_of) for r in _rows(project)}
        real = _online_store._records
        calls = []

        def failing(frame):
            calls.append(len(frame))
            if len(calls) == 2:  # the second chunk: some rows are already written
                raise RuntimeError("disk full")
            return real(frame)

        monkeypatch.setattr(_online_store, "_records", failing)
        seen: list[tuple[str, int, int]] = []
        with pytest.raises(RuntimeError, match="disk full"):
            project.materialize(
                "churn", datetime(2026, 3, 1), chunk_rows=20, progress=lambda *a: seen.append(a)
            )
        assert ("writing the online store", 20, seen[-1][2]) in seen  # a chunk went in first
        assert {(r.entity, r.as_of) for r in _rows(project)} == before
        assert len(before) == first["entities"] + 1
    finally:
        project.close()


def test_a_problem_never_materialized_looks_up_nothing(trained_copy: Path) -> None:
    project = Project(trained_copy)
    try:
        assert lookup(project.store, "churn", ["u000008"]) == (None, {})
    finally:
        project.close()


def test_materialize_past_the_data_says_no_entity_is_eligible(trained_copy: Path) -> None:
    project = Project(trained_copy)
    try:
        project.materialize("churn", AS_OF)
        result = project.materialize("churn", datetime(2030, 1, 1))  # the data ends 2026-06-01
        assert result["entities"] == 0 and "no entity is eligible" in result["note"]
        assert [r.entity for r in _rows(project)] == [SCHEMA_KEY]  # the old rows are replaced
        assert lookup(project.store, "churn", ["u000008"])[0].empty
    finally:
        project.close()


def test_predict_by_entities_reads_the_online_store(trained_copy: Path) -> None:
    project = Project(trained_copy)
    try:
        project.materialize("churn", AS_OF)
        with project.features("churn") as fs:
            entity = str(fs.compute(None, AS_OF)["user_id"].iloc[3])
        online = project.predict("churn", entities=[entity])
        computed = project.predict("churn", entities=[entity], as_of=AS_OF)
        assert online["features"]["source"] == "online_store"
        assert online["features"]["as_of"] == AS_OF.isoformat()
        assert online["predictions"][0]["score"] == computed["predictions"][0]["score"]
    finally:
        project.close()


def test_materialize_on_a_postgresql_store(demo_project: Path, pg_database: str) -> None:
    spec = demo_project / "cycleml.yaml"
    text = spec.read_text()
    assert "store: sqlite:///.cycleml/store.db" in text
    spec.write_text(text.replace("store: sqlite:///.cycleml/store.db", f"store: {pg_database}"))
    project = Project(demo_project)
    try:
        assert project.store.dialect == "postgresql"
        result = project.materialize("churn", AS_OF)
        again = project.materialize("churn", AS_OF)
        assert again["entities"] == result["entities"] > 50
        assert len(_rows(project)) == result["entities"] + 1
        with project.features("churn") as fs:
            expected = fs.compute(None, AS_OF).reset_index(drop=True)
        frame, info = lookup(project.store, "churn", list(expected["user_id"]))
        assert info["as_of"] == AS_OF
        pd.testing.assert_frame_equal(frame, expected)
    finally:
        project.close()


def test_materialize_command(trained_copy: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        cli,
        ["features", "materialize", "churn", "--as-of", "2026-06-01", "-p", str(trained_copy)]
        + ["--json"],
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["problem"] == "churn" and body["entities"] > 50
    project = Project(trained_copy)
    try:
        assert len(_rows(project)) == body["entities"] + 1
    finally:
        project.close()
    missing = runner.invoke(cli, ["features", "materialize", "nope", "-p", str(trained_copy)])
    assert missing.exit_code == 5 and "unknown problem 'nope'" in missing.output


FORECAST = """
spec_version: 1
name: shop
sources:
  sales: {path: sales.csv, entity: item, time: day}
problems:
  demand:
    entity: item
    task: forecast
    label: {kind: forecast, source: sales, horizon: 3, column: qty}
    cutoffs: {every: 7d, start: 2026-01-01}
    features: [recent]
features:
  recent: {source: sales, windows: [7d], aggregate: {sum: qty}}
"""


def test_forecast_problems_are_not_materialized(write_project) -> None:
    root = write_project(FORECAST, {"sales.csv": "item,day,qty\na,2026-01-01,3\n"})
    project = Project(root)
    try:
        with pytest.raises(RequestError, match="one feature vector per entity"):
            project.materialize("demand", AS_OF)
    finally:
        project.close()
