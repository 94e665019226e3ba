"""The PostgreSQL pool: reads without a transaction, snapshots for reads that must agree, and a
connection the server dropped while it sat idle replaced before a request uses it."""
from __future__ import annotations

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from tests.conftest import postgres_url_or_skip
from usm_engine.engine import database


def test_reads_run_outside_a_transaction_and_snapshots_inside_one():
    db = database.connect(postgres_url_or_skip(), pool_size=2)
    try:
        with db.reader.connect() as conn:
            conn.execute(text("SELECT 1"))
            assert conn.connection.dbapi_connection.autocommit is True
        with db.snapshot.connect() as conn:
            assert conn.execute(text("SHOW transaction_isolation")).scalar() == "repeatable read"
            assert conn.execute(text("SHOW transaction_read_only")).scalar() == "on"
        with db.writer.begin() as conn:  # the writer's connection is back to an ordinary transaction
            assert conn.execute(text("SHOW transaction_isolation")).scalar() == "read committed"
            assert conn.execute(text("SHOW transaction_read_only")).scalar() == "off"
    finally:
        db.dispose()


def test_a_connection_dropped_while_idle_is_replaced_before_use(monkeypatch):
    url = postgres_url_or_skip()
    db = database.connect(url, pool_size=1)
    admin = create_engine(url, poolclass=NullPool)
    try:
        with db.reader.connect() as conn:
            first = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        with admin.connect() as conn:  # what a server restart or an idle timeout does to a pooled connection
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        monkeypatch.setattr(database, "PING_AFTER_IDLE_SECONDS", 0.0)  # as if it had sat idle a while
        with db.reader.connect() as conn:
            second = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        assert second != first
    finally:
        db.dispose()
        admin.dispose()


def test_autocommit_statements_and_transactions_have_pools_of_their_own():
    """A connection stays in the mode it was opened in (switching it on every checkout cost CPU on the hot
    path), and the metrics count the connections in use in both pools."""
    db = database.connect(postgres_url_or_skip(), pool_size=1)
    try:
        with db.reader.connect() as reading, db.writer.connect() as writing:
            assert reading.connection.dbapi_connection.autocommit is True
            assert writing.connection.dbapi_connection.autocommit is False
            pids = {conn.execute(text("SELECT pg_backend_pid()")).scalar() for conn in (reading, writing)}
            assert len(pids) == 2
            assert db.connections_in_use() == 2
        assert db.connections_in_use() == 0
        with db.writer.begin() as conn:  # a transaction's connection goes back to its own pool, not the reader's
            conn.execute(text("SELECT 1"))
        with db.reader.connect() as conn:
            assert conn.connection.dbapi_connection.autocommit is True
            assert conn.execute(text("SHOW transaction_read_only")).scalar() == "off"
    finally:
        db.dispose()
