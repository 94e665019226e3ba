"""The head of every chain that is not a case's: the deployments' chain ("definitions").

A case row keeps the seq and hash its trail ends with, so that deleting the newest events of a case is
detected; the deployments' chain had no such record, so deleting its newest events went unnoticed.
The head is filled in from the events already there.

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("chain_heads",
                    sa.Column("chain", sa.String(64), primary_key=True),
                    sa.Column("seq", sa.Integer, nullable=False),
                    sa.Column("hash", sa.String(64), nullable=False))
    op.execute("INSERT INTO chain_heads (chain, seq, hash) SELECT e.chain, e.seq, e.hash FROM events e "
               "WHERE e.case_id IS NULL AND e.seq = (SELECT max(f.seq) FROM events f WHERE f.chain = e.chain)")


def downgrade() -> None:
    op.drop_table("chain_heads")
