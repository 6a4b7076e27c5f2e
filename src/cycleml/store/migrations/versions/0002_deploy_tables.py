"""deploy tables: collected events, feedback, the online feature store, scheduled job runs

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("prediction_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("item_id", sa.String(length=200), nullable=True))
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=True),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("entity", sa.String(length=200), nullable=False),
        sa.Column("time", sa.DateTime(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id"),
    )
    op.create_index("ix_events_source_time", "events", ["source", "time"], unique=False)
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("feedback_id", sa.String(length=200), nullable=True),
        sa.Column("problem", sa.String(length=200), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("item_id", sa.String(length=200), nullable=True),
        sa.Column("entity", sa.String(length=200), nullable=True),
        sa.Column("label", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("feedback_id"),
    )
    op.create_index(op.f("ix_feedback_problem"), "feedback", ["problem"], unique=False)
    op.create_table(
        "online_features",
        sa.Column("problem", sa.String(length=200), nullable=False),
        sa.Column("entity", sa.String(length=200), nullable=False),
        sa.Column("features", sa.JSON(), nullable=False),
        sa.Column("as_of", sa.DateTime(), nullable=False),
        sa.Column("materialized_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("problem", "entity"),
    )
    op.create_table(
        "job_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job", sa.String(length=200), nullable=False),
        sa.Column("due_at", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job", "due_at", name="uq_job_runs_job_due_at"),
    )


def downgrade() -> None:
    op.drop_table("job_runs")
    op.drop_table("online_features")
    op.drop_index(op.f("ix_feedback_problem"), table_name="feedback")
    op.drop_table("feedback")
    op.drop_index("ix_events_source_time", table_name="events")
    op.drop_table("events")
    with op.batch_alter_table("prediction_log", schema=None) as batch_op:
        batch_op.drop_column("item_id")
