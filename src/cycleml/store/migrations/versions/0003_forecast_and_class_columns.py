"""predictions: horizon, target_date, class_label; prediction_log: class_label

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("horizon", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("target_date", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("class_label", sa.String(length=200), nullable=True))
    with op.batch_alter_table("prediction_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("class_label", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("prediction_log", schema=None) as batch_op:
        batch_op.drop_column("class_label")
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.drop_column("class_label")
        batch_op.drop_column("target_date")
        batch_op.drop_column("horizon")
