"""The SQL of external task locks. Every lock change is a conditional update, so two workers never hold
one task and a worker whose lock ran out cannot act as if it still held it."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.engine import Connection

from .schema import cases, tasks


def lockable_tasks(conn: Connection, topics: list[str], now: datetime, limit: int) -> list:
    """Ready external tasks of running cases on these topics that nobody holds a live lock on, oldest first."""
    query = (select(tasks.c.id).join(cases, cases.c.id == tasks.c.case_id)
             .where(tasks.c.topic.in_(topics), tasks.c.state == "ready", cases.c.status == "running",
                    or_(tasks.c.locked_until.is_(None), tasks.c.locked_until <= now))
             .order_by(tasks.c.created_at, tasks.c.id).limit(limit)
             # PostgreSQL: workers asking at once each take other rows instead of queueing for the same
             # ones (SQLite writers are serialized anyway and ignore this).
             .with_for_update(of=tasks, skip_locked=True))
    return [row.id for row in conn.execute(query)]


def lock_task(conn: Connection, task_id: str, worker: str, until: datetime, now: datetime) -> bool:
    """Take the lock unless someone else took it first (the condition makes it one atomic step)."""
    result = conn.execute(update(tasks).where(
        tasks.c.id == task_id, tasks.c.state == "ready",
        or_(tasks.c.locked_until.is_(None), tasks.c.locked_until <= now)).values(locked_by=worker, locked_until=until))
    return result.rowcount == 1


def extend_lock(conn: Connection, task_id: str, worker: str, until: datetime, now: datetime) -> bool:
    """Move a live lock's end, only for the worker that holds it."""
    result = conn.execute(update(tasks).where(
        tasks.c.id == task_id, tasks.c.state == "ready", tasks.c.locked_by == worker, tasks.c.locked_until > now)
        .values(locked_until=until))
    return result.rowcount == 1


def holds_lock(conn: Connection, task_id: str, worker: str, now: datetime) -> bool:
    """Inside a write: whether the worker still holds a live lock on the ready task. A conditional
    update rather than a read, so that on PostgreSQL it also waits for, and sees, a concurrent locker."""
    result = conn.execute(update(tasks).where(
        tasks.c.id == task_id, tasks.c.state == "ready", tasks.c.locked_by == worker, tasks.c.locked_until > now)
        .values(locked_by=worker))
    return result.rowcount == 1


def unlock_task(conn: Connection, task_id: str) -> None:
    conn.execute(update(tasks).where(tasks.c.id == task_id).values(locked_by=None, locked_until=None))
