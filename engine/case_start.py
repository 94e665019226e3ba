"""Starting cases: by a client (repeat-safe with an idempotency key), on a message, and the linked
cases that the messages a case throws start.

A new case runs to its first wait before anything is written; it is inserted together with the cases
it links to, in one transaction.
"""
from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.util.task import TaskState
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError

from . import incidents, store, store_messages
from .audit import GENESIS, Recorder, data_changes, seal
from .blueprints import Blueprint, CompiledVersion
from .case_state import case_columns, record_outcome, recorder_for, serialized_state, task_row
from .catalogue import load_catalogue
from .data_limits import check_incoming_data
from .errors import DefinitionNotFound, InvalidInput
from .idempotency import earlier_answer, fingerprint
from .incidents import Place
from .parts import EngineParts
from .projections import event_row
from .representation import case_representation
from .runner import Outcome, advance, deliver_message, new_workflow, outcome_with_incident, place_of

MAX_LINK_DEPTH = 5

# Writes of the caller's own, in the transaction that inserts a new case, given the new case's id.
WithNewCase = Callable[[Connection, str], None]


@dataclass(frozen=True)
class Link:
    """Why a linked case starts: the case that threw the message, the message, and how many linked
    cases in a row led here."""

    parent_case_id: str
    message: str
    depth: int


@dataclass(frozen=True)
class NewCase:
    definition: str
    actor: str
    data: dict
    version: int | None = None  # None: the latest
    business_key: str | None = None
    start_message: str | None = None  # the message its message start event receives; None: as a client starts it
    link: Link | None = None
    idempotency_key: str | None = None  # with the hash of the request, so that a repeat finds this case
    request_hash: str | None = None


@dataclass(frozen=True)
class PreparedCase:
    """A new case run to its first wait but not yet written, with the cases it links to."""

    values: dict[str, Any]
    task_rows: list[dict[str, Any]]
    event_rows: list[dict[str, Any]]
    children: list[PreparedCase]
    blueprint: Blueprint
    workflow: BpmnWorkflow  # as its state was serialized: kept for the case's next command once written


def start_case(parts: EngineParts, definition: str, actor: str, version: int | None, business_key: str | None,
               data: dict, idempotency_key: str | None) -> tuple[dict, bool]:
    """Returns (case, created). With an idempotency key, a repeat of the same request returns the
    first case; the same key with a different request is refused."""
    check_incoming_data(data, parts.settings.max_case_data_bytes)
    request_hash = fingerprint(definition, version, business_key, data)
    if idempotency_key:
        repeat = _idempotent_repeat(parts, actor, idempotency_key, request_hash)
        if repeat is not None:
            return repeat, False
    prepared = prepare_case(parts, NewCase(definition, actor, data, version, business_key,
                                           idempotency_key=idempotency_key,
                                           request_hash=request_hash if idempotency_key else None))
    try:
        with parts.db.writer.begin() as conn:
            insert_prepared(conn, prepared)
    except IntegrityError:
        if idempotency_key:  # a concurrent request with the same key won the race
            repeat = _idempotent_repeat(parts, actor, idempotency_key, request_hash)
            if repeat is not None:
                return repeat, False
        raise
    tell_started(parts, prepared)
    return _started(prepared), True


def start_on_message(parts: EngineParts, new: NewCase, with_new_case: WithNewCase | None = None) -> dict:
    """Start a case for a message that no case waited for; `with_new_case` writes in the same transaction."""
    prepared = prepare_case(parts, new)
    with parts.db.writer.begin() as conn:
        insert_prepared(conn, prepared)
        if with_new_case is not None:
            with_new_case(conn, prepared.values["id"])
    tell_started(parts, prepared)
    return _started(prepared)


def prepare_case(parts: EngineParts, new: NewCase) -> PreparedCase:
    """Run a new case up to its first wait, without writing anything: the caller inserts it (and the
    cases it links to) in its own transaction."""
    row = _definition_row(parts, new.definition, new.version)
    start_message = new.start_message
    if start_message is None:
        start_message = _start_message_of(parts, row.key, parts.specs.compiled(row.key, row.version))
    pins = pin_called_versions(parts, row.key, row.version)
    blueprint = parts.specs.blueprint(row.key, row.version, pins)
    now = parts.now()
    case_id = str(uuid.uuid4())
    recorder = recorder_for(case_id, new.actor, blueprint, now)
    recorder.add("case_started", data_changes_=data_changes({}, new.data), business_key=new.business_key)
    if new.link is not None:
        recorder.add("case_linked", parent_case=new.link.parent_case_id, message=new.link.message)
    workflow, outcome = _run_to_first_wait(parts, blueprint, new.data, start_message, recorder)
    handoffs = start_linked_cases(parts, case_id, outcome, new.link.depth if new.link else 0)
    outcome = with_handoff_incident(workflow, blueprint, outcome, handoffs)
    state, outcome = serialized_state(workflow, blueprint, outcome)
    record_outcome(recorder, outcome)
    record_handoffs(recorder, handoffs)
    event_rows, event_seq, event_hash = seal(recorder, 0, GENESIS)
    values = {"id": case_id, "definition_key": row.key, "definition_version": row.version,
              "pins": json.dumps(pins), "business_key": new.business_key,
              "parent_case_id": new.link.parent_case_id if new.link else None,
              "created_by": new.actor, "created_at": now, "idempotency_key": new.idempotency_key,
              "request_hash": new.request_hash,
              "row_version": 1, "event_seq": event_seq, "event_hash": event_hash,
              **case_columns(state, outcome, now, parts.settings.max_case_data_bytes)}
    task_rows = [task_row(case_id, row.key, task, now) for task in outcome.ready]
    events = [event_row(case_id, event, now) for event in event_rows]
    return PreparedCase(values, task_rows, events, handoffs.cases, blueprint, workflow)


@dataclass(frozen=True)
class Handoffs:
    """The cases the messages a step threw start (each with its message), or why one cannot start: then none
    starts, and the case that threw the message gets the incident (its model sent what the other cannot take)."""

    children: list[tuple[str, PreparedCase]]
    failed_message: str | None = None
    failure: str | None = None

    @property
    def cases(self) -> list[PreparedCase]:
        return [child for _, child in self.children]


def start_linked_cases(parts: EngineParts, case_id: str, outcome: Outcome, depth: int) -> Handoffs:
    """A message the case throws that starts another process (a message start event of a deployed
    definition) starts that process as a linked case: a hand-off, not a return."""
    children = []
    messages = [t for t in outcome.thrown if t["type"] == "MessageEventDefinition" and t["name"]]
    catalogue = load_catalogue(parts.db, parts.specs) if messages else None
    for thrown in messages:
        started_by = catalogue.started_by(thrown["name"]) if catalogue else None
        if started_by is None:
            continue
        target, by_message_start = started_by
        if depth >= MAX_LINK_DEPTH:
            return Handoffs([], thrown["name"], f"it would start more than {MAX_LINK_DEPTH} linked cases in a row; "
                                                "the definitions start each other in a loop")
        payload = thrown["payload"]
        if isinstance(payload, dict) and "result_var" in payload:  # the Camunda flavour wraps it
            payload = payload.get("payload")
        try:
            child = prepare_case(parts, NewCase(
                target, "system", payload if isinstance(payload, dict) else {},
                start_message=thrown["name"] if by_message_start else None,
                link=Link(case_id, thrown["name"], depth + 1)))
        except InvalidInput as refused:  # the message cannot start its process: the sender's model is at fault
            return Handoffs([], thrown["name"], refused.detail)
        children.append((thrown["name"], child))
    return Handoffs(children)


def record_handoffs(recorder: Recorder, handoffs: Handoffs) -> None:
    for message, child in handoffs.children:
        recorder.add("case_linked", actor="system", child_case=child.values["id"], message=message,
                     definition=child.values["definition_key"])


def with_handoff_incident(workflow: BpmnWorkflow, blueprint: Blueprint, outcome: Outcome,
                          handoffs: Handoffs) -> Outcome:
    """The outcome as it is, or, when a thrown message could not start its process, the case in error there."""
    if handoffs.failed_message is None:
        return outcome
    place = thrower_place(workflow, blueprint, handoffs.failed_message)
    return outcome_with_incident(workflow, blueprint,
                                 incidents.not_handed_off(place, handoffs.failed_message, handoffs.failure or ""))


def thrower_place(workflow: BpmnWorkflow, blueprint: Blueprint, message: str) -> Place:
    """The step that threw `message` (the newest that did), else the case's definition."""
    # Every task, then their state: a state filter would not look inside a subprocess still running.
    throwers = [task for task in workflow.get_tasks() if task.state == TaskState.COMPLETED
                and getattr(getattr(task.task_spec, "event_definition", None), "name", None) == message]
    if throwers:
        return place_of(max(throwers, key=lambda task: task.last_state_change), blueprint)
    return Place(definition=blueprint.key)


def insert_prepared(conn: Connection, prepared: PreparedCase) -> None:
    store.insert_case(conn, prepared.values)
    store_messages.replace_message_waits(conn, prepared.values["id"], json.loads(prepared.values["waiting_for"]),
                                        fresh=True)
    store.insert_tasks(conn, prepared.task_rows)
    store.insert_events(conn, prepared.event_rows)
    for child in prepared.children:
        insert_prepared(conn, child)


def tell_started(parts: EngineParts, prepared: PreparedCase) -> None:
    """Tell the observer about a case now stored, and the cases it started in the same transaction; keep
    their workflows for their next commands (workflow_cache.py)."""
    values = prepared.values
    parts.observer.case_started(values["definition_key"])
    if values["status"] == "error":
        parts.observer.incident(values["definition_key"])
    if values["state"]:
        parts.workflows.keep(values["id"], (values["row_version"], values["event_hash"]), prepared.blueprint,
                             prepared.workflow, len(values["state"]))
    for child in prepared.children:
        tell_started(parts, child)


def _started(prepared: PreparedCase) -> dict:
    return case_representation(prepared.values, prepared.task_rows,
                               [child.values["id"] for child in prepared.children])


def _definition_row(parts: EngineParts, definition: str, version: int | None) -> Row[Any]:
    with parts.db.reader.connect() as conn:
        row = store.find_definition(conn, definition, version)
    if row is None:
        if version is None:
            raise DefinitionNotFound(f"no definition with key '{definition}' is deployed")
        raise DefinitionNotFound(f"definition '{definition}' has no version {version}")
    return row


def _run_to_first_wait(parts: EngineParts, blueprint: Blueprint, data: dict, start_message: str | None,
                       recorder: Recorder) -> tuple[BpmnWorkflow, Outcome]:
    try:
        workflow = new_workflow(blueprint, data, parts.script_engine)
    except SpiffWorkflowException as exc:
        raise InvalidInput(f"definition '{blueprint.key}' version {blueprint.version} cannot start a case: {exc}; "
                           "deploy a corrected version") from None
    if start_message:
        advance(workflow, blueprint, recorder)  # to the message start event, which now waits
        deliver_message(workflow, start_message, data)
    return workflow, advance(workflow, blueprint, recorder)


def _start_message_of(parts: EngineParts, key: str, compiled: CompiledVersion) -> str | None:
    """How a case begins when no message was named: at the plain start event (None), or at the only
    message start event, which then receives the start data as its message. Definitions meant only
    to be called, or that start on one of several messages, are refused."""
    if not compiled.startable:
        callers = load_catalogue(parts.db, parts.specs).callers(key)
        raise InvalidInput(f"definition '{key}' is only called by other definitions" +
                           (f" ({', '.join(callers)})" if callers else "") +
                           " and cannot be started on its own; start " +
                           ("one of those" if callers else "the definition that calls it") + " instead",
                           [{"field": "definition", "message": "only called by other definitions"}])
    if compiled.plain_start:
        return None
    if len(compiled.message_starts) == 1:
        return next(iter(compiled.message_starts))
    names = ", ".join(sorted(compiled.message_starts))
    raise InvalidInput(f"definition '{key}' starts only on one of the messages {names}; send one of those "
                       "messages instead", [{"field": "definition", "message": f"starts on a message: {names}"}])


def _idempotent_repeat(parts: EngineParts, actor: str, key: str, request_hash: str) -> dict | None:
    with parts.db.reader.connect() as conn:
        previous = store.find_idempotent_case(conn, actor, key)
    earlier = (previous.request_hash, previous.id) if previous is not None else None
    return earlier_answer(parts, key, request_hash, earlier, "case")


def pin_called_versions(parts: EngineParts, key: str, version: int,
                        pinned: dict[str, int] | None = None) -> dict[str, int]:
    """Fix the version of every process version `version` of `key` can call, keeping those `pinned`
    already (a migrated case keeps its own) and taking the latest of the others, as a new case does."""
    pins: dict[str, int] = dict(pinned or {})
    pending = list(parts.specs.compiled(key, version).meta["calls"])
    while pending:
        missing = sorted({called for called in pending if called not in pins and called != key})
        if not missing:
            break
        with parts.db.reader.connect() as conn:
            latest = store.latest_version_numbers(conn, missing)
        pending = []
        for called in missing:
            if called not in latest:
                raise InvalidInput(f"version {version} of '{key}' calls process '{called}', which is not "
                                   "deployed; deploy it first")
            pins[called] = latest[called]
            pending.extend(parts.specs.compiled(called, latest[called]).meta["calls"])
    return pins
