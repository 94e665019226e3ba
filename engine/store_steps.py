"""The write of a case's step on PostgreSQL as ONE statement.

A command's save (case_work.CaseWork.save) writes the case row, guarded by the row version it read, ends the
tasks that are over, inserts those that became ready and appends the step's audit events. As a transaction
that is BEGIN, four statements and COMMIT: six round trips, which with PostgreSQL on another host are most
of a command's time, and cost the server CPU even on loopback (BENCHMARKS.md). PostgreSQL runs writing WITH
clauses as one statement, and one statement in autocommit is one transaction: all of it is written or none. Every
part after the case row writes only if the case row was written (EXISTS over its RETURNING), so a lost race
writes nothing, as the transaction's rollback would. The new rows travel as one JSON document per table
(json_populate_recordset), so the statement's text depends only on which columns of the case row are written:
each such statement is built once and prepared by the driver like any other. JSON rather than one array per
column: psycopg dumps a list element by element in Python, which cost more than the rest of the statement
(BENCHMARKS.md); orjson writes the document in a few microseconds. The statement is run by the driver itself
(driver_statements.py).

SQLite has no writes in WITH, and runs in-process, where a statement costs no round trip: it keeps the
transaction, as do the saves that write more than this (message waits, linked cases, a command's own checks).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import JSON, Select, Table, Text, bindparam, cast, exists, func, insert, literal_column, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.selectable import TableValuedAlias

from . import driver_statements
from .schema import READY_STATE, cases, events, tasks
from .store import EVENT_COLUMNS, TASK_COLUMNS, case_update


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
    params["x_ids"] = _json(step.cancelled)
    params["t_rows"] = _json([{name: row[name] for name in TASK_COLUMNS} for row in step.new_tasks])
    params["v_rows"] = _json([{name: row[name] for name in EVENT_COLUMNS} for row in step.events])
    (count,), = driver_statements.rows(conn, _statement(tuple(sorted(step.columns))), params)
    return bool(count == 1)


def _json(value: Any) -> str:
    """Rows as PostgreSQL reads them from JSON: times as ISO 8601 (with their offset, which a column without a
    time zone ignores: the engine's times are UTC), bytes as bytea's hex form."""
    return orjson.dumps(value, default=_bytea).decode()


def _bytea(value: Any) -> str:
    if isinstance(value, bytes):
        return "\\x" + value.hex()
    raise TypeError(f"{type(value).__name__} cannot be written in a step's JSON rows")


@functools.cache  # per set of case columns written, as store.case_update
def _statement(columns: tuple[str, ...]) -> Select[Any]:
    saved = case_update(columns).returning(cases.c.id).cte("saved")
    was_saved = exists(select(saved.c.id))
    # Each task by its primary key: a join with the ids would let the planner walk the ready tasks instead.
    completed = (update(tasks).where(tasks.c.id == bindparam("c_id"), tasks.c.state == READY_STATE, was_saved)
                 .values(state="completed", ended_at=bindparam("b_at"), completed_by=bindparam("c_by"))
                 .cte("completed"))
    # By primary key (= ANY of an array made once), as `completed`: an IN (subquery) would let the planner join
    # with every ready task (a hash semi join over ix_tasks_state_created, seen with EXPLAIN).
    cancelled_ids = func.array(select(func.json_array_elements_text(_json_param("x_ids"))).scalar_subquery())
    cancelled = (update(tasks).where(tasks.c.id == func.any(cancelled_ids), tasks.c.state == READY_STATE, was_saved)
                 .values(state="cancelled", ended_at=bindparam("b_at")).cte("cancelled"))
    new_tasks = _insert_from(tasks, _json_rows(tasks, "t_rows", TASK_COLUMNS, "new_task"), TASK_COLUMNS, was_saved)
    new_events = _insert_from(events, _json_rows(events, "v_rows", EVENT_COLUMNS, "new_event"), EVENT_COLUMNS,
                              was_saved)
    return select(func.count()).select_from(saved).add_cte(completed, cancelled, new_tasks.cte("new_tasks"),
                                                           new_events.cte("new_events"))


def _json_param(name: str) -> Any:
    """A bind parameter carrying a JSON document as text: SQLAlchemy's JSON type would serialize it again."""
    return cast(bindparam(name, type_=Text), JSON)


def _json_rows(table: Table, param: str, names: tuple[str, ...], alias: str) -> TableValuedAlias:
    """The rows of the JSON array in `param`, typed as `table`'s columns, as a table named `alias`."""
    return (func.json_populate_recordset(literal_column(f"NULL::{table.name}"), _json_param(param))
            .table_valued(*[table.c[name] for name in names]).alias(alias))  # columns by name, as the type has them


def _insert_from(table: Table, rows: TableValuedAlias, names: tuple[str, ...], condition: Any) -> Any:
    return insert(table).from_select(list(names), select(*[rows.c[name] for name in names]).where(condition))
