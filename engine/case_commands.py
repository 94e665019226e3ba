"""Commands on cases: start, complete, deliver, route, cancel, fire timers.

Each command follows one path: read the case row, restore the instance around cached specs, act, run
engine steps, then write the case row, its task rows, its audit events and any cases it links to in
ONE transaction guarded by the row version. A lost race writes nothing and raises ConcurrentUpdate.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy.exc import IntegrityError, OperationalError
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.util.task import TaskState

from . import store
from .audit import GENESIS, Recorder, data_changes, seal
from .blueprints import Blueprint
from .catalogue import load_catalogue
from .clock import rfc3339
from . import incidents
from .errors import (ConcurrentUpdate, Conflict, DefinitionNotFound, IdempotencyMismatch, InvalidInput,
                     NotAllowed, NotFound, PreconditionFailed, TaskNotFound, TaskNotReady, TooLarge, CaseNotFound)
from .incidents import Incident, Place
from .projections import etag_of, event_row, lane_role
from .runner import (Outcome, advance, deliver_message, drop_unstorable_data, external_task, new_workflow,
                     outcome_with_incident, run_failed_again, waiting_message_names)
from .spiff_setup import SERIALIZER_VERSION, workflow_from_dict, workflow_to_dict
from .timers import running_on

log = logging.getLogger(__name__)

MAX_LINK_DEPTH = 5
MAX_DATA_DEPTH = 100


SERIALIZER_MARKER = "typename"  # SpiffWorkflow's serializer reads an object with this key as one of its own


def marker_path(value) -> str | None:
    """Where in the data an object uses SpiffWorkflow's serializer marker, if anywhere."""
    stack = [(value, "data")]
    while stack:
        current, path = stack.pop()
        if isinstance(current, dict):
            if SERIALIZER_MARKER in current:
                return f"{path}.{SERIALIZER_MARKER}"
            stack.extend((child, f"{path}.{key}") for key, child in current.items())
        elif isinstance(current, list):
            stack.extend((child, f"{path}[{index}]") for index, child in enumerate(current))
    return None


def nesting_depth(value) -> int:
    """How deeply lists and objects nest, measured without recursion (the input is untrusted)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        current, depth = stack.pop()
        if isinstance(current, (dict, list)):
            deepest = max(deepest, depth)
            if depth > MAX_DATA_DEPTH:
                return depth
            children = current.values() if isinstance(current, dict) else current
            stack.extend((child, depth + 1) for child in children)
    return deepest


@dataclass
class PreparedCase:
    """A new case run to its first wait but not yet written, with the cases it links to."""

    values: dict
    task_rows: list
    event_rows: list
    children: list


def _on_engine_clock(command):
    """Run a command with SpiffWorkflow's timers reading this engine's clock."""

    @functools.wraps(command)
    def wrapper(self, *args, **kwargs):
        with running_on(self.clock):
            return command(self, *args, **kwargs)

    return wrapper


def _workflow_of(data: dict) -> str | None:
    """The USM workflow (WF1…WF8) the case follows, once the process has decided it (call.workflow)."""
    call = data.get("call")
    value = call.get("workflow") if isinstance(call, dict) else data.get("workflow")
    return value[:8] if isinstance(value, str) and value else None


def _iso(moment: datetime | None) -> str | None:
    return rfc3339(moment) if moment else None


class CaseCommands:
    @_on_engine_clock
    def start_case(self, definition: str, actor: str, version: int | None = None,
                   business_key: str | None = None, data: dict | None = None,
                   idempotency_key: str | None = None) -> tuple[dict, bool]:
        """Returns (case, created). With an idempotency key, a repeat of the same request returns the
        first case; the same key with a different request is refused."""
        data = data or {}
        self._check_data_size(data)
        request_hash = hashlib.sha256(json.dumps(
            [definition, version, business_key, data], sort_keys=True).encode()).hexdigest()
        if idempotency_key:
            repeat = self._idempotent_repeat(actor, idempotency_key, request_hash)
            if repeat is not None:
                return repeat, False

        prepared = self._prepare_case(definition, version, actor, business_key, data)
        prepared.values.update({"idempotency_key": idempotency_key,
                                "request_hash": request_hash if idempotency_key else None})
        try:
            with self.db.writer.begin() as conn:
                self._insert_prepared(conn, prepared)
        except IntegrityError:
            if idempotency_key:  # a concurrent request with the same key won the race
                repeat = self._idempotent_repeat(actor, idempotency_key, request_hash)
                if repeat is not None:
                    return repeat, False
            raise
        self._tell_started(prepared)
        return self._representation(prepared.values, prepared.task_rows, [c.values["id"] for c in prepared.children]), True

    def _prepare_case(self, definition: str, version: int | None, actor: str, business_key: str | None,
                      data: dict, parent_case_id: str | None = None, start_message: str | None = None,
                      depth: int = 0, link_message: str | None = None) -> "PreparedCase":
        """Run a new case up to its first wait, without writing anything: the caller inserts it (and the
        cases it links to) in its own transaction."""
        with self.db.reader.connect() as conn:
            row = store.find_definition(conn, definition, version)
        if row is None:
            if version is None:
                raise DefinitionNotFound(f"no definition with key '{definition}' is deployed")
            raise DefinitionNotFound(f"definition '{definition}' has no version {version}")
        if start_message is None:
            start_message = self._start_message_of(row.key, self.specs.compiled(row.key, row.version))
        pins = self._pins(row.key, row.version)
        blueprint = self.specs.blueprint(row.key, row.version, pins)
        now = self._now()
        case_id = str(uuid.uuid4())
        recorder = self._recorder(case_id, actor, blueprint, now)
        recorder.add("case_started", data_changes_=data_changes({}, data), business_key=business_key)
        if parent_case_id:
            recorder.add("case_linked", parent_case=parent_case_id, message=link_message or start_message)
        try:
            workflow = new_workflow(blueprint, data, self.script_engine)
        except SpiffWorkflowException as exc:
            raise InvalidInput(f"definition '{row.key}' version {row.version} cannot start a case: {exc}; "
                               "deploy a corrected version") from None
        if start_message:
            advance(workflow, blueprint, recorder)  # to the message start event, which now waits
            deliver_message(workflow, start_message, data)
        outcome = advance(workflow, blueprint, recorder)
        state = self._serialize_state(workflow, outcome, blueprint)
        self._record_outcome(recorder, outcome, set())
        children = self._start_linked_cases(case_id, outcome, recorder, depth)
        event_rows, event_seq, event_hash = seal(recorder, 0, GENESIS)
        values = {"id": case_id, "definition_key": row.key, "definition_version": row.version,
                  "pins": json.dumps(pins), "business_key": business_key, "parent_case_id": parent_case_id,
                  "created_by": actor, "created_at": now, "idempotency_key": None, "request_hash": None,
                  "row_version": 1, "event_seq": event_seq, "event_hash": event_hash,
                  **self._state_columns(workflow, outcome, now, blueprint, state)}
        task_rows = [self._task_row(case_id, row.key, task, now) for task in outcome.ready]
        events = [event_row(case_id, event, now) for event in event_rows]
        return PreparedCase(values, task_rows, events, children)

    def _start_message_of(self, key: str, compiled) -> str | None:
        """How a case begins when no message was named: at the plain start event (None), or at the only
        message start event, which then receives the start data as its message. Definitions meant only
        to be called, or that start on one of several messages, are refused."""
        if not compiled.startable:
            callers = load_catalogue(self.db, self.specs).callers(key)
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

    def _tell_started(self, prepared: "PreparedCase") -> None:
        """Tell the observer about a case now stored, and the cases it started in the same transaction."""
        self.observer.case_started(prepared.values["definition_key"])
        if prepared.values["status"] == "error":
            self.observer.incident(prepared.values["definition_key"])
        for child in prepared.children:
            self._tell_started(child)

    def _insert_prepared(self, conn, prepared: "PreparedCase") -> None:
        store.insert_case(conn, prepared.values)
        store.replace_message_waits(conn, prepared.values["id"], json.loads(prepared.values["waiting_for"]), fresh=True)
        store.insert_tasks(conn, prepared.task_rows)
        store.insert_events(conn, prepared.event_rows)
        for child in prepared.children:
            self._insert_prepared(conn, child)

    def _start_linked_cases(self, case_id: str, outcome: Outcome, recorder: Recorder,
                            depth: int) -> list["PreparedCase"]:
        """A message the case throws that starts another process (a message start event of a deployed
        definition) starts that process as a linked case: a hand-off, not a return."""
        children = []
        messages = [t for t in outcome.thrown if t["type"] == "MessageEventDefinition" and t["name"]]
        catalogue = load_catalogue(self.db, self.specs) if messages else None
        for thrown in messages:
            started_by = catalogue.started_by(thrown["name"])
            if started_by is None:
                continue
            target, by_message_start = started_by
            if depth >= MAX_LINK_DEPTH:
                raise InvalidInput(f"message '{thrown['name']}' would start more than {MAX_LINK_DEPTH} linked "
                                   "cases in a row; the definitions start each other in a loop")
            payload = thrown["payload"]
            if isinstance(payload, dict) and "result_var" in payload:  # the Camunda flavour wraps it
                payload = payload.get("payload")
            data = payload if isinstance(payload, dict) else {}
            child = self._prepare_case(target, None, "system", None, data, case_id,
                                       thrown["name"] if by_message_start else None, depth + 1,
                                       link_message=thrown["name"])
            recorder.add("case_linked", actor="system", child_case=child.values["id"], message=thrown["name"],
                         definition=target)
            children.append(child)
        return children

    def _idempotent_repeat(self, actor: str, key: str, request_hash: str) -> dict | None:
        with self.db.reader.connect() as conn:
            previous = store.find_idempotent_case(conn, actor, key)
        if previous is None:
            return None
        if previous.request_hash != request_hash:
            raise IdempotencyMismatch(
                f"the Idempotency-Key '{key}' was already used for a different request; "
                "use a new key for a new case", [{"field": "Idempotency-Key", "message": "reused with another body"}])
        return self.get_case(previous.id)

    def _pins(self, key: str, version: int) -> dict[str, int]:
        """Fix, at start, the version of every process the case can call (running cases keep theirs)."""
        pins: dict[str, int] = {}
        pending = list(self.specs.compiled(key, version).meta["calls"])
        while pending:
            missing = [k for k in pending if k not in pins and k != key]
            if not missing:
                break
            with self.db.reader.connect() as conn:
                latest = store.latest_version_numbers(conn, missing)
            pending = []
            for called in missing:
                if called not in latest:
                    raise InvalidInput(f"'{key}' calls process '{called}', which is not deployed; deploy it first")
                pins[called] = latest[called]
                pending.extend(self.specs.compiled(called, latest[called]).meta["calls"])
        return pins

    def _check_data_size(self, data: dict) -> None:
        depth = nesting_depth(data)
        if depth > MAX_DATA_DEPTH:
            # SpiffWorkflow's serializer recurses per level: deeper data would be stored but never load again.
            raise InvalidInput(f"the data is nested {depth} levels deep; the limit is {MAX_DATA_DEPTH}",
                               [{"field": "data", "message": f"nested deeper than {MAX_DATA_DEPTH} levels"}])
        marked = marker_path(data)
        if marked:
            # Stored, such an object would be taken for a serialized object when the case is loaded again.
            raise InvalidInput(f"'{SERIALIZER_MARKER}' is a reserved field name in case data ({marked}); rename it",
                               [{"field": marked, "message": f"'{SERIALIZER_MARKER}' is reserved"}])
        size = len(json.dumps(data))
        if size > self.settings.max_case_data_bytes:
            raise TooLarge(f"the data is {size} bytes; the limit per case is {self.settings.max_case_data_bytes}")

    @staticmethod
    def _serialize_state(workflow, outcome: Outcome, blueprint: Blueprint) -> str:
        """The instance as JSON. Data no script should have left (the sandbox already drops non-JSON
        values) is removed here too, and then the case gets an incident saying what and where, rather
        than the save failing."""
        try:
            return json.dumps(workflow_to_dict(workflow))
        except (TypeError, ValueError):
            incident = drop_unstorable_data(workflow, blueprint)
        outcome.status = "error"
        outcome.incident = outcome.incident or incident
        return json.dumps(workflow_to_dict(workflow))

    def _state_columns(self, workflow, outcome: Outcome, now: datetime, blueprint: Blueprint,
                       state: str | None = None) -> dict:
        state = state if state is not None else self._serialize_state(workflow, outcome, blueprint)
        data = json.dumps(outcome.data)
        if len(data) > self.settings.max_case_data_bytes:
            raise TooLarge(f"the case data would be {len(data)} bytes; the limit per case is "
                           f"{self.settings.max_case_data_bytes}; nothing was saved")
        next_timer = outcome.next_timer_at
        return {"status": outcome.status, "state": state, "serializer_version": SERIALIZER_VERSION,
                "data": data, "waiting_for": json.dumps(outcome.waiting_for),
                "incident": json.dumps(outcome.incident.as_dict()) if outcome.incident else None,
                "next_timer_at": (datetime.fromisoformat(next_timer.replace("Z", "+00:00")).replace(tzinfo=None)
                                  if next_timer else None),
                "updated_at": now, "workflow": _workflow_of(outcome.data)}

    @staticmethod
    def _task_row(case_id: str, definition_key: str, task, now: datetime) -> dict:
        return {"id": task.id, "case_id": case_id, "definition_key": definition_key,
                "process_id": task.process_id, "element_id": task.element_id, "name": task.name,
                # an external task belongs to its worker (role system), not to the holders of its lane
                "lane": task.lane, "lane_role": None if task.topic else lane_role(task.lane), "state": "ready",
                "created_at": now, "ended_at": None, "completed_by": None, "topic": task.topic,
                "locked_by": None, "locked_until": None}

    @_on_engine_clock
    def complete_task(self, task_id: str, data: dict, actor: str,
                      may_complete: Callable[[str | None], bool], if_match: str | None = None,
                      worker: str | None = None) -> dict:
        with self.db.reader.connect() as conn:  # one read for the hot path: task, case, ready tasks
            task = store.get_task(conn, task_id)
            if task is None:
                raise TaskNotFound(f"no task with id '{task_id}'")
            if task.topic is None:
                if not may_complete(task.lane):
                    raise NotAllowed(f"completing this task needs the role '{task.lane_role}' of lane "
                                     f"'{task.lane}' (or 'system')" if task.lane else
                                     "this task has no lane; only 'system' or 'admin' may complete it")
                if task.state != "ready":
                    raise TaskNotReady(f"task '{task.name or task.element_id}' is {task.state}, not ready; "
                                       "it cannot be completed again")
                row = store.get_case(conn, task.case_id)
                ready_rows = store.ready_tasks_of_cases(conn, [task.case_id])[task.case_id]
        if task.topic is not None:  # a worker's task: its own checks, outside the read above
            return self._complete_external(task, data, actor, may_complete, if_match, worker)
        self._check_running(row, if_match)
        blueprint = self._blueprint_of(row)
        info = blueprint.user_task(task.process_id, task.element_id)
        if info is not None:
            problems = info.form.problems(data)
            if problems:
                raise InvalidInput(f"the data does not match the form of task '{task.name or task.element_id}': "
                                   f"{problems[0]['field']}: {problems[0]['message']}", problems)
        self._check_data_size(data)
        workflow = self._restore(row, blueprint)
        spiff_task = workflow.get_task_from_id(uuid.UUID(task_id))
        # SpiffWorkflow's run() completes tasks in any state: check READY and manual ourselves.
        if spiff_task is None or spiff_task.state != TaskState.READY or not spiff_task.task_spec.manual:
            raise TaskNotReady(f"task '{task.name or task.element_id}' is not ready in the case any more")
        now = self._now()
        recorder = self._recorder(row.id, actor, blueprint, now)
        before = {key: spiff_task.data.get(key) for key in data if key in spiff_task.data}
        recorder.add("task_completed", task.element_id, data_changes(before, data), process=task.process_id,
                     task_id=task_id)
        spiff_task.data.update(data)
        spiff_task.internal_data["completed_by"] = actor
        spiff_task.run()
        outcome = advance(workflow, blueprint, recorder)
        return self._save(row, workflow, outcome, ready_rows, recorder, completed=(task_id, actor))

    # --- external service tasks: fetched, locked and completed (or failed) by workers ------------------

    def _read_task(self, task_id: str):
        with self.db.reader.connect() as conn:
            task = store.get_task(conn, task_id)
        if task is None:
            raise TaskNotFound(f"no task with id '{task_id}'")
        return task

    def _external_task_row(self, task_id: str, refusal: str):
        """The projection row of an external task; a user task is refused with `refusal`."""
        task = self._read_task(task_id)
        if task.topic is None:
            raise Conflict(f"task '{task.name or task.element_id}' is a user task; {refusal}")
        return task

    def _open_external(self, task, if_match: str | None):
        """The running case of an external task, restored, with the task still waiting for its worker."""
        row = self._read_case(task.case_id)
        self._check_running(row, if_match)
        with self.db.reader.connect() as conn:
            ready_rows = store.ready_tasks_of_cases(conn, [task.case_id])[task.case_id]
        blueprint = self._blueprint_of(row)
        workflow = self._restore(row, blueprint)
        spiff_task = external_task(workflow, blueprint, task.id)
        if spiff_task is None:
            raise TaskNotReady(f"task '{task.name or task.element_id}' is not waiting for its worker any more")
        return row, ready_rows, blueprint, workflow, spiff_task

    def _held_external_task(self, task, may_complete, worker: str | None, doing: str):
        """The checks every worker command shares: role, state, and a live lock held by this worker."""
        if not may_complete(None):
            raise NotAllowed(f"external task '{task.name or task.element_id}' is {doing} by its worker, with the "
                             "role 'system'")
        if task.state != "ready":
            raise TaskNotReady(f"task '{task.name or task.element_id}' is {task.state}, not ready; "
                               f"it cannot be {doing} again")
        if not worker:
            raise Conflict(f"task '{task.name or task.element_id}' is an external task on topic '{task.topic}': "
                           "lock it first (POST /api/v1/external-tasks/lock) and send the same 'worker'")
        live = task.locked_by is not None and task.locked_until is not None and task.locked_until > self._now()
        if not live or task.locked_by != worker:
            holder = f"locked by worker '{task.locked_by}'" if live else "not locked by anyone (or the lock ran out)"
            raise Conflict(f"worker '{worker}' does not hold the lock on task '{task.name or task.element_id}': "
                           f"it is {holder}; lock it again before completing or failing it")

    @staticmethod
    def _still_held(conn, task, worker: str | None, now: datetime) -> None:
        """Checked again inside the write: the lock may have run out, and another worker taken the task,
        since it was checked before the work began. Raising rolls the whole command back."""
        if not store.holds_lock(conn, task.id, worker, now):
            raise Conflict(f"worker '{worker}' lost the lock on task '{task.name or task.element_id}' while "
                           "working on it (it ran out, and the task may be another worker's now); nothing was "
                           "saved: lock it again")

    def _complete_external(self, task, data: dict, actor: str, may_complete, if_match: str | None,
                           worker: str | None) -> dict:
        self._held_external_task(task, may_complete, worker, "completed")
        self._check_data_size(data)
        row, ready_rows, blueprint, workflow, spiff_task = self._open_external(task, if_match)
        now = self._now()
        recorder = self._recorder(row.id, actor, blueprint, now)
        before = {key: spiff_task.data.get(key) for key in data if key in spiff_task.data}
        recorder.add("task_completed", task.element_id, data_changes(before, data), process=task.process_id,
                     task_id=task.id, worker=worker)
        spiff_task.data.update(data)
        spiff_task.complete()
        outcome = advance(workflow, blueprint, recorder)
        return self._save(row, workflow, outcome, ready_rows, recorder, completed=(task.id, actor),
                          also=lambda conn: self._still_held(conn, task, worker, now))

    @_on_engine_clock
    def lock_external_tasks(self, worker: str, topics: list[str], max_tasks: int, lock_seconds: int) -> list[dict]:
        """Lock up to `max_tasks` ready external tasks on these topics for `worker`, oldest first. Two
        workers asking at once never get the same task: each lock is a conditional update."""
        now = self._now()
        until = now + timedelta(seconds=lock_seconds)
        with self.db.writer.begin() as conn:
            locked = [task_id for task_id in store.lockable_tasks(conn, topics, now, max_tasks)
                      if store.lock_task(conn, task_id, worker, until, now)]
        with self.db.reader.connect() as conn:
            tasks = [store.get_task(conn, task_id) for task_id in locked]
            case_ids = {task.case_id for task in tasks}
            pins = store.case_pins(conn, case_ids)
            cases = {case_id: store.get_case_summary(conn, case_id) for case_id in case_ids}
        return [{**self._task_representation(task, pins[task.case_id]), "data": json.loads(cases[task.case_id].data),
                 "business_key": cases[task.case_id].business_key} for task in tasks]

    @_on_engine_clock
    def extend_external_lock(self, task_id: str, worker: str, lock_seconds: int,
                             may_complete: Callable[[str | None], bool]) -> dict:
        """A worker with a long job keeps its lock: it now runs `lock_seconds` from now."""
        task = self._external_task_row(task_id, "only external tasks have locks")
        self._held_external_task(task, may_complete, worker, "extended")
        now = self._now()
        with self.db.writer.begin() as conn:
            if not store.extend_lock(conn, task_id, worker, now + timedelta(seconds=lock_seconds), now):
                raise Conflict(f"worker '{worker}' lost the lock on task '{task.name or task.element_id}' just now; "
                               "lock it again")
            task = store.get_task(conn, task_id)
            pins = store.case_pins(conn, {task.case_id})[task.case_id]
        return self._task_representation(task, pins)

    @_on_engine_clock
    def fail_external_task(self, task_id: str, worker: str | None, message: str, actor: str,
                           may_complete: Callable[[str | None], bool]) -> dict:
        """The worker could not do the job: the case gets an incident at the task, and the lock is
        released so that, after a retry, a worker can fetch the task again."""
        task = self._external_task_row(task_id, "only external tasks can be failed")
        self._held_external_task(task, may_complete, worker, "failed")
        row, ready_rows, blueprint, workflow, _ = self._open_external(task, None)
        recorder = self._recorder(row.id, actor, blueprint, self._now())
        definition, _ = blueprint.locate(task.process_id, task.element_id)
        incident = incidents.worker_failed(Place(task.element_id, task.name, definition, task.process_id),
                                           worker, message, task.id, actor)
        outcome = outcome_with_incident(workflow, blueprint, incident)

        def release(conn):
            self._still_held(conn, task, worker, recorder.at)
            store.unlock_task(conn, task.id)

        return self._save(row, workflow, outcome, ready_rows, recorder, also=release)

    @_on_engine_clock
    def send_message(self, case_id: str, name: str, data: dict, actor: str, if_match: str | None = None,
                     also: Callable | None = None) -> dict:
        row = self._read_case(case_id)
        self._check_running(row, if_match)
        self._check_data_size(data)
        blueprint = self._blueprint_of(row)
        workflow = self._restore(row, blueprint)
        if not deliver_message(workflow, name, data):
            waiting = sorted(waiting_message_names(workflow))
            raise Conflict(f"the case waits for no message named '{name}'" +
                           (f"; it waits for: {', '.join(waiting)}" if waiting else "; it waits for no message"))
        # The catching element records message_received as it runs, with the sender as its actor.
        recorder = self._recorder(row.id, actor, blueprint, self._now())
        outcome = advance(workflow, blueprint, recorder)
        with self.db.reader.connect() as conn:
            ready_rows = store.ready_tasks_of_cases(conn, [case_id])[case_id]
        return self._save(row, workflow, outcome, ready_rows, recorder, also=also)

    def route_message(self, name: str, actor: str, business_key: str | None = None,
                      correlation: dict | None = None, data: dict | None = None,
                      idempotency_key: str | None = None) -> tuple[dict, bool]:
        """Deliver a message to the one case that waits for it, or start a case of the definition whose
        message start event it names. Returns (case, started a new case?). With an idempotency key, a
        repeat of the same request returns the case the first one went to, as it is now."""
        data = data or {}
        self._check_data_size(data)
        if idempotency_key:
            request_hash = hashlib.sha256(json.dumps([name, business_key, correlation, data],
                                                     sort_keys=True).encode()).hexdigest()
            repeat = self._message_repeat(actor, idempotency_key, request_hash)
            if repeat is not None:
                return repeat, False

            def remember(conn, case_id: str) -> None:
                store.insert_message_request(conn, {"created_by": actor, "idempotency_key": idempotency_key,
                                                    "request_hash": request_hash, "case_id": case_id,
                                                    "created_at": self._now()})
            try:
                return self._route(name, actor, business_key, correlation, data, remember)
            except IntegrityError:  # the same request, sent again at the same moment, went first
                repeat = self._message_repeat(actor, idempotency_key, request_hash)
                if repeat is None:
                    raise
                return repeat, False
        return self._route(name, actor, business_key, correlation, data, None)

    def _message_repeat(self, actor: str, key: str, request_hash: str) -> dict | None:
        with self.db.reader.connect() as conn:
            previous = store.find_message_request(conn, actor, key)
        if previous is None:
            return None
        if previous.request_hash != request_hash:
            raise IdempotencyMismatch(
                f"the Idempotency-Key '{key}' was already used for a different message; use a new key for a new "
                "message", [{"field": "Idempotency-Key", "message": "reused with another body"}])
        return self.get_case(previous.case_id)

    def _route(self, name: str, actor: str, business_key: str | None, correlation: dict | None, data: dict,
               remember: Callable | None) -> tuple[dict, bool]:
        with self.db.reader.connect() as conn:
            candidates = store.cases_waiting_for_message(conn, name, business_key)
        correlation = correlation or {}
        waiting = [row for row in candidates if all(
            json.loads(row.data).get(key) == value for key, value in correlation.items())]
        if len(waiting) > 1:
            raise Conflict(f"{len(waiting)} cases wait for message '{name}'; say which with business_key or "
                           "correlation", [{"case_id": row.id, "message": "waits for it"} for row in waiting[:10]])
        if waiting:
            case_id = waiting[0].id
            also = (lambda conn: remember(conn, case_id)) if remember else None
            return self.send_message(case_id, name, data, actor, also=also), False
        started_by = load_catalogue(self.db, self.specs).started_by(name)
        if started_by is None:
            raise NotFound(f"no case waits for message '{name}'" +
                           (f" with business key '{business_key}'" if business_key else "") +
                           (" and that correlation" if correlation else "") +
                           ", and no deployed definition starts on it")
        target, by_message_start = started_by
        return self._start_on_message(target, name if by_message_start else None, actor, business_key, data,
                                      remember), True

    @_on_engine_clock
    def _start_on_message(self, definition: str, message: str | None, actor: str, business_key, data: dict,
                          remember: Callable | None = None) -> dict:
        prepared = self._prepare_case(definition, None, actor, business_key, data, start_message=message)
        with self.db.writer.begin() as conn:
            self._insert_prepared(conn, prepared)
            if remember is not None:
                remember(conn, prepared.values["id"])
        self._tell_started(prepared)
        return self._representation(prepared.values, prepared.task_rows,
                                    [child.values["id"] for child in prepared.children])

    @_on_engine_clock
    def cancel_case(self, case_id: str, actor: str, if_match: str | None = None) -> dict:
        row = self._read_case(case_id)
        if row.status in ("completed", "cancelled"):
            raise Conflict(f"the case is already {row.status}; only a case that has not finished can be cancelled")
        self._check_if_match(row, if_match)
        blueprint = self._blueprint_of(row)
        workflow = self._restore(row, blueprint)
        workflow.cancel()
        with self.db.reader.connect() as conn:
            ready_rows = store.ready_tasks_of_cases(conn, [case_id])[case_id]
        recorder = self._recorder(row.id, actor, blueprint, self._now())
        outcome = Outcome("cancelled", [], [], json.loads(row.data), None, None)
        return self._save(row, workflow, outcome, ready_rows, recorder)

    def suspend_case(self, case_id: str, actor: str, if_match: str | None = None) -> dict:
        """Hold a case: it refuses completions, messages and timers until resumed."""
        row = self._read_case(case_id)
        if row.status not in ("running", "error"):
            raise Conflict(f"only a running case or one with an incident can be suspended; this one is {row.status}")
        self._check_if_match(row, if_match)
        return self._change_status(row, "suspended", "case_suspended", actor)

    def resume_case(self, case_id: str, actor: str, if_match: str | None = None) -> dict:
        row = self._read_case(case_id)
        if row.status != "suspended":
            raise Conflict(f"only a suspended case can be resumed; this one is {row.status}")
        self._check_if_match(row, if_match)
        # Back to where it was: an unresolved incident stays an incident.
        return self._change_status(row, "error" if row.incident else "running", "case_resumed", actor)

    def _change_status(self, row, status: str, event_type: str, actor: str, incident: Incident | None = None) -> dict:
        """Only the status changes (and, with an incident, the incident): no step of the process runs."""
        blueprint = self._blueprint_of(row)
        now = self._now()
        recorder = self._recorder(row.id, actor, blueprint, now)
        if incident is None:
            recorder.add(event_type, previous_status=row.status)
        else:
            recorder.add(event_type, message=incident.message)
        event_rows, event_seq, event_hash = seal(recorder, row.event_seq, row.event_hash)
        columns = {"status": status, "updated_at": now, "event_seq": event_seq, "event_hash": event_hash}
        if incident is not None:
            columns["incident"] = json.dumps(incident.as_dict())
        with self.db.writer.begin() as conn:
            if not store.update_case(conn, row.id, row.row_version, columns):
                raise ConcurrentUpdate("another request changed this case at the same moment and won; "
                                       "read the case again and retry if still needed")
            store.insert_events(conn, [event_row(row.id, event, now) for event in event_rows])
            ready = store.ready_tasks_of_cases(conn, [row.id])[row.id]
        values = {**row._mapping, **columns, "row_version": row.row_version + 1}
        return self._representation(values, [task._mapping for task in ready], None)

    @_on_engine_clock
    def retry_case(self, case_id: str, actor: str, data: dict | None = None, if_match: str | None = None) -> dict:
        """After an incident: merge `data` into the failed step, run it again, and carry on."""
        data = data or {}
        row = self._read_case(case_id)
        if row.status != "error":
            raise Conflict(f"only a case with an incident can be retried; this one is {row.status}")
        self._check_if_match(row, if_match)
        self._check_data_size(data)
        blueprint = self._blueprint_of(row)
        workflow = self._restore(row, blueprint)
        if workflow.is_completed():
            raise Conflict("this incident cannot be retried: the process already ended (an uncaught BPMN error); "
                           "cancel the case and start a new one")
        now = self._now()
        recorder = self._recorder(row.id, actor, blueprint, now)
        failed = workflow.get_tasks(state=TaskState.ERROR)
        incident = Incident.from_dict(json.loads(row.incident) if row.incident else {})
        # a worker's failure leaves its task waiting, not in error: the retry data goes there
        targets = failed or [t for t in [external_task(workflow, blueprint, incident.task_id or "")] if t]
        recorder.add("case_retried", incident.element_id,
                     data_changes({k: targets[0].data.get(k) for k in data} if targets else {}, data),
                     process=incident.process_id, incident=incident.message)
        for task in targets:
            task.data.update(data)
        outcome = run_failed_again(workflow, blueprint, failed, recorder)
        with self.db.reader.connect() as conn:
            ready_rows = store.ready_tasks_of_cases(conn, [case_id])[case_id]
        return self._save(row, workflow, outcome, ready_rows, recorder)

    @_on_engine_clock
    def fire_due_timers(self, limit: int = 100) -> int:
        """Fire the timers that are due by the engine's clock; returns how many cases moved on.

        Several workers may run this at once: each case is saved with the usual row-version check, so
        a timer that two workers fire at the same moment is recorded by one and dropped by the other."""
        with self.db.reader.connect() as conn:
            due = store.due_case_ids(conn, self._now(), limit)
        fired = 0
        for case_id in due:
            try:
                fired += self._fire_timers_of(case_id)
            except ConcurrentUpdate:
                continue  # another worker or a user got there first; its state is the truth now
            except OperationalError:
                raise  # the database itself is away: nothing to blame on this case
            except Exception as exc:  # noqa: BLE001 - one case must never stop the timers of all others
                log.exception("firing the timers of case %s failed", case_id)
                try:
                    self._timer_failed(case_id, exc)
                except Exception:  # noqa: BLE001 - logged; the next pass tries this case again
                    log.exception("could not record the incident of case %s", case_id)
        return fired

    def _timer_failed(self, case_id: str, exc: Exception) -> None:
        """The case gets an incident where its timers failed, and is no longer due, so the worker goes
        on and does not fail on it again at every pass."""
        row = self._read_case(case_id)
        text = getattr(exc, "detail", None) or incidents.exception_text(exc)
        incident = incidents.timer_failed(Place(definition=row.definition_key), text)
        try:
            self._change_status(row, "error", "incident", "timer", incident)
        except ConcurrentUpdate:
            return  # someone else moved the case on meanwhile; its state is the truth now
        self.observer.incident(row.definition_key)

    def _fire_timers_of(self, case_id: str) -> int:
        row = self._read_case(case_id)
        if row.status != "running":
            return 0
        blueprint = self._blueprint_of(row)
        workflow = self._restore(row, blueprint)
        recorder = self._recorder(row.id, "timer", blueprint, self._now())
        workflow.refresh_timers()
        outcome = advance(workflow, blueprint, recorder)
        if not recorder.events and outcome.next_timer_at == _iso(row.next_timer_at):
            return 0  # not actually due (e.g. a cycle timer's next slot): leave the row alone
        with self.db.reader.connect() as conn:
            ready_rows = store.ready_tasks_of_cases(conn, [case_id])[case_id]
        self._save(row, workflow, outcome, ready_rows, recorder)
        self.observer.timer_fired(row.definition_key, (recorder.at - row.next_timer_at).total_seconds())
        return 1

    def _read_case(self, case_id: str):
        with self.db.reader.connect() as conn:
            row = store.get_case(conn, case_id)
        if row is None:
            raise CaseNotFound(f"no case with id '{case_id}'")
        return row

    @staticmethod
    def _check_if_match(row, if_match: str | None) -> None:
        if if_match and if_match.strip() != "*" and etag_of(row.row_version) not in [
                tag.strip() for tag in if_match.split(",")]:
            raise PreconditionFailed(f"the case changed since you read it (it is now {etag_of(row.row_version)}); "
                                     "read it again and retry")

    def _check_running(self, row, if_match: str | None) -> None:
        if row.status != "running":
            reason = {"completed": "it is completed", "cancelled": "it was cancelled",
                      "error": "it has an incident that must be resolved first",
                      "suspended": "it is suspended"}.get(row.status, f"it is {row.status}")
            raise Conflict(f"the case cannot accept this now: {reason}")
        self._check_if_match(row, if_match)

    def _blueprint_of(self, row) -> Blueprint:
        return self.specs.blueprint(row.definition_key, row.definition_version, json.loads(row.pins))

    def _restore(self, row, blueprint: Blueprint):
        workflow = workflow_from_dict(json.loads(row.state), blueprint.spec, blueprint.subprocess_specs)
        # SpiffWorkflow does not serialize the script engine: without this the restored case would run
        # scripts with the unrestricted default.
        workflow.script_engine = self.script_engine
        return workflow

    def _recorder(self, case_id: str, actor: str, blueprint: Blueprint, now: datetime) -> Recorder:
        return Recorder(case_id, actor, now, blueprint.key, blueprint.version, blueprint.hash, blueprint)

    @staticmethod
    def _record_outcome(recorder: Recorder, outcome: Outcome, ready_before: set[str],
                        completed_id: str | None = None, ready_elements: dict | None = None) -> None:
        """The events that follow from the result: tasks that became ready or were cancelled, an
        incident, the end of the case."""
        ready_now = {task.id for task in outcome.ready}
        for task_id in sorted(ready_before - ready_now - {completed_id}):
            process_id, element_id = (ready_elements or {}).get(task_id, (None, None))
            recorder.add("task_cancelled", element_id, process=process_id, task_id=task_id)
        for task in outcome.ready:
            if task.id not in ready_before:
                recorder.add("task_ready", task.element_id, actor="system", process=task.process_id, task_id=task.id)
        if outcome.incident:
            incident = outcome.incident
            recorder.add("incident", incident.element_id, actor=incident.reported_by or "system",
                         process=incident.process_id, message=incident.message, line=incident.line)
        if outcome.status == "completed":
            recorder.add("case_completed", actor="system")
        elif outcome.status == "cancelled":
            recorder.add("case_cancelled")

    def _save(self, row, workflow, outcome: Outcome, ready_before: list, recorder: Recorder,
              completed: tuple | None = None, also: Callable | None = None) -> dict:
        """Write the new state, projections and events in one transaction; `also` runs first in it (its own
        checks and writes: raising there rolls everything back)."""
        now = recorder.at
        columns = self._state_columns(workflow, outcome, now, recorder.places)
        ready_now = {task.id: task for task in outcome.ready}
        before_ids = {task.id for task in ready_before}
        completed_id, actor = completed or (None, None)
        self._record_outcome(recorder, outcome, before_ids, completed_id,
                             {task.id: (task.process_id, task.element_id) for task in ready_before})
        children = self._start_linked_cases(row.id, outcome, recorder, 0)
        event_rows, columns["event_seq"], columns["event_hash"] = seal(recorder, row.event_seq, row.event_hash)
        gone = [task_id for task_id in before_ids if task_id not in ready_now and task_id != completed_id]
        new_rows = [self._task_row(row.id, row.definition_key, task, now)
                    for task_id, task in ready_now.items() if task_id not in before_ids]
        with self.db.writer.begin() as conn:
            if not store.update_case(conn, row.id, row.row_version, columns):
                raise ConcurrentUpdate("another request changed this case at the same moment and won; "
                                       "read the case again and retry if still needed")
            if columns["waiting_for"] != row.waiting_for:
                store.replace_message_waits(conn, row.id, json.loads(columns["waiting_for"]))
            if also is not None:
                also(conn)
            if completed_id:
                store.end_tasks(conn, [completed_id], "completed", now, actor)
            store.end_tasks(conn, gone, "cancelled", now)
            store.insert_tasks(conn, new_rows)
            store.insert_events(conn, [event_row(row.id, event, now) for event in event_rows])
            for child in children:
                self._insert_prepared(conn, child)
        if completed_id:
            self.observer.task_completed(row.definition_key)
        if columns["status"] == "error" and row.status != "error":
            self.observer.incident(row.definition_key)
        for child in children:
            self._tell_started(child)
        ready_rows = [task._mapping for task in ready_before if task.id in ready_now] + new_rows
        values = {**row._mapping, **columns, "row_version": row.row_version + 1}
        return self._representation(values, ready_rows, None)

