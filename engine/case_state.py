"""What a command's outcome writes: the columns of the case row, the rows of its new ready tasks, and
the audit events that follow from it (tasks that became ready or were cancelled, an incident, the end)."""
from __future__ import annotations

import dataclasses
import json
import re
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
from .state_json import state_text


def recorder_for(case_id: str, actor: str, blueprint: Blueprint, now: datetime) -> Recorder:
    """The recorder of one command's events on one case, placing elements by the case's blueprint."""
    return Recorder(case_id, actor, now, blueprint.key, blueprint.version, blueprint.hash, blueprint)


def serialized_state(workflow: BpmnWorkflow, blueprint: Blueprint, outcome: Outcome) -> tuple[str, Outcome]:
    """The instance as JSON, and the outcome to store with it. Data no script should have left (the
    sandbox already drops non-JSON values) is removed here too, and then the case gets an incident
    saying what and where, rather than the save failing."""
    try:
        return state_text(workflow_to_dict(workflow)), outcome
    except (TypeError, ValueError):
        incident = drop_unstorable_data(workflow, blueprint)
    return (state_text(workflow_to_dict(workflow)),
            dataclasses.replace(outcome, status="error", incident=outcome.incident or incident))


FINISHED = ("completed", "cancelled")


def case_columns(state: str, outcome: Outcome, now: datetime, max_data_bytes: int) -> dict[str, Any]:
    """The case row's columns that follow from its state and outcome (all but the event chain's head)."""
    data = json.dumps(outcome.data)
    check_stored_data_size(data, max_data_bytes)
    next_timer = outcome.next_timer_at
    # A finished case is never restored again (every command refuses it; reads use the row, the task rows
    # and the trail), so its engine state, most of its row, is not kept.
    kept = "" if outcome.status in FINISHED else state
    return {"status": outcome.status, "state": kept, "serializer_version": SERIALIZER_VERSION,
            "data": data, "waiting_for": json.dumps(outcome.waiting_for),
            "incident": json.dumps(outcome.incident.as_dict()) if outcome.incident else None,
            "next_timer_at": (datetime.fromisoformat(next_timer.replace("Z", "+00:00")).replace(tzinfo=None)
                              if next_timer else None),
            "updated_at": now, "workflow": _workflow_of(outcome.data),
            **call_columns(outcome.data, outcome.status, now)}


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
    return _clipped(call.get("workflow") if isinstance(call, dict) else data.get("workflow"), 8)


# The call's statuses that mean its work was delivered (definitions/README.md, "The call record").
FULFILLED = ("process fulfilled", "workflow fulfilled")


def call_columns(data: dict, status: str, now: datetime) -> dict[str, Any]:
    """The case's call record projected onto its row (schema.cases). Nothing when no call record of the case's
    own is in view: none yet, or, while the case runs inside a fork, the forked call's (its `parent` is set),
    whose number, priority and fulfilment are not the case's. A call counts as resolved when it is fulfilled or
    its case completes (a call reclassified or refused at intake closes without being fulfilled)."""
    call = data.get("call")
    if not isinstance(call, dict) or call.get("parent"):
        return {}
    resolved = call.get("status") in FULFILLED or status == "completed"
    return {"call_number": _clipped(call.get("number"), 64), "priority": _clipped(call.get("priority"), 16),
            "resolution_target": duration_seconds(call.get("resolution_target")),
            "resolved_at": now if resolved else None}


_DURATION = re.compile(r"P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?")


def duration_seconds(text: object) -> int | None:
    """An ISO 8601 duration of weeks, days, hours, minutes and seconds (PT4H, P3D) in seconds; None for anything
    else, including years and months, whose length depends on the date they start from."""
    if not isinstance(text, str) or text in ("P", "PT") or text.endswith("T"):
        return None
    match = _DURATION.fullmatch(text)
    if match is None:
        return None
    weeks, days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return (((weeks * 7 + days) * 24 + hours) * 60 + minutes) * 60 + seconds


def _clipped(value: object, length: int) -> str | None:
    """A text to store in a column of `length` characters; None for anything else (or nothing)."""
    return value[:length] if isinstance(value, str) and value else None
