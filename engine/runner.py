"""Drive one SpiffWorkflow instance through one command and say plainly what happened.

SpiffWorkflow fails quietly in several ways (SPIFF_NOTES pitfalls 5, 7, 8, 16, 18): it completes tasks
that are not ready, leaves plain service tasks hanging, stops advancing past its tree-depth limit while
claiming completion, lets an uncaught BPMN error finish the process, and sits forever on a deadlocked
join. Every one of those becomes an explicit incident here instead of a silent success or a silent hang.
"""
from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

from SpiffWorkflow.bpmn import BpmnEvent, BpmnWorkflow
from SpiffWorkflow.bpmn.specs.defaults import ServiceTask
from SpiffWorkflow.bpmn.specs.event_definitions.item_aware_event import ErrorEventDefinition
from SpiffWorkflow.camunda.specs.event_definitions import MessageEventDefinition
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.util.task import TaskState

from .audit import process_of
from .blueprints import Blueprint

log = logging.getLogger(__name__)

# do_engine_steps() refreshes timers only at its end, so a timer it made READY needs another pass.
_MAX_STEP_ROUNDS = 50


@dataclass
class ReadyTask:
    id: str
    element_id: str
    name: str | None
    lane: str | None
    process_id: str
    topic: str | None = None   # set for an external service task, which a worker completes


@dataclass
class Outcome:
    status: str                      # running | completed | error | cancelled
    ready: list[ReadyTask]
    waiting_for: list[dict]
    data: dict
    incident: dict | None = None
    next_timer_at: str | None = None
    thrown: list[dict] = field(default_factory=list)


def new_workflow(blueprint: Blueprint, data: dict, script_engine) -> BpmnWorkflow:
    workflow = BpmnWorkflow(blueprint.spec, blueprint.subprocess_specs, script_engine=script_engine)
    # Initial data goes on the root task before the first step so every task inherits it.
    workflow.task_tree.data.update(data)
    return workflow


def ready_manual_tasks(workflow: BpmnWorkflow) -> list:
    return workflow.get_tasks(state=TaskState.READY, manual=True)


def advance(workflow: BpmnWorkflow, blueprint: Blueprint, recorder=None) -> Outcome:
    """Run every engine step that can run now, then classify the result. A recorder sees each step."""
    will_run = recorder.will_run if recorder is not None else None
    did_run = recorder.did_run if recorder is not None else None
    try:
        for _ in range(_MAX_STEP_ROUNDS):
            workflow.do_engine_steps(will_complete_task=will_run, did_complete_task=did_run)
            if not workflow.get_tasks(state=TaskState.READY, manual=False):
                break
    except SpiffWorkflowException as exc:
        return _outcome(workflow, blueprint, incident=_incident_from_exception(exc, blueprint))
    except Exception as exc:  # SpiffWorkflow raises bare exceptions too (e.g. a bad timer duration)
        log.warning("unexpected error while advancing a case", exc_info=True)
        task = _task_in_traceback(exc)
        incident = {"element_id": None, "element_name": None, "line": None,
                    "message": f"{type(exc).__name__}: {exc}"}
        if task is not None:
            incident = _element_incident(task, blueprint, incident["message"])
        return _outcome(workflow, blueprint, incident=incident)
    return _outcome(workflow, blueprint)


def run_failed_again(workflow: BpmnWorkflow, blueprint: Blueprint, failed: list, recorder=None) -> Outcome:
    """Re-run the steps that failed (a task left in ERROR), then carry on as usual."""
    for task in failed:
        try:
            if recorder is not None:
                recorder.will_run(task)
            task.run()
            if recorder is not None:
                recorder.did_run(task)
        except SpiffWorkflowException as exc:
            return _outcome(workflow, blueprint, incident=_incident_from_exception(exc, blueprint))
        except Exception as exc:  # noqa: BLE001 - a script can raise anything; it stays the case's incident
            return _outcome(workflow, blueprint, incident=_element_incident(task, blueprint, f"{type(exc).__name__}: {exc}"))
    return advance(workflow, blueprint, recorder)


def deliver_message(workflow: BpmnWorkflow, name: str, payload: dict) -> bool:
    """Deliver an external message; False when nothing in the case waits for it (send_event raises, and
    unlike catch() it never queues the message silently, SPIFF_NOTES pitfall 12).

    The Camunda flavour stores a message's payload in one variable; we name it after the message, so
    the data sent as message `payment_received` is read in the diagram as `payment_received["amount"]`
    and never overwrites other case data."""
    if name not in waiting_message_names(workflow):
        return False
    workflow.send_event(BpmnEvent(MessageEventDefinition(name), payload={"payload": payload, "result_var": name}))
    return True


def waiting_message_names(workflow: BpmnWorkflow) -> set[str]:
    return {event.name for event in workflow.waiting_events() if event.event_type == "MessageEventDefinition"}


def outcome_with_incident(workflow: BpmnWorkflow, blueprint: Blueprint, incident: dict) -> Outcome:
    """The case as it stands, put in error with this incident (e.g. a worker reported a failure)."""
    return _outcome(workflow, blueprint, incident=incident)


def _outcome(workflow: BpmnWorkflow, blueprint: Blueprint, incident: dict | None = None) -> Outcome:
    thrown, uncaught_error = _drain_events(workflow, blueprint)
    ready = [_ready(task) for task in ready_manual_tasks(workflow)]
    unimplemented = []  # service tasks that wait for nothing: neither external nor anything else
    for task in workflow.get_tasks(state=TaskState.STARTED):
        if isinstance(task.task_spec, ServiceTask):
            topic = blueprint.topic_of(process_of(task), task.task_spec.bpmn_id)
            if topic:
                ready.append(_ready(task, topic))
            else:
                unimplemented.append(task)
    waiting, next_timer = _waiting(workflow)
    data = _current_data(workflow)
    if incident is None:
        incident = uncaught_error
    if incident is not None:
        return Outcome("error", ready, waiting, data, incident, next_timer, thrown)
    if workflow.is_completed():
        leftover = [t for t in workflow.get_tasks(state=TaskState.READY | TaskState.WAITING)
                    if getattr(t.task_spec, "bpmn_id", None)]
        if leftover:
            return Outcome("error", ready, waiting, data, _element_incident(
                leftover[0], blueprint, "the case stopped advancing here although work remains (the process is "
                                        "deeper than SpiffWorkflow's 1000-step limit; model long loops as "
                                        "loop or multi-instance activities)"), next_timer, thrown)
        return Outcome("completed", [], [], data, None, None, thrown)
    if ready or waiting:
        return Outcome("running", ready, waiting, data, None, next_timer, thrown)
    if unimplemented:
        return Outcome("error", ready, waiting, data, _element_incident(
            unimplemented[0], blueprint, "this service task has no implementation, so the case cannot go on"),
            next_timer, thrown)
    stuck = [t for t in workflow.get_tasks(state=TaskState.WAITING) if getattr(t.task_spec, "bpmn_id", None)]
    where = stuck[0] if stuck else None
    message = ("the case is stuck: nothing is ready and it waits for no message or timer "
               "(a join that waits for a branch that was never taken?)")
    if where is None:
        return Outcome("error", ready, waiting, data, {"element_id": None, "element_name": None, "line": None,
                                                        "message": message}, next_timer, thrown)
    return Outcome("error", ready, waiting, data, _element_incident(where, blueprint, message), next_timer, thrown)


def _task_in_traceback(exc: BaseException):
    """The innermost BPMN task SpiffWorkflow was working on when it raised, found in the frames' locals
    (`my_task` is the library's own name for it), so the incident can point at the element."""
    from SpiffWorkflow.task import Task

    found, trace = None, exc.__traceback__
    while trace is not None:
        for name in ("my_task", "task"):
            candidate = trace.tb_frame.f_locals.get(name)
            if isinstance(candidate, Task) and getattr(candidate.task_spec, "bpmn_id", None):
                found = candidate
        trace = trace.tb_next
    return found


def _ready(task, topic: str | None = None) -> ReadyTask:
    spec = task.task_spec
    return ReadyTask(id=str(task.id), element_id=spec.bpmn_id, name=spec.bpmn_name, lane=spec.lane,
                     process_id=task.workflow.spec.name, topic=topic)


def external_task(workflow: BpmnWorkflow, blueprint: Blueprint, task_id: str):
    """The SpiffWorkflow task of an external service task waiting for its worker, or None."""
    try:
        task = workflow.get_task_from_id(uuid.UUID(task_id))
    except (ValueError, KeyError):
        return None
    if (task is None or task.state != TaskState.STARTED or not isinstance(task.task_spec, ServiceTask)
            or not blueprint.topic_of(process_of(task), task.task_spec.bpmn_id)):
        return None
    return task


def _waiting(workflow: BpmnWorkflow) -> tuple[list[dict], str | None]:
    waiting, due_times = [], []
    for event in workflow.waiting_events():
        if event.event_type == "MessageEventDefinition":
            waiting.append({"type": "message", "name": event.name})
        elif "Timer" in event.event_type or "Duration" in event.event_type or "Cycle" in event.event_type:
            value = event.value["next"] if isinstance(event.value, dict) else event.value
            due = _utc(value)
            waiting.append({"type": "timer", "name": event.name, "due_at": due})
            if due:
                due_times.append(due)
        else:
            waiting.append({"type": event.event_type.replace("EventDefinition", "").lower(), "name": event.name})
    return waiting, (min(due_times) if due_times else None)


def _utc(value) -> str | None:
    try:
        moment = datetime.fromisoformat(str(value))
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _drain_events(workflow: BpmnWorkflow, blueprint: Blueprint) -> tuple[list[dict], dict | None]:
    """Empty the outbox before the state is saved; undrained events come back on every load (pitfall 13)."""
    thrown, incident = [], None
    for event in workflow.get_events():
        definition = event.event_definition
        if isinstance(definition, ErrorEventDefinition):
            if incident is None:
                incident = _uncaught_error_incident(workflow, blueprint, definition)
            continue
        thrown.append({"type": type(definition).__name__, "name": getattr(definition, "name", None),
                       "payload": _jsonable(event.payload)})
    return thrown, incident


def _uncaught_error_incident(workflow, blueprint, definition) -> dict:
    code = getattr(definition, "code", None)
    throwers = [t for t in workflow.get_tasks(state=TaskState.COMPLETED)
                if isinstance(getattr(t.task_spec, "event_definition", None), ErrorEventDefinition)
                and t.task_spec.event_definition.code == code]
    throwers.sort(key=lambda t: t.last_state_change)
    label = f"'{code}'" if code else "without a code"
    message = f"BPMN error {label} was thrown and no boundary event caught it"
    if throwers:
        return _element_incident(throwers[-1], blueprint, message)
    return {"element_id": None, "element_name": None, "line": None, "message": message}


def _incident_from_exception(exc: SpiffWorkflowException, blueprint: Blueprint) -> dict:
    task = getattr(exc, "task", None)
    task_spec = task.task_spec if task is not None else getattr(exc, "task_spec", None)
    element_id = getattr(task_spec, "bpmn_id", None)
    message = str(exc.args[0]) if exc.args else type(exc).__name__
    inner = getattr(exc, "exception", None)
    if inner is not None and str(inner) and str(inner) not in message:
        message = f"{message}: {type(inner).__name__}: {inner}"
    line = getattr(exc, "line_number", None)
    process_id = process_of(task) if task is not None else None
    incident = {"element_id": element_id,
                "element_name": getattr(task_spec, "bpmn_name", None) or _name_of(blueprint, process_id, element_id),
                "line": line if isinstance(line, int) and line > 0 else None,
                "message": message}
    if process_id:
        incident["process_id"] = process_id
    return incident


def _element_incident(task, blueprint: Blueprint, message: str) -> dict:
    element_id, process_id = task.task_spec.bpmn_id, process_of(task)
    incident = {"element_id": element_id,
                "element_name": task.task_spec.bpmn_name or _name_of(blueprint, process_id, element_id),
                "line": None, "message": message}
    if process_id:
        incident["process_id"] = process_id  # element ids are unique only within one definition
    return incident


def _name_of(blueprint: Blueprint, process_id: str | None, element_id: str | None) -> str | None:
    return blueprint.locate(process_id, element_id)[1].get("name") if element_id else None


def _current_data(workflow: BpmnWorkflow) -> dict:
    """The data a person would see now: the process result when finished, else the newest ready task's."""
    if workflow.is_completed():
        return _jsonable(workflow.data)
    ready = ready_manual_tasks(workflow)
    if ready:
        return _jsonable(max(ready, key=lambda t: t.last_state_change).data)
    last = workflow.last_task
    return _jsonable(last.data if last is not None else workflow.task_tree.data)


def drop_unstorable_data(workflow: BpmnWorkflow) -> list[tuple[str | None, str, str]]:
    """Remove every data value the serializer cannot store; returns (element id, field, type) of each."""
    from .spiff_setup import SERIALIZER

    def storable(value) -> bool:
        try:
            json.dumps(SERIALIZER.registry.convert(value))
            return True
        except (TypeError, ValueError, RecursionError):
            return False

    removed = []
    for task in workflow.get_tasks():
        for key, value in list(task.data.items()):
            if not storable(value):
                removed.append((getattr(task.task_spec, "bpmn_id", None), key, type(value).__name__))
                del task.data[key]
    for key, value in list(workflow.data.items()):
        if not storable(value):
            removed.append((None, key, type(value).__name__))
            del workflow.data[key]
    return removed


def _jsonable(value):
    """Task data as JSON: values SpiffWorkflow can carry but JSON cannot (dates, UUIDs) become strings."""
    return json.loads(json.dumps(value, default=str))
