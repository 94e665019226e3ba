"""Connections and schema migrations, for SQLite (the embedded default) and PostgreSQL.

SQLite allows one writer at a time. A transaction that starts as a reader and later writes can fail
at once with "database is locked" when another writer got in between, whatever the busy timeout.
So writes begin with BEGIN IMMEDIATE (they queue on the busy timeout instead), and reads run on a
separate engine with ordinary deferred transactions so they never wait for writers (WAL mode).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


@dataclass
class Database:
    url: str
    reader: Engine
    writer: Engine

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

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
        cursor.execute("PRAGMA busy_timeout=30000")
        # Checkpoints would otherwise run inside whichever request's COMMIT crosses 1000 pages; the
        # timer worker checkpoints every second instead (checkpoint() below), and this is the backstop.
        cursor.execute("PRAGMA wal_autocheckpoint=20000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def connect(url: str, pool_size: int) -> Database:
    """The reader and writer engines for `url`; on PostgreSQL one pool of `pool_size` connections (as many
    again on overflow) serves both."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        return Database(url, _sqlite_engine(url, immediate=False), _sqlite_engine(url, immediate=True))
    engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
    return Database(url, engine, engine)


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
