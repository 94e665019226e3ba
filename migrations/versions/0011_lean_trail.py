"""The trail keeps what cannot be read elsewhere: hashes as bytes, no copies.

An event row kept its case id (its chain is named by the case id), the hash of the event before it (that
event has it), the hash of its definition (the definitions row of its definition and version has it) and
its own hash as 64 hex digits. From here: its hash as 32 bytes; no case id and no previous hash; the
definition's hash only where it is not the definitions row's (the engine seals every event with that
row's hash, so only rows written some other way keep one); and (chain, seq), the key every read uses, is
the primary key in place of a surrogate id and a unique constraint on it. The index by type and time,
read only for the messages thrown in a period (engine/insight_queries.py), now holds those events alone.
Every event's hash and public form stay what they were: the engine reads the links back
(engine/store.py, engine/audit.py), and tests/engine/test_lean_trail.py migrates a trail written in the
old layout and compares.

The table is rebuilt on both databases (a new table, the rows copied, the old one dropped), with its
fixed-width columns first so that PostgreSQL pads none of them, and the append-only triggers (PostgreSQL)
are put on the new table. This migration carries its own copy of the rules it applies, so that later
changes to the engine cannot change what it does.

Revision ID: 0011
Revises: 0010
"""
import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

GENESIS = "0" * 64  # the previous hash of a chain's first event
DEPLOYMENT_CHAIN = "definitions"  # the one chain that is not a case's: its events have no case id
MESSAGE_SENT = "type = 'message_sent'"
# (name, columns, only the rows where): the indexes of the old layout and of the new one.
OLD_INDEXES = (("ix_events_at", ["at"], None), ("ix_events_element", ["element_id"], None),
               ("ix_events_type_at", ["type", "at"], None))
NEW_INDEXES = (("ix_events_at", ["at"], None), ("ix_events_element", ["element_id"], None),
               ("ix_events_messages", ["at"], MESSAGE_SENT))
# Columns both layouts have, in the order of the new one.
SHARED = ("at", "seq", "version", "chain", "type", "actor", "element_id", "element_name", "element_definition",
          "lane", "definition")


def _text(name: str, length: int = 255, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.String(length), nullable=nullable)


def _shared_columns() -> list[sa.Column]:
    return [sa.Column("at", sa.DateTime, nullable=False), sa.Column("seq", sa.Integer, nullable=False),
            sa.Column("version", sa.Integer), _text("chain", 64, nullable=False), _text("type", 32, nullable=False),
            _text("actor", nullable=False), _text("element_id"), _text("element_name"), _text("element_definition"),
            _text("lane"), _text("definition")]


def upgrade() -> None:
    _set_aside("events_0010", OLD_INDEXES)
    op.create_table("events", *_shared_columns(), _text("definition_hash", 64),
                    sa.Column("data_changes", sa.Text, nullable=False), sa.Column("details", sa.Text, nullable=False),
                    sa.Column("hash", sa.LargeBinary(32), nullable=False),
                    sa.PrimaryKeyConstraint("chain", "seq", name="pk_events"))
    shared = ", ".join(f"e.{name}" for name in SHARED)
    op.execute(f"""
        INSERT INTO events ({", ".join(SHARED)}, definition_hash, data_changes, details, hash)
        SELECT {shared}, CASE WHEN e.definition_hash = d.hash THEN NULL ELSE e.definition_hash END,
               e.data_changes, e.details, {_from_hex("e.hash")}
        FROM events_0010 e LEFT JOIN definitions d ON d.key = e.definition AND d.version = e.version
        ORDER BY e.id""")
    _finish("events_0010", NEW_INDEXES)


def downgrade() -> None:
    _set_aside("events_0011", NEW_INDEXES)
    op.create_table("events", sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
                    _text("chain", 64, nullable=False), sa.Column("seq", sa.Integer, nullable=False),
                    sa.Column("at", sa.DateTime, nullable=False), _text("case_id", 36),
                    _text("type", 32, nullable=False), _text("actor", nullable=False), _text("element_id"),
                    _text("element_name"), _text("lane"),
                    _text("definition"), sa.Column("version", sa.Integer), _text("definition_hash", 64),
                    sa.Column("data_changes", sa.Text, nullable=False), sa.Column("details", sa.Text, nullable=False),
                    _text("prev_hash", 64, nullable=False), _text("hash", 64, nullable=False),
                    _text("element_definition"), sa.UniqueConstraint("chain", "seq", name="uq_events_chain_seq"))
    shared = ", ".join(f"e.{name}" for name in SHARED)
    op.execute(f"""
        INSERT INTO events ({", ".join(SHARED)}, case_id, definition_hash, data_changes, details, prev_hash, hash)
        SELECT {shared}, CASE WHEN e.chain = '{DEPLOYMENT_CHAIN}' THEN NULL ELSE e.chain END,
               COALESCE(e.definition_hash, d.hash), e.data_changes, e.details,
               CASE WHEN e.seq = 1 THEN '{GENESIS}' ELSE COALESCE({_to_hex("b.hash")}, '') END, {_to_hex("e.hash")}
        FROM events_0011 e LEFT JOIN definitions d ON d.key = e.definition AND d.version = e.version
             LEFT JOIN events_0011 b ON b.chain = e.chain AND b.seq = e.seq - 1
        ORDER BY e.at, e.chain, e.seq""")
    _finish("events_0011", OLD_INDEXES)


def _set_aside(name: str, indexes: tuple) -> None:
    """The events table renamed, without its indexes (their names are the new table's)."""
    for index, _, _ in indexes:
        op.drop_index(index, table_name="events")
    op.rename_table("events", name)


def _finish(old: str, indexes: tuple) -> None:
    op.drop_table(old)
    for index, columns, where in indexes:
        condition = sa.text(where) if where else None
        op.create_index(index, "events", columns, sqlite_where=condition, postgresql_where=condition)
    if op.get_bind().dialect.name == "postgresql":
        # The trail stays append-only (migration 0002 made the function; the old table's triggers went with it).
        op.execute("CREATE TRIGGER usm_events_append_only BEFORE UPDATE OR DELETE ON events "
                   "FOR EACH ROW EXECUTE FUNCTION usm_events_append_only()")
        op.execute("CREATE TRIGGER usm_events_no_truncate BEFORE TRUNCATE ON events "
                   "FOR EACH STATEMENT EXECUTE FUNCTION usm_events_append_only()")


def _from_hex(column: str) -> str:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        return f"decode({column}, 'hex')"
    # SQLite has unhex() only from 3.41; Python's is the same rule on any version.
    bind.connection.driver_connection.create_function("usm_unhex", 1, bytes.fromhex, deterministic=True)
    return f"usm_unhex({column})"


def _to_hex(column: str) -> str:
    return f"encode({column}, 'hex')" if op.get_bind().dialect.name == "postgresql" else f"lower(hex({column}))"
