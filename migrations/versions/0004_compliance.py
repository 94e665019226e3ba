"""The compliance cross-reference.

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
        "compliance_requirements",
        sa.Column("ref", sa.String(255), primary_key=True),
        sa.Column("standard", sa.String(255), nullable=False),
        sa.Column("requirement_id", sa.String(255), nullable=False),
        sa.Column("title", sa.String(1000), nullable=False),
        sa.Column("note", sa.Text),
        sa.Column("activities", sa.Text, nullable=False),
        sa.Column("source_file", sa.String(255), nullable=False),
        sa.Column("deployed_at", sa.DateTime, nullable=False),
        sa.Column("deployed_by", sa.String(255), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("compliance_requirements")
