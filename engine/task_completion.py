"""Completing a task: the engine's hot path.

One read (the case row and its ready tasks, found by the task's id: one statement, store_task_reads.py), the
checks, the step, one write. A user task is completed by the holder of its lane; an
external task by the worker that holds its lock (external_tasks.py).
"""
from __future__ import annotations

import uuid
from typing import Any

from SpiffWorkflow.util.task import TaskState
from sqlalchemy.engine import Row

from . import store
from .audit import data_changes
from .blueprints import Blueprint
from .case_work import CaseRows, open_rows
from .data_limits import check_incoming_data
from .errors import InvalidInput, NotAllowed, TaskNotFound, TaskNotReady
from .external_tasks import MayComplete, check_lock_held, complete_external_task
from .parts import EngineParts
from .runner import failed_step
from .store_steps import CompletedTask
from .store_task_reads import case_beside_task


def complete_task(parts: EngineParts, task_id: str, data: dict, actor: str, may_complete: MayComplete,
                  if_match: str | None, worker: str | None) -> dict:
    held_by: str | None = None  # the worker holding the lock, for an external task
    with parts.db.reader.connect() as conn:
        case, ready = case_beside_task(conn, task_id)
        task = next((row for row in ready if row.id == task_id), None)
        if task is None and case is not None:  # the task is not ready: read it to say why
            task = store.get_task(conn, task_id)
        if case is None or task is None:
            raise TaskNotFound(f"no task with id '{task_id}'")
        if task.topic is None:
            _check_user_may_complete(task, may_complete)
        else:
            held_by = check_lock_held(parts, task, may_complete, worker, "completed")
        rows = CaseRows(case, ready)
    if held_by is not None:
        return complete_external_task(parts, task, rows, data, actor, if_match, held_by)
    work = open_rows(parts, rows, actor, if_match=if_match)
    _check_form(work.blueprint, task, data)
    check_incoming_data(data, parts.settings.max_case_data_bytes)
    spiff_task = work.workflow.get_task_from_id(uuid.UUID(task_id))
    # SpiffWorkflow's run() completes tasks in any state: check READY and manual ourselves.
    if spiff_task is None or spiff_task.state != TaskState.READY or not spiff_task.task_spec.manual:
        raise TaskNotReady(f"task '{task.name or task.element_id}' is not ready in the case any more")
    before = {key: spiff_task.data.get(key) for key in data if key in spiff_task.data}
    work.recorder.add("task_completed", task.element_id, data_changes(before, data), process=task.process_id,
                      task_id=task_id)
    spiff_task.data.update(data)
    spiff_task.internal_data["completed_by"] = actor
    try:
        spiff_task.run()
    except Exception as exc:  # noqa: BLE001 - what completing the task sets off is the case's incident
        return work.save(failed_step(work.workflow, work.blueprint, exc), completed_task=CompletedTask(task_id, actor))
    return work.save(work.advance(), completed_task=CompletedTask(task_id, actor))


def _check_user_may_complete(task: Row[Any], may_complete: MayComplete) -> None:
    if not may_complete(task.lane):
        raise NotAllowed(f"completing this task needs the role '{task.lane_role}' of lane '{task.lane}' "
                         "(or 'system')" if task.lane else
                         "this task has no lane; only 'system' or 'admin' may complete it")
    if task.state != "ready":
        raise TaskNotReady(f"task '{task.name or task.element_id}' is {task.state}, not ready; "
                           "it cannot be completed again")


def _check_form(blueprint: Blueprint, task: Row[Any], data: dict) -> None:
    info = blueprint.user_task(task.process_id, task.element_id)
    if info is not None:
        problems = info.form.problems(data)
        if problems:
            raise InvalidInput(f"the data does not match the form of task '{task.name or task.element_id}': "
                               f"{problems[0]['field']}: {problems[0]['message']}", problems)
