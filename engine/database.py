"""Connections and schema migrations, for SQLite (the embedded default) and PostgreSQL.

SQLite allows one writer at a time. A transaction that starts as a reader and later writes can fail
at once with "database is locked" when another writer got in between, whatever the busy timeout.
So writes begin with BEGIN IMMEDIATE (they queue on the busy timeout instead), and reads run on a
separate engine with ordinary deferred transactions so they never wait for writers (WAL mode).

On PostgreSQL every round trip costs both processes CPU on a small machine, so the hot paths make as
few as they can: reads run without a transaction (under READ COMMITTED each statement has a snapshot of
its own anyway, so BEGIN and ROLLBACK would only add two trips), and a pooled connection is pinged only
when it has been idle long enough that the server may have dropped it.
"""
from __future__ import annotations

import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event, exc
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import ConnectionPoolEntry

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
_log = logging.getLogger("usm.database")
# A connection used within this many seconds is handed out without a ping (HikariCP's rule too): a busy
# pool pings nothing, one idle for longer checks the server is still there before a request relies on it.
PING_AFTER_IDLE_SECONDS = 1.0
# SQLite's write-ahead log. The timer worker checkpoints it every second (checkpoint() below) so that requests
# do not; without one, the commit that takes it past WAL_AUTOCHECKPOINT pages (80 MB) does. Neither can start
# the log over while a reader is in it, and steady overlapping reads can keep one there for long (bench/storage.py
# --threads 8: up to 120 MB, BENCHMARKS.md), so a write that leaves the log past WAL_LIMIT_BYTES empties it, holding
# writers up for at most WAL_LIMIT_WAIT_MS while the readers in it finish; a long reader (an export, a
# verification) outlasts that, and then the next try waits WAL_LIMIT_RETRY_SECONDS. WAL_KEEP_BYTES
# (journal_size_limit) cuts the file back whenever the log starts over, so a burst leaves no large file behind.
WAL_AUTOCHECKPOINT = 20000
WAL_LIMIT_BYTES = 96 * 2**20
WAL_LIMIT_WAIT_MS = 50
WAL_LIMIT_RETRY_SECONDS = 1.0
WAL_KEEP_BYTES = 16 * 2**20
BUSY_TIMEOUT_MS = 30000


@dataclass
class Database:
    """`reader` for reads of a few rows (no transaction on PostgreSQL); `snapshot` for reads whose
    statements must agree with each other or that stream (a trail's verification, exports); `writer`
    for units of work."""

    url: str
    reader: Engine
    writer: Engine
    snapshot: Engine

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    @property
    def autocommit(self) -> Engine:
        """PostgreSQL only: every statement its own transaction (the reader's engine), so that one statement
        writing several tables is written whole or not at all in one round trip (store_steps.py)."""
        assert not self.is_sqlite, "SQLite writes in transactions (BEGIN IMMEDIATE)"
        return self.reader

    def connections_in_use(self) -> int:
        """Connections checked out of this process's pools (the snapshot shares the writer's)."""
        pools = {id(engine.pool): engine.pool for engine in (self.reader, self.writer)}.values()
        return sum(pool.checkedout() for pool in pools if hasattr(pool, "checkedout"))

    def dispose(self) -> None:
        self.reader.dispose()
        self.writer.dispose()


def _sqlite_engine(url: str, immediate: bool) -> Engine:
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module so BEGIN is ours to emit.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes in WAL mode
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        # Checkpoints would otherwise run inside whichever request's COMMIT crosses 1000 pages; the
        # timer worker checkpoints every second instead (checkpoint() below), and this is the backstop.
        cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT}")
        cursor.execute(f"PRAGMA journal_size_limit={WAL_KEEP_BYTES}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    if immediate:
        _bound_wal(engine, url.split("///", 1)[-1])
    return engine


def _bound_wal(writer: Engine, path: str) -> None:
    """After each write, a log past WAL_LIMIT_BYTES is checkpointed and emptied (TRUNCATE). One thread of a
    process at a time: SQLite refuses a second checkpointer at once, so the others go on with their requests."""
    if not path or path == ":memory:":
        return
    log, one_at_a_time, retry_at = Path(f"{path}-wal"), threading.Lock(), [0.0]

    @event.listens_for(writer, "checkin")
    def _checkin(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        if dbapi_connection is None or time.monotonic() < retry_at[0] or _size(log) <= WAL_LIMIT_BYTES:
            return
        if not one_at_a_time.acquire(blocking=False):
            return
        try:
            dbapi_connection.execute(f"PRAGMA busy_timeout={WAL_LIMIT_WAIT_MS}")
            try:
                busy, frames, _ = dbapi_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            finally:
                dbapi_connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            if busy and frames > 0:  # readers stayed in the log (-1: another connection was checkpointing it)
                retry_at[0] = time.monotonic() + WAL_LIMIT_RETRY_SECONDS
            _log.debug("write-ahead log past its limit: checkpoint busy=%s frames=%s", busy, frames)
        except sqlite3.Error as error:
            # The write is committed, so its request must not fail; the connection, perhaps left with the short
            # busy timeout, is replaced; a later write tries again.
            _log.warning("could not empty the write-ahead log: %s", error)
            record.invalidate(error)
        finally:
            one_at_a_time.release()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:  # no log yet, or the last connection removed it
        return 0


def connect(url: str, pool_size: int) -> Database:
    """The reader and writer engines for `url`. On PostgreSQL two pools of `pool_size` connections each (and as
    many again on overflow): one in autocommit for the reader and the one-statement writes, one for
    transactions (the writer, and the snapshot reads). Their own pools rather than one whose connections are
    switched as they are handed out: the switch and its undoing on return cost about a third of what a hot
    statement costs (BENCHMARKS.md)."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        reader = _sqlite_engine(url, immediate=False)  # a deferred transaction in WAL mode is a snapshot
        return Database(url, reader, _sqlite_engine(url, immediate=True), reader)
    engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size)
    # Nothing to reset on return: in autocommit no transaction is ever left open.
    autocommit = create_engine(url, pool_size=pool_size, max_overflow=pool_size, isolation_level="AUTOCOMMIT",
                               pool_reset_on_return=None)
    _ping_when_idle(engine)
    _ping_when_idle(autocommit)
    return Database(url, autocommit, engine,
                    engine.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True))


def _ping_when_idle(engine: Engine) -> None:
    """Like pool_pre_ping, but only for connections idle longer than PING_AFTER_IDLE_SECONDS. A dead one
    is replaced before use (the pool retries a checkout that raises DisconnectionError)."""

    @event.listens_for(engine, "checkin")
    def _checkin(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return  # just connected, or used a moment ago
        # Outside a transaction: a checked-in connection is idle, and a BEGIN left open here would stop
        # the checkout from switching the connection to autocommit.
        autocommit = dbapi_connection.autocommit
        try:
            dbapi_connection.autocommit = True
            dbapi_connection.execute("SELECT 1")
            dbapi_connection.autocommit = autocommit
        except engine.dialect.loaded_dbapi.Error as error:
            raise exc.DisconnectionError(f"the database connection was lost: {error}") from error


def migrate(database: Database) -> None:
    """Bring the schema to the newest revision (creating it on an empty database)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with database.writer.begin() as connection:
        if not database.is_sqlite:
            # Several servers may start at once against one PostgreSQL; migrate one at a time.
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(727274)")
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def checkpoint(database: Database) -> None:
    """Copy the SQLite write-ahead log into the database without blocking anyone (PASSIVE)."""
    if database.is_sqlite:
        with database.reader.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
