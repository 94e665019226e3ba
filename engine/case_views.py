"""Reading cases, tasks and trails: projections only, never a deserialized case (except for the
diagram page, which restores a running case to find the call activities it waits in)."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from SpiffWorkflow.bpmn.specs.mixins.subworkflow_task import SubWorkflowTask
from SpiffWorkflow.util.task import TaskState
from sqlalchemy.engine import Row

from . import store
from .audit import event_from_row, process_of, verify_chains
from .case_reading import blueprint_of, restore
from .errors import CaseNotFound, TaskNotFound
from .parts import EngineParts
from .representation import case_representation, task_representation


def get_case(parts: EngineParts, case_id: str) -> dict:
    with parts.db.reader.connect() as conn:
        row = store.get_case_summary(conn, case_id)
        if row is None:
            raise CaseNotFound(f"no case with id '{case_id}'")
        ready = store.ready_tasks_of_cases(conn, [case_id])[case_id]
        children = store.child_case_ids(conn, case_id)
    return case_representation(row._mapping, [r._mapping for r in ready], children)


def list_cases(parts: EngineParts, filters: dict, cursor: str | None, limit: int) -> tuple[list[dict], str | None]:
    with parts.db.reader.connect() as conn:
        rows, next_cursor = store.list_cases(conn, filters, cursor, limit)
        ready = store.ready_tasks_of_cases(conn, [row.id for row in rows])
    return [case_representation(row._mapping, [r._mapping for r in ready[row.id]], None)
            for row in rows], next_cursor


def get_task(parts: EngineParts, task_id: str) -> dict:
    with parts.db.reader.connect() as conn:
        task = store.get_task(conn, task_id)
        if task is None:
            raise TaskNotFound(f"no task with id '{task_id}'")
        case = store.case_pins(conn, {task.case_id})[task.case_id]
    return task_representation(parts.specs, task, case)


def list_tasks(parts: EngineParts, filters: dict, lane_roles: set[str] | None, cursor: str | None,
               limit: int) -> tuple[list[dict], str | None]:
    with parts.db.reader.connect() as conn:
        rows, next_cursor = store.list_tasks(conn, filters, lane_roles, cursor, limit)
    return [task_representation(parts.specs, task, _pins_of_listed(task)) for task in rows], next_cursor


class _CasePins(NamedTuple):
    definition_key: str
    definition_version: int
    pins: str


def _pins_of_listed(task: Row[Any]) -> _CasePins:
    """The pins of a task's case, which store.list_tasks reads with the task."""
    return _CasePins(task.case_definition_key, task.case_definition_version, task.case_pins)


def case_diagram(parts: EngineParts, case_id: str) -> dict:
    """What a picture of the case's path needs: its trail and, for its own definition and every
    definition it called, the exact BPMN version it ran, what ran there and where it stands."""
    with parts.db.reader.connect() as conn:
        row = store.get_case(conn, case_id)
        if row is None:
            raise CaseNotFound(f"no case with id '{case_id}'")
        ready = store.ready_tasks_of_cases(conn, [case_id])[case_id]
        children = store.child_case_ids(conn, case_id)
        trail = [event_from_row(event) for event in store.trail(conn, case_id, {})]
    blueprint = blueprint_of(parts.specs, row)
    main = blueprint.key
    events_of: dict[str, list[dict]] = {main: []}
    for event in trail:
        events_of.setdefault(event.get("element_definition") or main, []).append(event)
    current = [(task.process_id, task.element_id) for task in ready]
    if row.status in ("running", "suspended", "error"):
        # A caller waits in the call activity (or subprocess) whose process is running: mark it too.
        current += [(process_of(task), task.task_spec.bpmn_id)
                    for task in restore(row, blueprint, parts.script_engine).get_tasks(state=TaskState.STARTED)
                    if isinstance(task.task_spec, SubWorkflowTask) and task.task_spec.bpmn_id]
    current_of: dict[str, list[str]] = {}
    for process_id, element_id in current:
        owner = blueprint.locate(process_id, element_id)[0]
        events_of.setdefault(owner, [])
        current_of.setdefault(owner, []).append(element_id)
    diagrams = []
    with parts.db.reader.connect() as conn:
        for key, events in events_of.items():
            version = blueprint.versions.get(key)
            definition = store.find_definition(conn, key, version) if version else None
            bpmn = store.definition_file(conn, definition.id, definition.bpmn_file) if definition else None
            if bpmn is None:
                continue
            executed, flows = executed_path(events, blueprint.flows_of.get(key, {}), current_of.get(key, []))
            diagrams.append({"definition": key, "version": version, "bpmn": bpmn.decode("utf-8", errors="replace"),
                             "executed": executed, "flows": flows, "current": current_of.get(key, [])})
    case = case_representation(row._mapping, [task._mapping for task in ready], children)
    return {"case": case, "trail": trail, "diagrams": diagrams}


def trail(parts: EngineParts, case_id: str, filters: dict) -> list[dict]:
    with parts.db.reader.connect() as conn:
        if store.get_case_summary(conn, case_id) is None:
            raise CaseNotFound(f"no case with id '{case_id}'")
        return [event_from_row(row) for row in store.trail(conn, case_id, filters)]


def verify_trails(parts: EngineParts, cursor: str | None = None, limit: int | None = None) -> dict:
    """Recompute hash chains and report the first broken link: with no limit every chain, streamed;
    with a limit, the chains of `limit` cases after `cursor` (and the deployments' chain on the first
    page), with `next` for the page after."""
    with parts.db.snapshot.connect() as conn:  # heads and events of one moment, or a busy case looks broken
        if limit is None:
            heads = {**store.case_heads(conn), **store.other_chain_heads(conn)}
            return verify_chains(store.stream_events(conn), heads).as_dict()
        page = store.case_ids_page(conn, cursor, limit + 1)
        more, page = len(page) > limit, page[:limit]
        heads = store.case_heads(conn, page)
        if cursor is None:
            heads.update(store.other_chain_heads(conn))
        result = verify_chains(store.stream_events(conn, list(heads)), heads).as_dict()
    return {**result, "next": page[-1] if more else None}


def export_events(parts: EngineParts, since: datetime | None = None, case_id: str | None = None,
                  business_key: str | None = None) -> Iterator[dict]:
    """Yield events one at a time (for bulk export); filters narrow by time, case or business key."""
    with parts.db.snapshot.connect() as conn:  # streamed through a server-side cursor: needs a transaction
        case_ids = None
        if case_id:
            case_ids = [case_id]
        elif business_key:
            case_ids = store.case_ids_by_business_key(conn, business_key)
        for row in store.stream_events(conn, case_ids, since):
            yield event_from_row(row)


def executed_path(trail: list[dict], flows: dict[str, dict[str, str]],
                  current: Sequence[str] = ()) -> tuple[list[str], list[str]]:
    """The elements a case executed and the sequence flows it took, from its trail.

    Gateways record the flows they chose; for every other element a flow counts as taken when both its
    ends were reached (executed, or waiting there now): an element with one way out can only have left by it."""
    executed_types = {"task_completed", "activity_completed", "event_passed", "gateway_taken", "timer_fired",
                      "message_received", "message_sent"}
    executed: list[str] = []
    taken: list[str] = []
    gateway_flows: dict[str, set[str]] = {}
    for event in trail:
        element_id = event["element_id"]
        if event["type"] in executed_types and element_id:
            if element_id not in executed:
                executed.append(element_id)
            if event["type"] == "gateway_taken":
                gateway_flows.setdefault(element_id, set()).update(event["details"].get("flows", []))
    done = set(executed) | set(current)
    for source in executed:
        for target, flow_id in flows.get(source, {}).items():
            chosen = flow_id in gateway_flows[source] if source in gateway_flows else target in done
            if chosen and flow_id not in taken:
                taken.append(flow_id)
    return executed, taken
