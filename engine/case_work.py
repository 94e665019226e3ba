"""One command's work on one case: open it, do the command's own step, save it.

Every command on an existing case goes this way. Opening reads the case row and its ready task rows
(one read) and makes the checks every command makes: the case's status allows the command, and the
caller's If-Match still matches. The command then acts on the restored workflow, its recorder noting
what happened. Saving writes the new state, the task rows, the audit events and any cases the step
started in ONE transaction guarded by the row version: a lost race writes nothing and raises
ConcurrentUpdate.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from SpiffWorkflow.bpmn import BpmnWorkflow
from sqlalchemy.engine import Connection, Row

from . import store, store_messages
from .audit import seal
from .case_reading import blueprint_of, case_row, restore
from .case_start import (
    PreparedCase,
    insert_prepared,
    record_handoffs,
    start_linked_cases,
    tell_started,
    with_handoff_incident,
)
from .case_state import case_columns, record_outcome, recorder_for, serialized_state, task_row
from .errors import ConcurrentUpdate, Conflict, PreconditionFailed
from .incidents import Incident
from .parts import EngineParts
from .projections import etag_of, event_row
from .representation import case_representation
from .runner import Outcome, advance
from .store_steps import CompletedTask, Step, write_step

StatusRule = Callable[[Row[Any]], None]  # raises Conflict when the case's status does not allow the command
InTransaction = Callable[[Connection], None]  # a command's own checks and writes inside the save's transaction
_LOST_RACE = ("another request changed this case at the same moment and won; "
              "read the case again and retry if still needed")


def must_be_running(row: Row[Any]) -> None:
    if row.status != "running":
        reason = {"completed": "it is completed", "cancelled": "it was cancelled",
                  "error": "it has an incident that must be resolved first",
                  "suspended": "it is suspended"}.get(row.status, f"it is {row.status}")
        raise Conflict(f"the case cannot accept this now: {reason}")


def check_if_match(row: Row[Any], if_match: str | None) -> None:
    if if_match and if_match.strip() != "*" and etag_of(row.row_version) not in [
            tag.strip() for tag in if_match.split(",")]:
        raise PreconditionFailed(f"the case changed since you read it (it is now {etag_of(row.row_version)}); "
                                 "read it again and retry")


@dataclass(frozen=True)
class CaseRows:
    """A case's row and its ready task rows, read on one connection."""

    case: Row[Any]
    ready: list[Row[Any]]


def read_case_rows(conn: Connection, case_id: str) -> CaseRows:
    return CaseRows(case_row(conn, case_id), store.ready_tasks_of_cases(conn, [case_id])[case_id])


def open_case(parts: EngineParts, case_id: str, actor: str, allowed: StatusRule = must_be_running,
              if_match: str | None = None) -> CaseWork:
    """Read the case (its row and ready tasks, on one connection) and check that its status allows the
    command and that the caller's If-Match still matches."""
    with parts.db.reader.connect() as conn:
        rows = read_case_rows(conn, case_id)
    return open_rows(parts, rows, actor, allowed, if_match)


def open_rows(parts: EngineParts, rows: CaseRows, actor: str, allowed: StatusRule = must_be_running,
              if_match: str | None = None) -> CaseWork:
    """The same for a case already read (the hot path reads it with its task, on one connection)."""
    allowed(rows.case)
    check_if_match(rows.case, if_match)
    return CaseWork(parts, rows, actor)


class CaseWork:
    """An opened case: its rows as read, its blueprint, its workflow (when first used: the one this process
    saved last, if the row is still as that save left it, else restored) and the recorder of this command's
    events."""

    def __init__(self, parts: EngineParts, rows: CaseRows, actor: str) -> None:
        self.parts = parts
        self.row = rows.case
        self.ready_rows = rows.ready
        self.blueprint = self.opened_on = blueprint_of(parts.specs, self.row)
        self.recorder = recorder_for(self.row.id, actor, self.blueprint, parts.now())
        self._workflow: BpmnWorkflow | None = None

    @property
    def workflow(self) -> BpmnWorkflow:
        if self._workflow is None:
            row = self.row
            self._workflow = (self.parts.workflows.take(row.id, (row.row_version, row.event_hash), self.blueprint)
                              or restore(row, self.blueprint, self.parts.script_engine))
        return self._workflow

    def advance(self) -> Outcome:
        """Run every engine step that can run now; the recorder sees each one."""
        return advance(self.workflow, self.blueprint, self.recorder)

    def save(self, outcome: Outcome, completed_task: CompletedTask | None = None,
             in_transaction: InTransaction | None = None) -> dict:
        """Write the workflow's new state, its task rows, the recorded events and the cases it started in
        one transaction. `in_transaction` runs in it after the case row is written: raising there rolls
        everything back."""
        row, now = self.row, self.recorder.at
        handoffs = start_linked_cases(self.parts, row.id, outcome, 0)
        outcome = with_handoff_incident(self.workflow, self.blueprint, outcome, handoffs)
        state, outcome = serialized_state(self.workflow, self.blueprint, outcome)
        columns = case_columns(state, outcome, now, self.parts.settings.max_case_data_bytes)
        completed_id = completed_task.task_id if completed_task else None
        record_outcome(self.recorder, outcome, self.ready_rows, completed_id)
        record_handoffs(self.recorder, handoffs)
        children = handoffs.cases
        events, columns["event_seq"], columns["event_hash"] = seal(self.recorder, row.event_seq, row.event_hash)
        ready_now = {task.id for task in outcome.ready}
        before = {task.id for task in self.ready_rows}
        gone = [task.id for task in self.ready_rows if task.id not in ready_now and task.id != completed_id]
        new_rows = [task_row(row.id, row.definition_key, task, now) for task in outcome.ready if task.id not in before]
        step = Step(row.id, row.row_version, columns, now, completed=completed_task, cancelled=gone, new_tasks=new_rows,
                    events=[event_row(row.id, event, now) for event in events])

        waits = json.loads(columns["waiting_for"]) if columns["waiting_for"] != row.waiting_for else None

        def more(conn: Connection) -> None:
            if waits is not None:
                store_messages.replace_message_waits(conn, row.id, waits)
            if in_transaction is not None:
                in_transaction(conn)
            for child in children:
                insert_prepared(conn, child)

        self._write(step, more if waits is not None or in_transaction is not None or children else None)
        # Kept for the next command unless the case finished (nothing restores it again) or the command moved
        # the workflow to other specs (a migration): a restore on those is the tested way to get it back.
        if columns["state"] and self.blueprint is self.opened_on:
            self.parts.workflows.keep(row.id, (row.row_version + 1, columns["event_hash"]), self.blueprint,
                                      self.workflow, len(state))
        self._tell_saved(columns["status"], completed_task, children)
        still_ready = [task._mapping for task in self.ready_rows if task.id in ready_now]
        return self._saved(columns, [*still_ready, *new_rows])

    def save_status(self, status: str, incident: Incident | None = None) -> dict:
        """Write only a new status (and, with an incident, the incident) and the recorded events: no step
        of the process ran, so its state and tasks stay as they are."""
        row, now = self.row, self.recorder.at
        events, seq, head = seal(self.recorder, row.event_seq, row.event_hash)
        columns: dict[str, Any] = {"status": status, "updated_at": now, "event_seq": seq, "event_hash": head}
        if incident is not None:
            columns["incident"] = json.dumps(incident.as_dict())
        self._write(Step(row.id, row.row_version, columns, now,
                         events=[event_row(row.id, event, now) for event in events]))
        return self._saved(columns, [task._mapping for task in self.ready_rows])

    def _write(self, step: Step, more: InTransaction | None = None) -> None:
        """One transaction: the case row (if nobody wrote it since it was read), then `more`, the tasks and the
        events. On PostgreSQL, a step with nothing more is written in one statement (store_steps.py)."""
        db = self.parts.db
        if more is None and not db.is_sqlite:
            with db.autocommit.connect() as conn:
                if not write_step(conn, step):
                    raise ConcurrentUpdate(_LOST_RACE)
            return
        with db.writer.begin() as conn:
            if not store.update_case(conn, step.case_id, step.expected_version, step.columns):
                raise ConcurrentUpdate(_LOST_RACE)  # and nothing is written
            if more is not None:
                more(conn)
            if step.completed is not None:
                store.end_tasks(conn, [step.completed.task_id], "completed", step.at, step.completed.actor)
            store.end_tasks(conn, step.cancelled, "cancelled", step.at)
            store.insert_tasks(conn, step.new_tasks)
            store.insert_events(conn, step.events)

    def _tell_saved(self, status: str, completed_task: CompletedTask | None, children: list[PreparedCase]) -> None:
        """Tell the observer what the committed save made true."""
        observer, definition = self.parts.observer, self.row.definition_key
        if completed_task is not None:
            observer.task_completed(definition)
        if status == "error" and self.row.status != "error":
            observer.incident(definition)
        for child in children:
            tell_started(self.parts, child)

    def _saved(self, columns: dict[str, Any], ready_rows: Sequence[Mapping[Any, Any]]) -> dict:
        """The case as the save left it."""
        values = {**self.row._mapping, **columns, "row_version": self.row.row_version + 1}
        return case_representation(values, ready_rows, None)
