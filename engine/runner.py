"""Drive one SpiffWorkflow instance through one command and say plainly what happened.

SpiffWorkflow fails quietly in several ways: it completes tasks
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
from typing import Any

from SpiffWorkflow.bpmn import BpmnEvent, BpmnWorkflow
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.specs.defaults import ServiceTask
from SpiffWorkflow.bpmn.specs.event_definitions.item_aware_event import ErrorEventDefinition
from SpiffWorkflow.camunda.specs.event_definitions import MessageEventDefinition
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState

from . import incidents, multi_instance, spiff_scripts
from .audit import Recorder, process_of
from .blueprints import Blueprint
from .errors import InvalidInput
from .incidents import Incident, Place
from .joins import refresh_waiting_joins
from .pending_events import pending_events

log = logging.getLogger(__name__)

# do_engine_steps() refreshes timers only at its end, so a timer it made READY needs another pass; so
# does a join that may fire now that a branch which could have reached it went elsewhere.
_MAX_STEP_ROUNDS = 50


@dataclass(frozen=True)
class ReadyTask:
    """A task that waits for a person (a user task) or for a worker (an external service task)."""

    id: str
    element_id: str
    name: str | None
    lane: str | None
    process_id: str
    topic: str | None = None   # set for an external service task, which a worker completes


@dataclass(frozen=True)
class Outcome:
    """Where a case stands after a command's steps ran: what the case row and its task rows will say."""

    status: str                      # running | completed | error | cancelled
    ready: list[ReadyTask]
    waiting_for: list[dict]
    data: dict
    incident: Incident | None = None
    next_timer_at: str | None = None
    thrown: list[dict] = field(default_factory=list)  # events the case threw, for other cases to catch

    @classmethod
    def completed(cls, data: dict, thrown: list[dict]) -> Outcome:
        return cls(status="completed", ready=[], waiting_for=[], data=data, thrown=thrown)

    @classmethod
    def cancelled(cls, data: dict) -> Outcome:
        """A case cancelled as it stood: it keeps its data and waits for nothing any more."""
        return cls(status="cancelled", ready=[], waiting_for=[], data=data)


def new_workflow(blueprint: Blueprint, data: dict, script_engine: PythonScriptEngine) -> BpmnWorkflow:
    workflow = BpmnWorkflow(blueprint.spec, blueprint.subprocess_specs, script_engine=script_engine)
    # Initial data goes on the root task before the first step so every task inherits it.
    workflow.task_tree.data.update(data)
    return workflow


def ready_manual_tasks(workflow: BpmnWorkflow) -> list[Task]:
    return workflow.get_tasks(state=TaskState.READY, manual=True)


def advance(workflow: BpmnWorkflow, blueprint: Blueprint, recorder: Recorder | None = None) -> Outcome:
    """Run every engine step that can run now, then classify the result. A recorder sees each step."""
    will_run = recorder.will_run if recorder is not None else None
    did_run = recorder.did_run if recorder is not None else None
    try:
        for _ in range(_MAX_STEP_ROUNDS):
            workflow.do_engine_steps(will_complete_task=will_run, did_complete_task=did_run)
            if not workflow.get_tasks(state=TaskState.READY, manual=False) and not refresh_waiting_joins(workflow):
                break
    except SpiffWorkflowException as exc:
        return _outcome(workflow, blueprint, incident=_incident_from_exception(exc, workflow, blueprint))
    except Exception as exc:  # SpiffWorkflow raises bare exceptions too (e.g. a bad timer duration)
        log.warning("unexpected error while advancing a case", exc_info=True)
        where = _place_of_failure(exc, workflow, blueprint)
        return _outcome(workflow, blueprint, incident=incidents.engine_fault(where, exc))
    return _outcome(workflow, blueprint)


def run_failed_again(workflow: BpmnWorkflow, blueprint: Blueprint, failed: list[Task],
                     recorder: Recorder | None = None) -> Outcome:
    """Re-run the steps that failed (a task left in ERROR), then carry on as usual."""
    for task in failed:
        try:
            # It never began (instances refused, pre-script failed): running it would complete it; it begins again.
            if multi_instance.began_again(task) or spiff_scripts.reach_again(task):
                continue
            if recorder is not None:
                recorder.will_run(task)
            task.run()
            if recorder is not None:
                recorder.did_run(task)
        except SpiffWorkflowException as exc:
            return _outcome(workflow, blueprint, incident=_incident_from_exception(exc, workflow, blueprint))
        except Exception as exc:  # noqa: BLE001 - a script can raise anything; it stays the case's incident
            return _outcome(workflow, blueprint, incident=incidents.engine_fault(place_of(task, blueprint), exc))
    return advance(workflow, blueprint, recorder)


def failed_step(workflow: BpmnWorkflow, blueprint: Blueprint, exc: Exception) -> Outcome:
    """A step a command took itself (a user task completed) raised while SpiffWorkflow carried it on (a data
    output the model never sets, a call activity's missing data input): the case's incident, not the
    command's error. The task the library was working on is left in error, so a retry runs it again."""
    task = _task_in_traceback(exc)
    if task is not None:
        task._set_state(TaskState.ERROR)
    if isinstance(exc, SpiffWorkflowException):
        return _outcome(workflow, blueprint, incident=_incident_from_exception(exc, workflow, blueprint))
    return _outcome(workflow, blueprint, incident=incidents.engine_fault(_place_of_failure(exc, workflow, blueprint),
                                                                         exc))


def deliver_message(workflow: BpmnWorkflow, name: str, payload: dict) -> bool:
    """Deliver an external message; False when nothing in the case waits for it (send_event raises, and
    unlike catch() it never queues the message silently).

    The Camunda flavour stores a message's payload in one variable; we name it after the message, so
    the data sent as message `payment_received` is read in the diagram as `payment_received["amount"]`
    and never overwrites other case data."""
    if name not in waiting_message_names(workflow):
        return False
    # A catching event's correlation properties are read from the event's payload: the message's own fields
    # sit beside the two the Camunda flavour reads (which win a clash of names).
    event_payload = {**payload, "payload": payload, "result_var": name}
    try:
        workflow.send_event(BpmnEvent(MessageEventDefinition(name), payload=event_payload))
    except Exception as exc:  # noqa: BLE001 - a correlation expression can raise anything; the sender is told
        # The catching event evaluates its correlation properties on the message's data, which can lack what
        # they read: the message is refused and the command writes nothing.
        raise InvalidInput(f"message '{name}' cannot be delivered: its correlation could not be read from its "
                           f"data: {incidents.exception_text(exc)}") from None
    return True


def waiting_message_names(workflow: BpmnWorkflow) -> set[str]:
    return {event.name for event in pending_events(workflow) if event.event_type == "MessageEventDefinition"}


def outcome_with_incident(workflow: BpmnWorkflow, blueprint: Blueprint, incident: Incident) -> Outcome:
    """The case as it stands, put in error with this incident (e.g. a worker reported a failure)."""
    return _outcome(workflow, blueprint, incident=incident)


def drop_finished_subprocesses(workflow: BpmnWorkflow) -> None:
    """Forget the inside of every call activity and subprocess that has finished: nothing reads it again
    (the trail has recorded it), and every case command would otherwise restore and store it anew."""
    for task_id in list(workflow.subprocesses):
        if task_id not in workflow.subprocesses:
            continue  # went with its finished parent
        task = workflow.get_task_from_id(task_id)
        if task is not None and task.has_state(TaskState.FINISHED_MASK):
            workflow.delete_subprocess(task)


def _outcome(workflow: BpmnWorkflow, blueprint: Blueprint, incident: Incident | None = None) -> Outcome:
    thrown, uncaught_error = _drain_events(workflow, blueprint)
    drop_finished_subprocesses(workflow)
    manual = ready_manual_tasks(workflow)  # a walk of the whole task tree: once for both uses
    ready, unimplemented = _waiting_for_work(workflow, blueprint, manual)
    waiting, next_timer = _waiting(workflow)
    data = _current_data(workflow, manual)
    incident = incident or uncaught_error or _refused_instances(workflow, blueprint)
    if incident is None and workflow.is_completed():
        incident = _work_left_behind(workflow, blueprint)
        if incident is None:
            return Outcome.completed(data, thrown)
    elif incident is None and not ready and not waiting:
        incident = _why_it_stopped(workflow, blueprint, unimplemented)
    return Outcome(status="running" if incident is None else "error", ready=ready, waiting_for=waiting, data=data,
                   incident=incident, next_timer_at=next_timer, thrown=thrown)


def _waiting_for_work(workflow: BpmnWorkflow, blueprint: Blueprint,
                      manual: list[Task]) -> tuple[list[ReadyTask], list[Task]]:
    """The tasks that wait for a person or a worker, and the service tasks that nothing serves."""
    ready = [_ready(task) for task in manual]
    unimplemented = []
    for task in workflow.get_tasks(state=TaskState.STARTED):
        if isinstance(task.task_spec, ServiceTask):
            topic = blueprint.topic_of(process_of(task), task.task_spec.bpmn_id)
            if topic:
                ready.append(_ready(task, topic))
            else:
                unimplemented.append(task)
    return ready, unimplemented


def _work_left_behind(workflow: BpmnWorkflow, blueprint: Blueprint) -> Incident | None:
    """A process that says it completed although steps still wait went past SpiffWorkflow's depth limit.
    Its task dict, not get_tasks(): the iterator behind get_tasks() stops at that same depth (1000 levels), so it
    would not see the steps left below it, and a loop that ran 500 rounds would pass for a completed case."""
    leftover = [t for t in workflow.tasks.values() if t.state & (TaskState.READY | TaskState.WAITING)
                and getattr(t.task_spec, "bpmn_id", None)]
    return incidents.too_deep(place_of(leftover[0], blueprint)) if leftover else None


def _refused_instances(workflow: BpmnWorkflow, blueprint: Blueprint) -> Incident | None:
    """A multi-instance activity that asked for more instances than allowed began none; it does not raise
    (multi_instance.py says why), so it is found here."""
    if not blueprint.has_multi_instance:
        return None  # the common case: no scan of the case's tasks on every command
    for task in workflow.get_tasks(state=TaskState.ERROR):
        refusal = multi_instance.refusal(task)
        if refusal is not None:
            return incidents.too_many_instances(place_of(task, blueprint), refusal)
    return None


def _why_it_stopped(workflow: BpmnWorkflow, blueprint: Blueprint, unimplemented: list[Task]) -> Incident:
    """A case that is not finished and waits for nothing: a service task without implementation, or stuck."""
    if unimplemented:
        return incidents.not_implemented(place_of(unimplemented[0], blueprint))
    stuck = [t for t in workflow.get_tasks(state=TaskState.WAITING) if getattr(t.task_spec, "bpmn_id", None)]
    return incidents.stuck(place_of(stuck[0], blueprint) if stuck else _last_place(workflow, blueprint))


def _task_in_traceback(exc: BaseException) -> Task | None:
    """The innermost BPMN task SpiffWorkflow was working on when it raised, found in the frames' locals
    (`my_task` is the library's own name for it), so the incident can point at the element."""
    found, trace = None, exc.__traceback__
    while trace is not None:
        for name in ("my_task", "task"):
            candidate = trace.tb_frame.f_locals.get(name)
            if isinstance(candidate, Task) and getattr(candidate.task_spec, "bpmn_id", None):
                found = candidate
        trace = trace.tb_next
    return found


def _ready(task: Task, topic: str | None = None) -> ReadyTask:
    spec = task.task_spec
    return ReadyTask(id=str(task.id), element_id=spec.bpmn_id, name=spec.bpmn_name, lane=spec.lane,
                     process_id=task.workflow.spec.name, topic=topic)


def external_task(workflow: BpmnWorkflow, blueprint: Blueprint, task_id: str) -> Task | None:
    """The SpiffWorkflow task of an external service task waiting for its worker, or None."""
    try:
        task = workflow.get_task_from_id(uuid.UUID(task_id))
    except (ValueError, KeyError):
        return None
    if (task is None or task.state != TaskState.STARTED or not isinstance(task.task_spec, ServiceTask)
            or not blueprint.topic_of(process_of(task), task.task_spec.bpmn_id)):
        return None
    return task


# SpiffWorkflow's timer event definitions by name (TimeDate has no "Timer" in it: matching on parts of the name
# once left timeDate timers without a due time, so no worker ever fired them).
TIMER_TYPES = frozenset({"TimerEventDefinition", "TimeDateEventDefinition", "DurationTimerEventDefinition",
                         "CycleTimerEventDefinition"})


def _waiting(workflow: BpmnWorkflow) -> tuple[list[dict], str | None]:
    waiting, due_times = [], []
    for event in pending_events(workflow):
        if event.event_type == "MessageEventDefinition":
            waiting.append({"type": "message", "name": event.name})
        elif event.event_type in TIMER_TYPES:
            value = event.value["next"] if isinstance(event.value, dict) else event.value
            due = _utc(value)
            waiting.append({"type": "timer", "name": event.name, "due_at": due})
            if due:
                due_times.append(due)
        else:
            waiting.append({"type": event.event_type.replace("EventDefinition", "").lower(), "name": event.name})
    return waiting, (min(due_times) if due_times else None)


def _utc(value: Any) -> str | None:
    try:
        moment = datetime.fromisoformat(str(value))
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _drain_events(workflow: BpmnWorkflow, blueprint: Blueprint) -> tuple[list[dict], Incident | None]:
    """Empty the outbox before the state is saved; undrained events come back on every load."""
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


def _uncaught_error_incident(workflow: BpmnWorkflow, blueprint: Blueprint,
                             definition: ErrorEventDefinition) -> Incident:
    code = getattr(definition, "code", None)
    throwers = [t for t in workflow.get_tasks(state=TaskState.COMPLETED)
                if isinstance(getattr(t.task_spec, "event_definition", None), ErrorEventDefinition)
                and t.task_spec.event_definition.code == code]
    throwers.sort(key=lambda t: t.last_state_change)
    where = place_of(throwers[-1], blueprint) if throwers else _last_place(workflow, blueprint)
    return incidents.uncaught_error(where, code)


def _incident_from_exception(exc: SpiffWorkflowException, workflow: BpmnWorkflow, blueprint: Blueprint) -> Incident:
    task = getattr(exc, "task", None)
    if task is not None:
        return incidents.step_failed(place_of(task, blueprint), exc)
    task_spec = getattr(exc, "task_spec", None)
    element_id = getattr(task_spec, "bpmn_id", None)
    if element_id:
        definition, info = blueprint.locate(None, element_id)
        name = getattr(task_spec, "bpmn_name", None) or info.get("name")
        return incidents.step_failed(Place(element_id, name, definition), exc)
    return incidents.engine_fault(_place_of_failure(exc, workflow, blueprint), exc)


def place_of(task: Task, blueprint: Blueprint) -> Place:
    """The element a task runs, with its name and the definition that holds it."""
    element_id, process_id = task.task_spec.bpmn_id, process_of(task)
    definition, info = blueprint.locate(process_id, element_id)
    return Place(element_id, task.task_spec.bpmn_name or info.get("name"), definition, process_id)


def _place_of_failure(exc: BaseException, workflow: BpmnWorkflow, blueprint: Blueprint) -> Place:
    """Where the library was when it raised: the task in its frames, else the last step the case took."""
    task = _task_in_traceback(exc)
    return place_of(task, blueprint) if task is not None else _last_place(workflow, blueprint)


def _last_place(workflow: BpmnWorkflow, blueprint: Blueprint) -> Place:
    finished = [t for t in workflow.get_tasks(state=TaskState.COMPLETED) if getattr(t.task_spec, "bpmn_id", None)]
    if finished:
        return place_of(max(finished, key=lambda t: t.last_state_change), blueprint)
    return Place(definition=blueprint.key)


def _current_data(workflow: BpmnWorkflow, ready: list[Task]) -> dict:
    """The data a person would see now: the process result when finished, else the newest ready task's."""
    if workflow.is_completed():
        return _jsonable(workflow.data)
    if ready:
        return _jsonable(max(ready, key=lambda t: t.last_state_change).data)
    last = workflow.last_task
    return _jsonable(last.data if last is not None else workflow.task_tree.data)


def drop_unstorable_data(workflow: BpmnWorkflow, blueprint: Blueprint) -> Incident:
    """Remove every data value the serializer cannot store; the incident names the first one and where."""
    from .spiff_setup import SERIALIZER

    def storable(value: Any) -> bool:
        try:
            json.dumps(SERIALIZER.registry.convert(value))
            return True
        except (TypeError, ValueError, RecursionError):
            return False

    removed = []
    for task in workflow.get_tasks():
        for key, value in list(task.data.items()):
            if not storable(value):
                removed.append((task if getattr(task.task_spec, "bpmn_id", None) else None, key, type(value).__name__))
                del task.data[key]
    for key, value in list(workflow.data.items()):
        if not storable(value):
            removed.append((None, key, type(value).__name__))
            del workflow.data[key]
    task, field_name, kind = removed[0] if removed else (None, "?", "?")
    where = place_of(task, blueprint) if task is not None else _last_place(workflow, blueprint)
    return incidents.unstorable(where, field_name, kind)


def _jsonable(value: Any) -> Any:
    """Task data as JSON: values SpiffWorkflow can carry but JSON cannot (dates, UUIDs) become strings."""
    return json.loads(json.dumps(value, default=str))
