"""Incidents: what stopped a case, where, and what a person can do about it.

Every incident names the element and the definition it happened in, says what happened in words a
process designer or operator reads (a library's own message is at most a part of it), and says what to
do next. Built here only, one function per kind, so the sentences stay consistent.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from SpiffWorkflow.exceptions import SpiffWorkflowException

RETRY_WITH_DATA = ("Retry the case, giving the data the step needs if a value is missing or wrong; if the step "
                   "itself is wrong, a designer corrects it in a new version and the case is cancelled.")


@dataclass(frozen=True)
class Incident:
    message: str                    # what happened, in a sentence
    action: str                     # what a person can do about it, in a sentence
    element_id: str | None = None
    element_name: str | None = None
    definition: str | None = None   # the definition holding the element (the case's own or one it called)
    process_id: str | None = None   # the BPMN process the element is in (a definition may embed several)
    line: int | None = None         # the line of the script that failed
    task_id: str | None = None      # the external task a worker reported on
    reported_by: str | None = None  # who reported it, when not the engine itself

    def as_dict(self) -> dict:
        return {key: value for key, value in dataclasses.asdict(self).items()
                if value is not None or key in ("element_id", "element_name", "definition", "line")}

    @classmethod
    def from_dict(cls, stored: dict, case_definition: str | None = None) -> Incident:
        """An incident as stored. Older rows lack `action`, and `definition`: theirs is the case's own."""
        known = {field.name for field in dataclasses.fields(cls)}
        values = {key: value for key, value in stored.items() if key in known}
        values.setdefault("message", "the case stopped")
        values.setdefault("action", RETRY_WITH_DATA)
        values.setdefault("definition", case_definition)
        return cls(**values)


@dataclass(frozen=True)
class Place:
    """Where in the case something happened."""

    element_id: str | None = None
    element_name: str | None = None
    definition: str | None = None
    process_id: str | None = None

    def incident(self, message: str, action: str, line: int | None = None, task_id: str | None = None,
                 reported_by: str | None = None) -> Incident:
        return Incident(message=message, action=action, element_id=self.element_id,
                        element_name=self.element_name, definition=self.definition,
                        process_id=self.process_id, line=line, task_id=task_id, reported_by=reported_by)


def exception_text(exc: BaseException) -> str:
    """`NameError: name 'x' is not defined`, as Python prints it."""
    text = str(exc.args[0]) if getattr(exc, "args", None) else str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def step_failed(place: Place, exc: SpiffWorkflowException) -> Incident:
    """A script, condition, timer or other expression raised while the step ran."""
    # SpiffWorkflow wraps what a script or expression raised; the original is what the person needs.
    inner = getattr(exc, "exception", None) or exc.__cause__ or exc.__context__
    if inner is not None and not isinstance(inner, SpiffWorkflowException):
        what = exception_text(inner)
    else:
        what = str(exc.args[0]) if exc.args else type(exc).__name__
        what = {"No conditions satisfied on gateway": "none of the conditions of its outgoing flows holds and "
                                                      "it has no default flow"}.get(what, what)
    notes = [note.strip() for note in getattr(exc, "__notes__", []) if "Did you mean" in note]
    line = getattr(exc, "line_number", None)
    expression = _expression_of(exc)
    message = f"{_label(place)} failed" + (f" evaluating {expression}" if expression else "") + f": {what}"
    if isinstance(line, int) and line > 0:
        message += f" (line {line} of its script)"
    if notes:
        message += f". {notes[0]}"
    return place.incident(message, RETRY_WITH_DATA, line=line if isinstance(line, int) and line > 0 else None)


def engine_fault(place: Place, exc: BaseException) -> Incident:
    """Something failed inside the engine or its library, not in anything the diagram says."""
    return place.incident(
        f"the engine could not go on at {_label(place)}: {exception_text(exc)}",
        "Retry the case; if the same happens again, report it with the case id: it is a fault of the engine, "
        "not of the diagram.")


def not_implemented(place: Place) -> Incident:
    return place.incident(
        f"{_label(place)} is a service task that has no implementation, so the case cannot go on",
        "A designer gives the service task an implementation (an external task with a topic) in a new version; "
        "cancel this case and start a new one.")


def uncaught_error(place: Place, code: str | None) -> Incident:
    label = f"'{code}'" if code else "without a code"
    return place.incident(
        f"BPMN error {label} was thrown at {_label(place)} and no boundary event caught it, so the process ended",
        "Cancel the case (it cannot go on); if this error is expected, a designer catches it with an error "
        "boundary event in a new version.")


def stuck(place: Place) -> Incident:
    return place.incident(
        f"the case is stuck at {_label(place)}: nothing is ready and it waits for no message or timer",
        "Cancel the case; a designer checks the join, which waits for a branch that was never taken.")


def not_handed_off(place: Place, message: str, reason: str) -> Incident:
    return place.incident(
        f"message '{message}' thrown at {_label(place)} could not start the process it starts: {reason}",
        "Cancel the case: the message was not handed off, and a retry would not send it again; a designer makes "
        "the throw send what the other process needs (its correlation keys, its start data) in a new version.")


def too_deep(place: Place) -> Incident:
    return place.incident(
        f"the case stopped advancing at {_label(place)} although work remains: the process went deeper than "
        "SpiffWorkflow's limit of 1000 steps",
        "Cancel the case; a designer models the long loop as a loop or multi-instance activity.")


def unstorable(place: Place, field: str, kind: str) -> Incident:
    return place.incident(
        f"{_label(place)} left data that cannot be stored: '{field}' holds a Python {kind}, not JSON; it was removed",
        "A designer makes the step produce JSON values (text, numbers, lists, objects); then retry the case.")


def too_many_instances(place: Place, refusal: dict) -> Incident:
    """A multi-instance activity asked for more instances than the engine allows (multi_instance.py)."""
    asked, limit = refusal.get("asked"), refusal.get("limit")
    if refusal.get("collection"):
        what = f"one instance per item of '{refusal['collection']}', which holds {asked} items"
    else:
        what = f"{asked} instances (its loop cardinality '{refusal.get('cardinality')}')"
    return place.incident(
        f"{_label(place)} asks for {what}, more than the limit of {limit} (setting USM_MAX_INSTANCES); "
        "no instance was started",
        f"Retry the case with data that asks for at most {limit} instances; if the work really is that large, a "
        "designer splits it into batches in a new version, or an operator raises USM_MAX_INSTANCES.")


def worker_failed(place: Place, worker: str | None, report: str, task_id: str, actor: str) -> Incident:
    return place.incident(
        f"worker '{worker}' could not do this task: {report}",
        "Remove the cause the worker reported, then retry the case: the task is handed out to a worker again.",
        task_id=task_id, reported_by=actor)


def timer_failed(place: Place, what: str) -> Incident:
    return place.incident(
        f"the case's due timers could not be fired: {what}",
        "Retry the case once the cause is removed (its timers fire then); if it fails the same way, a designer "
        "corrects the steps after the timer in a new version and the case is cancelled.")


def _label(place: Place) -> str:
    if place.element_id is None:
        return f"definition '{place.definition}'" if place.definition else "the case"
    name = f"'{place.element_name}' ({place.element_id})" if place.element_name else f"'{place.element_id}'"
    return f"{name} in '{place.definition}'" if place.definition else name


def _expression_of(exc: SpiffWorkflowException) -> str | None:
    text = str(exc.args[0]) if exc.args else ""
    prefix = "Error evaluating expression "
    return text[len(prefix):] if text.startswith(prefix) else None
