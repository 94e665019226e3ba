"""The write of a case's step on PostgreSQL as ONE statement.

A command's save (case_work.CaseWork.save) writes the case row, guarded by the row version it read, ends the
tasks that are over, inserts those that became ready and appends the step's audit events. As a transaction
that is BEGIN, four statements and COMMIT: six round trips, which with PostgreSQL on another host are most
of a command's time, and cost the server CPU even on loopback (BENCHMARKS.md). PostgreSQL runs writing WITH
clauses as one statement, and one statement in autocommit is one transaction: all of it is written or none. Every
part after the case row writes only if the case row was written (EXISTS over its RETURNING), so a lost race
writes nothing, as the transaction's rollback would. The rows travel as arrays (unnest), so the statement's
text depends only on which columns of the case row are written: each such statement is built once and
prepared by the driver like any other.

SQLite has no writes in WITH, and runs in-process, where a statement costs no round trip: it keeps the
transaction, as do the saves that write more than this (message waits, linked cases, a command's own checks).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, Select, Table, bindparam, exists, func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.selectable import TableValuedAlias

from .schema import READY_STATE, cases, events, tasks
from .store import case_update

_TASK_COLUMNS = tuple(column.name for column in tasks.c)
_EVENT_COLUMNS = tuple(column.name for column in events.c if column.name != "definition_hash")  # set by old rows only


@dataclass(frozen=True)
class CompletedTask:
    """The task a command completed, and who completed it: its row ends completed, not cancelled."""

    task_id: str
    actor: str


@dataclass(frozen=True)
class Step:
    """What a save writes: the case row's new columns (if its row version is still `expected_version`); at
    `at`, the task a command completed and by whom, and the tasks cancelled; the new task rows; the event rows."""

    case_id: str
    expected_version: int
    columns: dict[str, Any]
    at: datetime
    completed: CompletedTask | None = None
    cancelled: list[str] = field(default_factory=list)
    new_tasks: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)


def write_step(conn: Connection, step: Step) -> bool:
    """Write the step on an autocommit connection; False, and nothing written, if the case row changed since
    it was read."""
    params: dict[str, Any] = {"b_id": step.case_id, "b_expected": step.expected_version,
                              "b_next": step.expected_version + 1, "b_at": step.at, **step.columns}
    params["c_id"] = step.completed.task_id if step.completed else None
    params["c_by"] = step.completed.actor if step.completed else None
    params["x_ids"] = step.cancelled
    params.update(_as_arrays("t_", _TASK_COLUMNS, step.new_tasks))
    params.update(_as_arrays("v_", _EVENT_COLUMNS, step.events))
    return conn.execute(_statement(tuple(sorted(step.columns))), params).scalar_one() == 1


def _as_arrays(prefix: str, names: tuple[str, ...], rows: list[dict[str, Any]]) -> dict[str, list]:
    return {prefix + name: [row[name] for row in rows] for name in names}


@functools.cache  # per set of case columns written, as store.case_update
def _statement(columns: tuple[str, ...]) -> Select[Any]:
    saved = case_update(columns).returning(cases.c.id).cte("saved")
    was_saved = exists(select(saved.c.id))
    # Each task by its primary key: a join with the ids would let the planner walk the ready tasks instead.
    completed = (update(tasks).where(tasks.c.id == bindparam("c_id"), tasks.c.state == READY_STATE, was_saved)
                 .values(state="completed", ended_at=bindparam("b_at"), completed_by=bindparam("c_by"))
                 .cte("completed"))
    cancelled = (update(tasks).where(tasks.c.id == func.any(bindparam("x_ids", type_=ARRAY(tasks.c.id.type))),
                                     tasks.c.state == READY_STATE, was_saved)
                 .values(state="cancelled", ended_at=bindparam("b_at")).cte("cancelled"))
    new_tasks = _insert_from(tasks, _unnested(tasks, "t_", _TASK_COLUMNS, "new_task"), _TASK_COLUMNS, was_saved)
    new_events = _insert_from(events, _unnested(events, "v_", _EVENT_COLUMNS, "new_event"), _EVENT_COLUMNS,
                              was_saved)
    return select(func.count()).select_from(saved).add_cte(completed, cancelled, new_tasks.cte("new_tasks"),
                                                           new_events.cte("new_events"))


def _unnested(table: Table, prefix: str, names: tuple[str, ...], alias: str) -> TableValuedAlias:
    """Rows given as one array per column (bind parameters prefix + column name), as a table named `alias`."""
    arrays = [bindparam(prefix + name, type_=ARRAY(table.c[name].type)) for name in names]
    return func.unnest(*arrays).table_valued(*names).render_derived(alias)


def _insert_from(table: Table, rows: TableValuedAlias, names: tuple[str, ...], condition: Any) -> Any:
    return insert(table).from_select(list(names), select(*[rows.c[name] for name in names]).where(condition))
