"""A multiclass model with text classes scores into the store, a Parquet target and the online
prediction log with its predicted class as text (``class_label``)."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import sqlalchemy as sa

from cycleml import Project
from cycleml.store.tables import prediction_log, predictions

PLAN = """\
  users_plan:
    entity: user_id
    task: multiclass
    label: {kind: column, source: users, column: plan}
    metric: {name: accuracy}
    features: [activity, plan_profile]

features:
  plan_profile:
    source: users
    columns: [country, age]
"""
AS_OF = datetime(2026, 6, 1)


def test_multiclass_batch_and_log_rows_carry_the_class(demo_project):
    spec = demo_project / "cycleml.yaml"
    spec.write_text(
        spec.read_text(encoding="utf-8").replace("\nfeatures:\n", "\n" + PLAN, 1),
        encoding="utf-8",
    )
    project = Project(demo_project)
    try:
        outcome = project.train("users_plan", budget=3)
        classes = set(outcome.result.classes)
        run = project.predict_batch("users_plan", as_of=AS_OF)
        project.predict_batch("users_plan", as_of=AS_OF, to="out/plan.parquet")
        _, bundle = project.load_model("users_plan")
        with project.features("users_plan") as fs:
            frame = fs.compute(None, AS_OF)
        scores, labels = bundle.outputs(frame)
        record = {c: frame.iloc[0][c] for c in bundle.feature_names}
        record = {
            k: (None if pd.isna(v) else (v.item() if hasattr(v, "item") else v))
            for k, v in record.items()
        }
        answer = project.predict("users_plan", records=[record])
        with project.store.connect() as conn:
            stored = pd.DataFrame(
                conn.execute(sa.select(predictions).where(predictions.c.problem == "users_plan"))
                .mappings()
                .all()
            )
            logged = conn.execute(
                sa.select(prediction_log.c.class_label, prediction_log.c.label).where(
                    prediction_log.c.request_id == answer["request_id"]
                )
            ).all()
    finally:
        project.close()
    parquet = pd.read_parquet(demo_project / "out/plan.parquet")
    want = dict(zip(frame["user_id"].astype(str), labels, strict=True))
    assert len(stored) == len(parquet) == run.rows == len(frame)
    for rows in (stored, parquet):
        assert set(rows["class_label"]) <= classes
        assert rows["label"].isna().all()  # text classes: no integer label
        assert all(rows["class_label"] == rows["entity"].map(want))
    assert run.positive_rate is None
    assert logged == [(answer["predictions"][0]["label"], None)]
    assert answer["predictions"][0]["label"] in classes
