"""`usm serve` with EXPERIMENTAL changes to the engine's database layer, for
`python -m bench.run --experiment write-lock,checkpoint-off-path,quiet-spiff-log`.

This is not the engine's code and not meant for production as is: each experiment tests one
hypothesis from the profile (see BENCHMARKS.md) by patching engine modules at start-up. Choose them
with USM_BENCH_EXPERIMENTS (comma-separated):

write-lock
    Every SQLite write transaction starts with BEGIN IMMEDIATE; a writer that finds the lock taken
    sleeps in SQLite's busy handler, which polls with growing sleeps (1, 2, 5, 10, 15, 20, 25 ... 100 ms),
    so with more writers than cores the lock often sits free while everybody sleeps. Here a write
    transaction first takes a per-process threading lock and then an exclusive flock() on
    '<database>.writelock', which the kernel hands to the next waiter the moment it is released.
prebuilt-sql (adopted)
    Now how engine/store.py builds the statements of the complete-task path; no longer a patch.
quiet-spiff-log
    create_app() configures INFO logging, and SpiffWorkflow logs every task state change at INFO
    ("State changed to READY", ...), several lines per completion into the server's error log. Here
    the 'spiff' loggers are set to WARNING.
checkpoint-off-path
    WAL auto-checkpoints run inside whichever COMMIT crosses 1000 pages, so some requests pay for
    copying the WAL into the database. Here auto-checkpointing is off and a background thread per
    process runs PRAGMA wal_checkpoint(PASSIVE) once a second instead (as `usm worker` could).

    USM_BENCH_EXPERIMENTS=write-lock python -m bench.experimental_serve serve --port 8123 --workers 3
"""
from __future__ import annotations

import contextlib
import fcntl
import importlib
import os
import sys
import threading
import time

import engine.database as database

EXPERIMENTS = ("write-lock", "checkpoint-off-path", "quiet-spiff-log")
_original_connect = database.connect


class LockedWriter:
    """The writer engine, but begin() is serialized across threads and processes."""

    def __init__(self, engine, lock_path: str):
        self._engine = engine
        self._thread_lock = threading.Lock()
        self._fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)

    def __getattr__(self, name):
        return getattr(self._engine, name)

    @contextlib.contextmanager
    def begin(self):
        with self._thread_lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                with self._engine.begin() as conn:
                    yield conn
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)


def _checkpointer(path: str) -> None:
    import sqlite3

    def loop():
        conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        while True:
            time.sleep(1.0)
            try:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error:
                pass

    threading.Thread(target=loop, name="wal-checkpointer", daemon=True).start()


def experimental_connect(url: str, chosen: frozenset[str]):
    db = _original_connect(url)
    if not db.is_sqlite:
        return db
    path = url.split("///", 1)[-1]
    if "checkpoint-off-path" in chosen:
        from sqlalchemy import event

        for engine in (db.reader, db.writer):
            @event.listens_for(engine, "connect")
            def _no_autocheckpoint(dbapi_connection, _record):
                dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")
        _checkpointer(path)
    if "write-lock" in chosen:
        db.writer = LockedWriter(db.writer, path + ".writelock")
    return db


def install(chosen: frozenset[str]) -> None:
    unknown = chosen - set(EXPERIMENTS)
    if unknown:
        raise SystemExit(f"unknown experiment(s): {', '.join(sorted(unknown))}; known: {', '.join(EXPERIMENTS)}")
    if chosen & {"write-lock", "checkpoint-off-path"}:
        def connect(url):
            return experimental_connect(url, chosen)

        database.connect = connect
        for name, module in list(sys.modules.items()):  # modules that did `from .database import connect`
            if name.startswith("engine.") and getattr(module, "connect", None) is _original_connect:
                module.connect = connect
    if "quiet-spiff-log" in chosen:
        import logging

        logging.getLogger("spiff").setLevel(logging.WARNING)


def main() -> int:
    importlib.import_module("engine.service")  # load the engine first so install() patches its `connect`
    from api.cli import main as usm

    install(frozenset(e for e in os.environ.get("USM_BENCH_EXPERIMENTS", "").split(",") if e))
    return usm()


if __name__ == "__main__":
    sys.exit(main())
