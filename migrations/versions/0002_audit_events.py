"""The audit trail: hash-chained events, append-only (a trigger refuses UPDATE and DELETE on PostgreSQL).

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

GENESIS = "0" * 64


def upgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("event_seq", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("event_hash", sa.String(64), nullable=False, server_default=GENESIS))
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("chain", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("case_id", sa.String(36)),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("element_id", sa.String(255)),
        sa.Column("element_name", sa.String(255)),
        sa.Column("lane", sa.String(255)),
        sa.Column("definition", sa.String(255)),
        sa.Column("version", sa.Integer),
        sa.Column("definition_hash", sa.String(64)),
        sa.Column("data_changes", sa.Text, nullable=False),
        sa.Column("details", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.UniqueConstraint("chain", "seq", name="uq_events_chain_seq"),
    )
    op.create_index("ix_events_case", "events", ["case_id", "seq"])
    op.create_index("ix_events_at", "events", ["at"])
    op.create_index("ix_events_element", "events", ["element_id"])
    if op.get_bind().dialect.name == "postgresql":
        # The trail is append-only even for someone with SQL access through the application's role.
        op.execute("""
            CREATE FUNCTION usm_events_append_only() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION 'the audit trail is append-only: % on events is refused', TG_OP;
            END;
            $$ LANGUAGE plpgsql
        """)
        op.execute("""
            CREATE TRIGGER usm_events_append_only BEFORE UPDATE OR DELETE ON events
            FOR EACH ROW EXECUTE FUNCTION usm_events_append_only()
        """)
        op.execute("""
            CREATE TRIGGER usm_events_no_truncate BEFORE TRUNCATE ON events
            FOR EACH STATEMENT EXECUTE FUNCTION usm_events_append_only()
        """)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS usm_events_no_truncate ON events")
        op.execute("DROP TRIGGER IF EXISTS usm_events_append_only ON events")
        op.execute("DROP FUNCTION IF EXISTS usm_events_append_only()")
    op.drop_table("events")
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("event_hash")
        batch.drop_column("event_seq")
