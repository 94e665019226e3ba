"""External service tasks: fetched, locked and completed (or failed) by workers.

A worker's command is checked against its lock twice: before the work begins, and again inside the
write, because the lock may run out (and another worker take the task) while the command runs.
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from SpiffWorkflow.task import Task
from sqlalchemy.engine import Connection, Row

from . import incidents, store, store_locks
from .audit import data_changes
from .case_work import CaseRows, CaseWork, InTransaction, open_rows, read_case_rows
from .data_limits import check_incoming_data
from .errors import Conflict, NextStep, NotAllowed, TaskNotFound, TaskNotReady
from .incidents import Place
from .parts import EngineParts
from .representation import task_representation
from .runner import Outcome, external_task, failed_step, outcome_with_incident
from .store_steps import CompletedTask

MayComplete = Callable[[str | None], bool]  # whether the caller may complete a task of this lane (None: no lane)


def lock_external_tasks(parts: EngineParts, worker: str, topics: list[str], max_tasks: int,
                        lock_seconds: int) -> list[dict]:
    """Lock up to `max_tasks` ready external tasks on these topics for `worker`, oldest first. Two
    workers asking at once never get the same task: each lock is a conditional update."""
    now = parts.now()
    until = now + timedelta(seconds=lock_seconds)
    with parts.db.writer.begin() as conn:
        locked = [task_id for task_id in store_locks.lockable_tasks(conn, topics, now, max_tasks)
                  if store_locks.lock_task(conn, task_id, worker, until, now)]
    with parts.db.reader.connect() as conn:
        tasks = [_task_row(conn, task_id) for task_id in locked]
        case_ids = {task.case_id for task in tasks}
        pins = store.case_pins(conn, case_ids)
        summaries = [store.get_case_summary(conn, case_id) for case_id in case_ids]
    cases = {case.id: case for case in summaries if case is not None}
    return [{**task_representation(parts.specs, task, pins[task.case_id]), "data": json.loads(cases[task.case_id].data),
             "business_key": cases[task.case_id].business_key, **_parameters(parts, task, pins[task.case_id])}
            for task in tasks]


def _parameters(parts: EngineParts, task: Row[Any], case: Any) -> dict:
    """{"parameters": ...} of a job whose model gives its worker literal parameters (worker_tasks.py)."""
    blueprint = parts.specs.blueprint(case.definition_key, case.definition_version, json.loads(case.pins))
    found = blueprint.external_parameters.get((task.process_id, task.element_id))
    return {"parameters": found} if found else {}


def extend_external_lock(parts: EngineParts, task_id: str, worker: str, lock_seconds: int,
                         may_complete: MayComplete) -> dict:
    """A worker with a long job keeps its lock: it now runs `lock_seconds` from now."""
    with parts.db.reader.connect() as conn:
        task = _external_task_row(conn, task_id, "only external tasks have locks")
    check_lock_held(parts, task, may_complete, worker, "extended")
    now = parts.now()
    with parts.db.writer.begin() as conn:
        if not store_locks.extend_lock(conn, task_id, worker, now + timedelta(seconds=lock_seconds), now):
            raise Conflict(f"worker '{worker}' lost the lock on task '{task.name or task.element_id}' just now; "
                           "lock it again", next_step=NextStep.LOCK_EXTERNAL_TASKS)
        task = _task_row(conn, task_id)
        pins = store.case_pins(conn, {task.case_id})[task.case_id]
    return task_representation(parts.specs, task, pins)


def complete_external_task(parts: EngineParts, task: Row[Any], rows: CaseRows, data: dict, actor: str,
                           if_match: str | None, worker: str) -> dict:
    """The worker did the job: its data goes into the case, which goes on (the lock was checked)."""
    check_incoming_data(data, parts.settings.max_case_data_bytes)
    work, spiff_task = open_external(parts, task, rows, actor, if_match)
    before = {key: spiff_task.data.get(key) for key in data if key in spiff_task.data}
    work.recorder.add("task_completed", task.element_id, data_changes(before, data), process=task.process_id,
                      task_id=task.id, worker=worker)
    spiff_task.data.update(data)
    try:
        spiff_task.complete()
    except Exception as exc:  # noqa: BLE001 - SpiffWorkflow fails the step as it completes (a declared output missing)
        return _not_completed(parts, task, rows, actor, worker, failed_step(work.workflow, work.blueprint, exc))
    return work.save(work.advance(), completed_task=CompletedTask(task.id, actor),
                     in_transaction=_lock_still_held(task, worker, work.recorder.at))


def _not_completed(parts: EngineParts, task: Row[Any], rows: CaseRows, actor: str, worker: str,
                   failed: Outcome) -> dict:
    """The completion failed: the case, as it was before it, gets the incident at the task, which waits for its
    worker again with its lock released, as after the worker's own failure (a retry's data goes to it)."""
    work, _ = open_external(parts, task, rows, actor, None)
    still_held = _lock_still_held(task, worker, work.recorder.at)

    def release(conn: Connection) -> None:
        still_held(conn)
        store_locks.unlock_task(conn, task.id)

    assert failed.incident is not None  # failed_step always gives one
    # Naming the task makes a retry's data go to it (case_lifecycle.retry_case), as after a worker's failure.
    incident = dataclasses.replace(failed.incident, task_id=task.id)
    return work.save(outcome_with_incident(work.workflow, work.blueprint, incident), in_transaction=release)


def fail_external_task(parts: EngineParts, task_id: str, worker: str | None, message: str, actor: str,
                       may_complete: MayComplete) -> dict:
    """The worker could not do the job: the case gets an incident at the task, and the lock is
    released so that, after a retry, a worker can fetch the task again."""
    with parts.db.reader.connect() as conn:
        task = _external_task_row(conn, task_id, "only external tasks can be failed")
        held_by = check_lock_held(parts, task, may_complete, worker, "failed")
        rows = read_case_rows(conn, task.case_id)
    work, _ = open_external(parts, task, rows, actor, None)
    definition, _ = work.blueprint.locate(task.process_id, task.element_id)
    incident = incidents.worker_failed(Place(task.element_id, task.name, definition, task.process_id),
                                       held_by, message, task.id, actor)
    still_held = _lock_still_held(task, held_by, work.recorder.at)

    def release(conn: Connection) -> None:
        still_held(conn)
        store_locks.unlock_task(conn, task.id)

    return work.save(outcome_with_incident(work.workflow, work.blueprint, incident), in_transaction=release)


def open_external(parts: EngineParts, task: Row[Any], rows: CaseRows, actor: str,
                  if_match: str | None) -> tuple[CaseWork, Task]:
    """The running case of an external task, opened, with the task still waiting for its worker."""
    work = open_rows(parts, rows, actor, if_match=if_match)
    spiff_task = external_task(work.workflow, work.blueprint, task.id)
    if spiff_task is None:
        raise TaskNotReady(f"task '{task.name or task.element_id}' is not waiting for its worker any more")
    return work, spiff_task


def check_lock_held(parts: EngineParts, task: Row[Any], may_complete: MayComplete, worker: str | None,
                    doing: str) -> str:
    """The checks every worker command shares: role, state, and a live lock held by this worker, who
    is returned."""
    label = task.name or task.element_id
    if not may_complete(None):
        raise NotAllowed(f"external task '{label}' is {doing} by its worker, with the role 'system'")
    if task.state != "ready":
        raise TaskNotReady(f"task '{label}' is {task.state}, not ready; it cannot be {doing} again")
    if not worker:
        raise Conflict(f"task '{label}' is an external task on topic '{task.topic}': lock it first, then send "
                       "the same 'worker' that holds the lock", next_step=NextStep.LOCK_EXTERNAL_TASKS)
    live = task.locked_by is not None and task.locked_until is not None and task.locked_until > parts.now()
    if not live or task.locked_by != worker:
        holder = f"locked by worker '{task.locked_by}'" if live else "not locked by anyone (or the lock ran out)"
        raise Conflict(f"worker '{worker}' does not hold the lock on task '{label}': it is {holder}; lock it "
                       "again before completing or failing it", next_step=NextStep.LOCK_EXTERNAL_TASKS)
    return worker


def _lock_still_held(task: Row[Any], worker: str, now: datetime) -> InTransaction:
    """Checked again inside the write: the lock may have run out, and another worker taken the task,
    since it was checked before the work began. Raising rolls the whole command back."""
    def check(conn: Connection) -> None:
        if not store_locks.holds_lock(conn, task.id, worker, now):
            raise Conflict(f"worker '{worker}' lost the lock on task '{task.name or task.element_id}' while "
                           "working on it (it ran out, and the task may be another worker's now); nothing was "
                           "saved: lock it again", next_step=NextStep.LOCK_EXTERNAL_TASKS)
    return check


def _task_row(conn: Connection, task_id: str) -> Row[Any]:
    task = store.get_task(conn, task_id)
    if task is None:
        raise TaskNotFound(f"no task with id '{task_id}'")
    return task


def _external_task_row(conn: Connection, task_id: str, refusal: str) -> Row[Any]:
    """The projection row of an external task; a user task is refused with `refusal`."""
    task = _task_row(conn, task_id)
    if task.topic is None:
        raise Conflict(f"task '{task.name or task.element_id}' is a user task; {refusal}")
    return task
