"""Finished cases keep no engine state; two indexes shrink.

A completed or cancelled case is never restored again: every command refuses it, and its views read the
case row, the task rows and the trail. Its SpiffWorkflow state, most of its row, is emptied (new saves do
the same: engine/case_state.py). The index of tasks by topic becomes partial: user tasks have no topic. The
index of events by (case_id, seq) goes: a case's trail is read by (chain, seq), whose unique constraint has
an index of its own, and chain is the case id for case events.

Revision ID: 0010
Revises: 0009
"""
import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

HAS_TOPIC = sa.text("topic IS NOT NULL")


def upgrade() -> None:
    op.execute("UPDATE cases SET state = '' WHERE status IN ('completed', 'cancelled')")
    op.drop_index("ix_events_case", "events")
    op.drop_index("ix_tasks_topic_state", "tasks")
    op.create_index("ix_tasks_topic_state", "tasks", ["topic", "state", "created_at"], sqlite_where=HAS_TOPIC,
                    postgresql_where=HAS_TOPIC)


def downgrade() -> None:
    # The emptied states do not come back: a finished case needs none.
    op.create_index("ix_events_case", "events", ["case_id", "seq"])
    op.drop_index("ix_tasks_topic_state", "tasks")
    op.create_index("ix_tasks_topic_state", "tasks", ["topic", "state", "created_at"])
