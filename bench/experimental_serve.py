"""`usm serve` with EXPERIMENTAL changes to the engine's database layer, for
`python -m bench.run --experiment write-lock,prebuilt-sql,checkpoint-off-path,quiet-spiff-log`.

This is not the engine's code and not meant for production as is: each experiment tests one
hypothesis from the profile (see BENCHMARKS.md) by patching engine modules at start-up. Choose them
with USM_BENCH_EXPERIMENTS (comma-separated):

write-lock
    Every SQLite write transaction starts with BEGIN IMMEDIATE; a writer that finds the lock taken
    sleeps in SQLite's busy handler, which polls with growing sleeps (1, 2, 5, 10, 15, 20, 25 ... 100 ms),
    so with more writers than cores the lock often sits free while everybody sleeps. Here a write
    transaction first takes a per-process threading lock and then an exclusive flock() on
    '<database>.writelock', which the kernel hands to the next waiter the moment it is released.
prebuilt-sql
    store.py builds every statement on each call (select(...).where(...), update(...).values(**v)),
    and SQLAlchemy then spends more time on construction and cache keys than SQLite spends running
    it. Here the statements of the complete-task path are built once, with bindparam().
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
from engine import store

EXPERIMENTS = ("write-lock", "prebuilt-sql", "checkpoint-off-path", "quiet-spiff-log")
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


def install_prebuilt_sql() -> None:
    """The statements of the complete-task path, built once (falls back to store.py for other shapes)."""
    from sqlalchemy import bindparam, select, update

    from engine.schema import cases, tasks

    original = {name: getattr(store, name) for name in
                ("get_task", "get_case", "ready_tasks_of_cases", "update_case", "end_tasks")}
    get_task = select(tasks).where(tasks.c.id == bindparam("b_id"))
    get_case = select(cases).where(cases.c.id == bindparam("b_id"))
    ready_of_one = (select(tasks).where(tasks.c.case_id == bindparam("b_case"), tasks.c.state == "ready")
                    .order_by(tasks.c.created_at, tasks.c.id))
    end_one = (update(tasks).where(tasks.c.id == bindparam("b_id"), tasks.c.state == "ready")
               .values(state=bindparam("b_state"), ended_at=bindparam("b_at"), completed_by=bindparam("b_by")))
    updates: dict = {}

    def fast_get_task(conn, task_id):
        return conn.execute(get_task, {"b_id": task_id}).first()

    def fast_get_case(conn, case_id):
        return conn.execute(get_case, {"b_id": case_id}).first()

    def fast_ready_tasks_of_cases(conn, case_ids):
        if len(case_ids) != 1:
            return original["ready_tasks_of_cases"](conn, case_ids)
        return {case_ids[0]: list(conn.execute(ready_of_one, {"b_case": case_ids[0]}))}

    def fast_update_case(conn, case_id, expected_version, values):
        key = tuple(sorted(values))
        statement = updates.get(key)
        if statement is None:
            statement = updates[key] = (
                update(cases).where(cases.c.id == bindparam("b_id"), cases.c.row_version == bindparam("b_rv"))
                .values({**{name: bindparam(name) for name in key}, "row_version": bindparam("b_next")}))
        result = conn.execute(statement, {"b_id": case_id, "b_rv": expected_version,
                                          "b_next": expected_version + 1, **values})
        return result.rowcount == 1

    def fast_end_tasks(conn, task_ids, state, at, by=None):
        if len(task_ids) != 1:
            return original["end_tasks"](conn, task_ids, state, at, by)
        conn.execute(end_one, {"b_id": task_ids[0], "b_state": state, "b_at": at, "b_by": by})

    store.get_task, store.get_case = fast_get_task, fast_get_case
    store.ready_tasks_of_cases, store.update_case, store.end_tasks = (
        fast_ready_tasks_of_cases, fast_update_case, fast_end_tasks)


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
    if "prebuilt-sql" in chosen:
        install_prebuilt_sql()
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
