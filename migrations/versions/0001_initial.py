"""Definitions, cases and the ready-task projection.

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "definitions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("bpmn_file", sa.String(255), nullable=False),
        sa.Column("deployed_at", sa.DateTime, nullable=False),
        sa.Column("deployed_by", sa.String(255), nullable=False),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("embedded", sa.Text, nullable=False),
        sa.Column("meta", sa.Text, nullable=False),
        sa.UniqueConstraint("key", "version", name="uq_definitions_key_version"),
    )
    op.create_table(
        "definition_files",
        sa.Column("definition_id", sa.String(36), sa.ForeignKey("definitions.id"), primary_key=True),
        sa.Column("filename", sa.String(255), primary_key=True),
        sa.Column("content", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "cases",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("definition_key", sa.String(255), nullable=False),
        sa.Column("definition_version", sa.Integer, nullable=False),
        sa.Column("pins", sa.Text, nullable=False),
        sa.Column("business_key", sa.String(255)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("workflow", sa.String(8)),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("serializer_version", sa.String(16), nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("waiting_for", sa.Text, nullable=False),
        sa.Column("incident", sa.Text),
        sa.Column("next_timer_at", sa.DateTime),
        sa.Column("parent_case_id", sa.String(36)),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("row_version", sa.Integer, nullable=False),
        sa.Column("idempotency_key", sa.String(255)),
        sa.Column("request_hash", sa.String(64)),
        sa.UniqueConstraint("created_by", "idempotency_key", name="uq_cases_idempotency"),
    )
    op.create_index("ix_cases_created", "cases", ["created_at", "id"])
    op.create_index("ix_cases_status", "cases", ["status"])
    op.create_index("ix_cases_definition", "cases", ["definition_key"])
    op.create_index("ix_cases_business_key", "cases", ["business_key"])
    op.create_index("ix_cases_next_timer", "cases", ["next_timer_at"])
    op.create_index("ix_cases_parent", "cases", ["parent_case_id"])
    op.create_table(
        "tasks",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("case_id", sa.String(36), sa.ForeignKey("cases.id"), nullable=False),
        sa.Column("definition_key", sa.String(255), nullable=False),
        sa.Column("process_id", sa.String(255), nullable=False),
        sa.Column("element_id", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255)),
        sa.Column("lane", sa.String(255)),
        sa.Column("lane_role", sa.String(255)),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("ended_at", sa.DateTime),
        sa.Column("completed_by", sa.String(255)),
    )
    op.create_index("ix_tasks_case", "tasks", ["case_id"])
    op.create_index("ix_tasks_state_created", "tasks", ["state", "created_at", "id"])
    op.create_index("ix_tasks_lane_role", "tasks", ["lane_role", "state"])


def downgrade() -> None:
    op.drop_table("tasks")
    op.drop_table("cases")
    op.drop_table("definition_files")
    op.drop_table("definitions")
