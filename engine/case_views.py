"""Reading cases, tasks and trails: projections only, never a deserialized case (except for the
diagram page, which restores a running case to find the call activities it waits in)."""
from __future__ import annotations

import json
from datetime import datetime

from SpiffWorkflow.bpmn.specs.mixins.subworkflow_task import SubWorkflowTask
from SpiffWorkflow.util.task import TaskState

from . import store
from .audit import event_from_row, process_of, verify_chains
from .clock import rfc3339
from .errors import CaseNotFound, TaskNotFound
from .incidents import Incident
from .projections import etag_of


class CaseViews:
    def get_case(self, case_id: str) -> dict:
        with self.db.reader.connect() as conn:
            row = store.get_case_summary(conn, case_id)
            if row is None:
                raise CaseNotFound(f"no case with id '{case_id}'")
            ready = store.ready_tasks_of_cases(conn, [case_id])[case_id]
            children = store.child_case_ids(conn, case_id)
        return self._representation(row._mapping, [r._mapping for r in ready], children)

    def list_cases(self, filters: dict, cursor: str | None, limit: int) -> tuple[list[dict], str | None]:
        with self.db.reader.connect() as conn:
            rows, next_cursor = store.list_cases(conn, filters, cursor, limit)
            ready = store.ready_tasks_of_cases(conn, [row.id for row in rows])
        return [self._representation(row._mapping, [r._mapping for r in ready[row.id]], None)
                for row in rows], next_cursor

    def _representation(self, row, ready_rows, children) -> dict:
        case = {"id": row["id"], "definition": row["definition_key"], "version": row["definition_version"],
                "business_key": row["business_key"], "status": row["status"], "workflow": row["workflow"],
                "created_at": rfc3339(row["created_at"]), "updated_at": rfc3339(row["updated_at"]),
                "data": json.loads(row["data"]),
                "tasks": [self._task_summary(task) for task in ready_rows],
                "waiting_for": json.loads(row["waiting_for"]),
                "parent_case": row["parent_case_id"], "etag": etag_of(row["row_version"])}
        if children is not None:
            case["child_cases"] = children
        if row["incident"]:
            # rows from before incidents named their definition get the case's own
            stored = {"definition": row["definition_key"], **json.loads(row["incident"])}
            case["incident"] = Incident.from_dict(stored).as_dict()
        return case

    @staticmethod
    def _task_summary(task) -> dict:
        summary = {"id": task["id"], "element_id": task["element_id"], "name": task["name"], "lane": task["lane"],
                   "state": task["state"], "created_at": rfc3339(task["created_at"])}
        if task.get("topic"):
            summary["topic"] = task["topic"]  # an external task: a worker does it
        return summary

    def get_task(self, task_id: str) -> dict:
        with self.db.reader.connect() as conn:
            task = store.get_task(conn, task_id)
            if task is None:
                raise TaskNotFound(f"no task with id '{task_id}'")
            case = store.case_pins(conn, {task.case_id})[task.case_id]
        return self._task_representation(task, case)

    def list_tasks(self, filters: dict, lane_roles: set[str] | None, cursor: str | None,
                   limit: int) -> tuple[list[dict], str | None]:
        with self.db.reader.connect() as conn:
            rows, next_cursor = store.list_tasks(conn, filters, lane_roles, cursor, limit)
            cases = store.case_pins(conn, {task.case_id for task in rows})
        return [self._task_representation(task, cases[task.case_id]) for task in rows], next_cursor

    def _task_representation(self, task, case) -> dict:
        blueprint = self.specs.blueprint(case.definition_key, case.definition_version, json.loads(case.pins))
        info = blueprint.user_task(task.process_id, task.element_id)
        return {"id": task.id, "case_id": task.case_id, "definition": task.definition_key,
                "element_id": task.element_id, "name": task.name, "lane": task.lane, "state": task.state,
                "created_at": rfc3339(task.created_at), "ended_at": rfc3339(task.ended_at),
                "completed_by": task.completed_by, "topic": task.topic, "locked_by": task.locked_by,
                "locked_until": rfc3339(task.locked_until),
                "form": info.form.schema if info else {"type": "object"},
                "documentation": info.documentation if info else None}

    def case_diagram(self, case_id: str) -> dict:
        """What a picture of the case's path needs: its trail and, for its own definition and every
        definition it called, the exact BPMN version it ran, what ran there and where it stands."""
        with self.db.reader.connect() as conn:
            row = store.get_case(conn, case_id)
            if row is None:
                raise CaseNotFound(f"no case with id '{case_id}'")
            ready = store.ready_tasks_of_cases(conn, [case_id])[case_id]
            children = store.child_case_ids(conn, case_id)
            trail = [event_from_row(event) for event in store.trail(conn, case_id, {})]
        blueprint = self._blueprint_of(row)
        main = blueprint.key
        events_of: dict[str, list[dict]] = {main: []}
        for event in trail:
            events_of.setdefault(event.get("element_definition") or main, []).append(event)
        current = [(task.process_id, task.element_id) for task in ready]
        if row.status in ("running", "suspended", "error"):
            # A caller waits in the call activity (or subprocess) whose process is running: mark it too.
            current += [(process_of(task), task.task_spec.bpmn_id)
                        for task in self._restore(row, blueprint).get_tasks(state=TaskState.STARTED)
                        if isinstance(task.task_spec, SubWorkflowTask) and task.task_spec.bpmn_id]
        current_of: dict[str, list[str]] = {}
        for process_id, element_id in current:
            owner = blueprint.locate(process_id, element_id)[0]
            events_of.setdefault(owner, [])
            current_of.setdefault(owner, []).append(element_id)
        diagrams = []
        with self.db.reader.connect() as conn:
            for key, events in events_of.items():
                version = blueprint.versions.get(key)
                definition = store.find_definition(conn, key, version) if version else None
                if definition is None:
                    continue
                bpmn = store.definition_file(conn, definition.id, definition.bpmn_file)
                executed, flows = executed_path(events, blueprint.flows_of.get(key, {}), current_of.get(key, []))
                diagrams.append({"definition": key, "version": version, "bpmn": bpmn.decode("utf-8", errors="replace"),
                                 "executed": executed, "flows": flows, "current": current_of.get(key, [])})
        case = self._representation(row._mapping, [task._mapping for task in ready], children)
        return {"case": case, "trail": trail, "diagrams": diagrams}

    def trail(self, case_id: str, filters: dict) -> list[dict]:
        with self.db.reader.connect() as conn:
            if store.get_case_summary(conn, case_id) is None:
                raise CaseNotFound(f"no case with id '{case_id}'")
            return [event_from_row(row) for row in store.trail(conn, case_id, filters)]

    def verify_trails(self, cursor: str | None = None, limit: int | None = None) -> dict:
        """Recompute hash chains and report the first broken link: with no limit every chain, streamed;
        with a limit, the chains of `limit` cases after `cursor` (and the deployments' chain on the first
        page), with `next` for the page after."""
        with self.db.reader.connect() as conn:
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

    def export_events(self, since: datetime | None = None, case_id: str | None = None,
                      business_key: str | None = None):
        """Yield events one at a time (for bulk export); filters narrow by time, case or business key."""
        with self.db.reader.connect() as conn:
            case_ids = None
            if case_id or business_key:
                case_ids = [case_id] if case_id else store.case_ids_by_business_key(conn, business_key)
            for row in store.stream_events(conn, case_ids, since):
                yield event_from_row(row)



def executed_path(trail: list[dict], flows: dict[str, dict[str, str]],
                  current: list[str] = ()) -> tuple[list[str], list[str]]:
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
