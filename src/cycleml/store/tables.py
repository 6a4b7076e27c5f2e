"""The metadata store's tables (SQLAlchemy Core). Changes go through an Alembic migration.

Lineage: a model version points at its dataset version; a prediction run, prediction-log rows and
monitor runs point at the model version; a monitor run also at the reference dataset version.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

artifacts = Table(
    "artifacts",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("path", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("created_at", DateTime, nullable=False),
)

dataset_versions = Table(
    "dataset_versions",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("problem", String(200), nullable=False, index=True),
    Column("spec_hash", String(64), nullable=False),
    Column("data_fingerprint", String(64), nullable=False),
    Column("path", Text, nullable=False),
    Column("artifact_sha256", String(64), ForeignKey("artifacts.sha256"), nullable=False),
    Column("rows", Integer, nullable=False),
    Column("cutoffs", Integer, nullable=False),
    Column("label_balance", JSON, nullable=False),
    Column("features", JSON, nullable=False),
    Column("notes", JSON, nullable=False),
    Column("build_seconds", Float, nullable=False),
    Column("created_at", DateTime, nullable=False),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("problem", String(200), nullable=False, index=True),
    Column("version", Integer, nullable=False),
    Column("dataset_version_id", String(40), ForeignKey("dataset_versions.id"), nullable=False),
    Column("algorithm", String(64), nullable=False),
    Column("params", JSON, nullable=False),
    Column("metrics", JSON, nullable=False),
    Column("leaderboard", JSON, nullable=False),
    Column("threshold", Float),
    Column("features", JSON, nullable=False),
    Column("artifact_sha256", String(64), ForeignKey("artifacts.sha256"), nullable=False),
    Column("code_version", String(64), nullable=False),
    Column("stage", String(16), nullable=False, default="none"),
    Column("training_seconds", Float, nullable=False),
    Column("created_at", DateTime, nullable=False),
    UniqueConstraint("problem", "version", name="uq_model_versions_problem_version"),
)

prediction_runs = Table(
    "prediction_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("problem", String(200), nullable=False),
    Column("model_version_id", Integer, ForeignKey("model_versions.id"), nullable=False),
    Column("as_of", DateTime, nullable=False),
    Column("target", Text, nullable=False),
    Column("rows", Integer, nullable=False),
    Column("features_path", Text),
    Column("features_sha256", String(64), ForeignKey("artifacts.sha256")),
    Column("seconds", Float, nullable=False),
    Column("created_at", DateTime, nullable=False),
)

predictions = Table(
    "predictions",
    metadata,
    Column("problem", String(200), nullable=False),
    Column("entity", String(200), nullable=False),
    Column("as_of", DateTime, nullable=False),
    Column("score", Float, nullable=False),
    Column("label", Integer),
    Column("model_version_id", Integer, ForeignKey("model_versions.id"), nullable=False),
    Column("run_id", Integer, ForeignKey("prediction_runs.id"), nullable=False),
    Index("ix_predictions_problem_as_of", "problem", "as_of"),
    # 0003: forecasts (day h of the horizon and its date) and multiclass class values as text.
    Column("horizon", Integer),
    Column("target_date", DateTime),
    Column("class_label", String(200)),
)

prediction_log = Table(
    "prediction_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(64), nullable=False, index=True),
    Column("problem", String(200), nullable=False),
    Column("model_version_id", Integer, ForeignKey("model_versions.id"), nullable=False),
    Column("entity", String(200)),
    Column("inputs", JSON, nullable=False),
    Column("score", Float, nullable=False),
    Column("label", Integer),
    Column("latency_ms", Float),
    Column("created_at", DateTime, nullable=False),
    # The record's `id` (or its position) for record predictions, so feedback can name it.
    Column("item_id", String(200)),
    # 0003: a multiclass model's predicted class as text (`label` holds integer classes only).
    Column("class_label", String(200)),
)

profiles = Table(
    "profiles",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(200), nullable=False, index=True),
    Column("result", JSON, nullable=False),
    Column("created_at", DateTime, nullable=False),
)

experiment_analyses = Table(
    "experiment_analyses",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("experiment", String(200), nullable=False, index=True),
    Column("spec_hash", String(64), nullable=False),
    Column("result", JSON, nullable=False),
    Column("created_at", DateTime, nullable=False),
)

monitor_runs = Table(
    "monitor_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("problem", String(200), nullable=False, index=True),
    Column("model_version_id", Integer, ForeignKey("model_versions.id"), nullable=False),
    Column("reference_dataset_id", String(40), ForeignKey("dataset_versions.id"), nullable=False),
    Column("prediction_run_id", Integer, ForeignKey("prediction_runs.id")),
    Column("drift_share", Float, nullable=False),
    Column("drifted", Integer, nullable=False),
    Column("result", JSON, nullable=False),
    Column("created_at", DateTime, nullable=False),
)

# -- deploy (0002) ---------------------------------------------------------------------------------

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # Optional client id: a repeated event_id is accepted once (idempotent POST /v1/events).
    Column("event_id", String(200), unique=True),
    Column("source", String(200), nullable=False),
    Column("entity", String(200), nullable=False),
    Column("time", DateTime, nullable=False),
    Column("payload", JSON, nullable=False),
    Column("received_at", DateTime, nullable=False),
    Index("ix_events_source_time", "source", "time"),
)

feedback = Table(
    "feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("feedback_id", String(200), unique=True),
    Column("problem", String(200), nullable=False, index=True),
    Column("request_id", String(64)),
    Column("item_id", String(200)),
    Column("entity", String(200)),
    Column("label", Float, nullable=False),
    Column("created_at", DateTime, nullable=False),
)

online_features = Table(
    "online_features",
    metadata,
    Column("problem", String(200), primary_key=True),
    Column("entity", String(200), primary_key=True),
    Column("features", JSON, nullable=False),
    Column("as_of", DateTime, nullable=False),
    Column("materialized_at", DateTime, nullable=False),
)

job_runs = Table(
    "job_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job", String(200), nullable=False),
    Column("due_at", DateTime, nullable=False),
    Column("status", String(16), nullable=False),  # running, done, failed
    Column("started_at", DateTime, nullable=False),
    Column("finished_at", DateTime),
    Column("message", Text),
    # The scheduler's lock: whoever inserts (job, due_at) first runs it; others skip.
    UniqueConstraint("job", "due_at", name="uq_job_runs_job_due_at"),
)

# -- experiments served, alerts, retraining (0004) ------------------------------------------------

exposures = Table(
    "exposures",
    metadata,
    # One row per (experiment, unit): the first exposure; inserting again is a no-op.
    Column("experiment", String(200), primary_key=True),
    Column("unit", String(200), primary_key=True),
    Column("variant", String(200), nullable=False),
    Column("model_version_id", Integer, ForeignKey("model_versions.id")),
    Column("request_id", String(64)),
    Column("first_exposed_at", DateTime, nullable=False),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("problem", String(200), nullable=False),
    Column("rule", String(200), nullable=False),
    Column("metric", String(200), nullable=False),
    Column("value", Float),
    Column("threshold", Float, nullable=False),
    Column("severity", String(16), nullable=False),
    Column("message", Text, nullable=False),
    Column("monitor_run_id", Integer, ForeignKey("monitor_runs.id")),
    Column("created_at", DateTime, nullable=False),
    # Webhook delivery: None (no webhook), pending, delivered, failed; retried while pending.
    Column("webhook_status", String(16)),
    Column("webhook_attempts", Integer, nullable=False, server_default="0"),
    Column("delivered_at", DateTime),
    Index("ix_alerts_problem_created", "problem", "created_at"),
    # the rule's direction, window and the values it looked at; the last delivery error
    Column("details", JSON),
    Column("webhook_error", Text),
)

retrain_decisions = Table(
    "retrain_decisions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("problem", String(200), nullable=False, index=True),
    Column("alert_id", Integer, ForeignKey("alerts.id")),
    Column("dataset_version_id", String(40), ForeignKey("dataset_versions.id")),
    Column("champion_version_id", Integer, ForeignKey("model_versions.id")),
    Column("challenger_version_id", Integer, ForeignKey("model_versions.id")),
    Column("promoted", Integer, nullable=False),
    Column("result", JSON, nullable=False),
    Column("created_at", DateTime, nullable=False),
    # what triggered it, and the comparison: metric, both scores, the margin, why
    Column("monitor_run_id", Integer, ForeignKey("monitor_runs.id")),
    Column("metric", String(64)),
    Column("champion_score", Float),
    Column("challenger_score", Float),
    Column("margin", Float),
    Column("reason", Text),
)
