"""External service tasks: a topic for workers to fetch, and the lock a worker holds while it works.

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("topic", sa.String(255)))
    op.add_column("tasks", sa.Column("locked_by", sa.String(255)))
    op.add_column("tasks", sa.Column("locked_until", sa.DateTime))
    op.create_index("ix_tasks_topic_state", "tasks", ["topic", "state", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_tasks_topic_state", "tasks")
    op.drop_column("tasks", "locked_until")
    op.drop_column("tasks", "locked_by")
    op.drop_column("tasks", "topic")
