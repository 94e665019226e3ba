"""Messages: which case waits for which message, as rows (routing looks them up by name instead of
scanning every waiting case's JSON), and the Idempotency-Key of POST /api/v1/messages.

The waits of running cases are filled in from their waiting_for column.

Revision ID: 0008
Revises: 0007
"""
import json

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    waits = op.create_table("message_waits",
                            sa.Column("case_id", sa.String(36), sa.ForeignKey("cases.id"), primary_key=True),
                            sa.Column("name", sa.String(255), primary_key=True))
    op.create_index("ix_message_waits_name", "message_waits", ["name"])
    op.create_table("message_requests",
                    sa.Column("created_by", sa.String(255), primary_key=True),
                    sa.Column("idempotency_key", sa.String(255), primary_key=True),
                    sa.Column("request_hash", sa.String(64), nullable=False),
                    sa.Column("case_id", sa.String(36), sa.ForeignKey("cases.id"), nullable=False),
                    sa.Column("created_at", sa.DateTime, nullable=False))
    connection = op.get_bind()
    rows = connection.execute(sa.text("SELECT id, waiting_for FROM cases WHERE status = 'running'"))
    found = [{"case_id": case_id, "name": name} for case_id, waiting in rows
             for name in sorted({w.get("name") for w in json.loads(waiting or "[]")
                                 if w.get("type") == "message" and w.get("name")})]
    if found:
        op.bulk_insert(waits, found)


def downgrade() -> None:
    op.drop_table("message_requests")
    op.drop_index("ix_message_waits_name", "message_waits")
    op.drop_table("message_waits")
