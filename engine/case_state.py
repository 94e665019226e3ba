"""What a command's outcome writes: the columns of the case row, the rows of its new ready tasks, and
the audit events that follow from it (tasks that became ready or were cancelled, an incident, the end)."""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from SpiffWorkflow.bpmn import BpmnWorkflow
from sqlalchemy.engine import Row

from .audit import Recorder
from .blueprints import Blueprint
from .data_limits import check_stored_data_size
from .projections import lane_role
from .runner import Outcome, ReadyTask, drop_unstorable_data
from .spiff_setup import SERIALIZER_VERSION, workflow_to_dict


def recorder_for(case_id: str, actor: str, blueprint: Blueprint, now: datetime) -> Recorder:
    """The recorder of one command's events on one case, placing elements by the case's blueprint."""
    return Recorder(case_id, actor, now, blueprint.key, blueprint.version, blueprint.hash, blueprint)


def serialized_state(workflow: BpmnWorkflow, blueprint: Blueprint, outcome: Outcome) -> tuple[str, Outcome]:
    """The instance as JSON, and the outcome to store with it. Data no script should have left (the
    sandbox already drops non-JSON values) is removed here too, and then the case gets an incident
    saying what and where, rather than the save failing."""
    try:
        return json.dumps(workflow_to_dict(workflow)), outcome
    except (TypeError, ValueError):
        incident = drop_unstorable_data(workflow, blueprint)
    return (json.dumps(workflow_to_dict(workflow)),
            dataclasses.replace(outcome, status="error", incident=outcome.incident or incident))


def case_columns(state: str, outcome: Outcome, now: datetime, max_data_bytes: int) -> dict[str, Any]:
    """The case row's columns that follow from its state and outcome (all but the event chain's head)."""
    data = json.dumps(outcome.data)
    check_stored_data_size(data, max_data_bytes)
    next_timer = outcome.next_timer_at
    return {"status": outcome.status, "state": state, "serializer_version": SERIALIZER_VERSION,
            "data": data, "waiting_for": json.dumps(outcome.waiting_for),
            "incident": json.dumps(outcome.incident.as_dict()) if outcome.incident else None,
            "next_timer_at": (datetime.fromisoformat(next_timer.replace("Z", "+00:00")).replace(tzinfo=None)
                              if next_timer else None),
            "updated_at": now, "workflow": _workflow_of(outcome.data)}


def task_row(case_id: str, definition_key: str, task: ReadyTask, now: datetime) -> dict[str, Any]:
    """The projection row of a task that became ready."""
    return {"id": task.id, "case_id": case_id, "definition_key": definition_key,
            "process_id": task.process_id, "element_id": task.element_id, "name": task.name,
            # an external task belongs to its worker (role system), not to the holders of its lane
            "lane": task.lane, "lane_role": None if task.topic else lane_role(task.lane), "state": "ready",
            "created_at": now, "ended_at": None, "completed_by": None, "topic": task.topic,
            "locked_by": None, "locked_until": None}


def record_outcome(recorder: Recorder, outcome: Outcome, ready_before: Sequence[Row[Any]] = (),
                   completed_task_id: str | None = None) -> None:
    """The events that follow from the result: tasks that became ready or were cancelled (ready before,
    not now, and not the one the command completed), an incident, the end of the case."""
    ready_now = {task.id for task in outcome.ready}
    before = {task.id: task for task in ready_before}
    for task_id in sorted(set(before) - ready_now - {completed_task_id}):
        recorder.add("task_cancelled", before[task_id].element_id, process=before[task_id].process_id,
                     task_id=task_id)
    for task in outcome.ready:
        if task.id not in before:
            recorder.add("task_ready", task.element_id, actor="system", process=task.process_id, task_id=task.id)
    if outcome.incident:
        incident = outcome.incident
        recorder.add("incident", incident.element_id, actor=incident.reported_by or "system",
                     process=incident.process_id, message=incident.message, line=incident.line)
    if outcome.status == "completed":
        recorder.add("case_completed", actor="system")
    elif outcome.status == "cancelled":
        recorder.add("case_cancelled")


def _workflow_of(data: dict) -> str | None:
    """The USM workflow (WF1…WF8) the case follows, once the process has decided it (call.workflow)."""
    call = data.get("call")
    value = call.get("workflow") if isinstance(call, dict) else data.get("workflow")
    return value[:8] if isinstance(value, str) and value else None
