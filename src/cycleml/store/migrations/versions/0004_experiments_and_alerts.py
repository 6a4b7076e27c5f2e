"""served experiments (exposures), monitoring alerts and retrain decisions

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "exposures",
        sa.Column("experiment", sa.String(length=200), nullable=False),
        sa.Column("unit", sa.String(length=200), nullable=False),
        sa.Column("variant", sa.String(length=200), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=True),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("first_exposed_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["model_version_id"], ["model_versions.id"]),
        sa.PrimaryKeyConstraint("experiment", "unit"),
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("problem", sa.String(length=200), nullable=False),
        sa.Column("rule", sa.String(length=200), nullable=False),
        sa.Column("metric", sa.String(length=200), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("monitor_run_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("webhook_status", sa.String(length=16), nullable=True),
        sa.Column("webhook_attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("delivered_at", sa.DateTime(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=True),
        sa.Column("webhook_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["monitor_run_id"], ["monitor_runs.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_alerts_problem_created", "alerts", ["problem", "created_at"])
    op.create_table(
        "retrain_decisions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("problem", sa.String(length=200), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=True),
        sa.Column("dataset_version_id", sa.String(length=40), nullable=True),
        sa.Column("champion_version_id", sa.Integer(), nullable=True),
        sa.Column("challenger_version_id", sa.Integer(), nullable=True),
        sa.Column("promoted", sa.Integer(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("monitor_run_id", sa.Integer(), nullable=True),
        sa.Column("metric", sa.String(length=64), nullable=True),
        sa.Column("champion_score", sa.Float(), nullable=True),
        sa.Column("challenger_score", sa.Float(), nullable=True),
        sa.Column("margin", sa.Float(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"]),
        sa.ForeignKeyConstraint(["monitor_run_id"], ["monitor_runs.id"]),
        sa.ForeignKeyConstraint(["dataset_version_id"], ["dataset_versions.id"]),
        sa.ForeignKeyConstraint(["champion_version_id"], ["model_versions.id"]),
        sa.ForeignKeyConstraint(["challenger_version_id"], ["model_versions.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_retrain_decisions_problem", "retrain_decisions", ["problem"])


def downgrade() -> None:
    op.drop_index("ix_retrain_decisions_problem", table_name="retrain_decisions")
    op.drop_table("retrain_decisions")
    op.drop_index("ix_alerts_problem_created", table_name="alerts")
    op.drop_table("alerts")
    op.drop_table("exposures")
