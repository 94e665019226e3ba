"""What a command on a task reads first: the row of the case that holds the task and that case's ready tasks,
found by the task's id, in ONE statement (the task itself is among them when it is ready).

Completing a task is the hot path. As two statements (the ready tasks, then the case) it cost a round trip
more, which on a PostgreSQL on another host is most of a completion's time (BENCHMARKS.md). The case's
columns come once per ready task; a case has few open tasks at a time, and none still gives its row (the
join is an outer one).
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import and_, bindparam, select
from sqlalchemy.engine import Connection, Row, result_tuple

from . import driver_statements
from .schema import READY_STATE, cases, tasks

_HOLDER = tasks.alias("holder")
_READY = tasks.alias("ready")
# The ready tasks' columns are labelled: both tables have an id, a state, a created_at.
_CASE_AND_READY_TASKS = (
    select(*cases.c, *[column.label(f"ready_{column.name}") for column in _READY.c])
    .select_from(cases.outerjoin(_READY, and_(_READY.c.case_id == cases.c.id,
                                              _READY.c.state == READY_STATE)))  # ix_tasks_ready_case
    .where(cases.c.id == select(_HOLDER.c.case_id).where(_HOLDER.c.id == bindparam("b_id")).scalar_subquery())
    .order_by(_READY.c.created_at, _READY.c.id))
_CASE_WIDTH = len(cases.c)
_case_row = result_tuple([column.name for column in cases.c])
_task_row = result_tuple([column.name for column in tasks.c])


def case_beside_task(conn: Connection, task_id: str) -> tuple[Row[Any] | None, list[Row[Any]]]:
    """The row of the case holding task `task_id` (None if there is no such task) and the case's ready tasks
    in order, whatever the state of the task they were found by; rows as the two tables' own reads give them."""
    rows = driver_statements.rows(conn, _CASE_AND_READY_TASKS, {"b_id": task_id})
    if not rows:
        return None, []
    ready = [_task_row(row[_CASE_WIDTH:]) for row in rows if row[_CASE_WIDTH] is not None]
    return _case_row(rows[0][:_CASE_WIDTH]), ready
