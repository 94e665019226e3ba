"""Audit events name the definition their element belongs to.

A case runs elements of the processes it calls as well as its own, and element ids only have to be
unique within one file: `element_definition` says whose element an event is about, so names, lanes,
the diagram of the path and the compliance cross-reference never mix up two elements with one id.
Events written before this revision have it empty (their element is looked up in the case's own
definition); their hashes stay valid because an empty value is not part of what the hash covers.

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("events", sa.Column("element_definition", sa.String(255)))


def downgrade() -> None:
    op.drop_column("events", "element_definition")
