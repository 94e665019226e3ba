"""The case and task dicts the engine hands out, built from projection rows (never from a workflow)."""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy.engine import Row

from .blueprints import SpecCache
from .clock import rfc3339
from .incidents import Incident
from .projections import etag_of


def case_representation(row: Mapping[Any, Any], ready_rows: Iterable[Mapping[Any, Any]],
                        children: list[str] | None) -> dict:
    """A case with its ready tasks; `children` (the cases it started) only where they were read."""
    case = {"id": row["id"], "definition": row["definition_key"], "version": row["definition_version"],
            "business_key": row["business_key"], "status": row["status"], "workflow": row["workflow"],
            "created_at": rfc3339(row["created_at"]), "updated_at": rfc3339(row["updated_at"]),
            "data": json.loads(row["data"]),
            "tasks": [_task_summary(task) for task in ready_rows],
            "waiting_for": json.loads(row["waiting_for"]),
            "parent_case": row["parent_case_id"], "etag": etag_of(row["row_version"])}
    if children is not None:
        case["child_cases"] = children
    if row["incident"]:
        case["incident"] = Incident.from_dict(json.loads(row["incident"]), row["definition_key"]).as_dict()
    return case


def _task_summary(task: Mapping[Any, Any]) -> dict:
    """A ready task as its case lists it."""
    summary = {"id": task["id"], "element_id": task["element_id"], "name": task["name"], "lane": task["lane"],
               "state": task["state"], "created_at": rfc3339(task["created_at"])}
    if task.get("topic"):
        summary["topic"] = task["topic"]  # an external task: a worker does it
    return summary


def task_representation(specs: SpecCache, task: Row[Any], case: Any) -> dict:
    """A task with its form and documentation; `case` holds the case's pins (store.case_pins)."""
    blueprint = specs.blueprint(case.definition_key, case.definition_version, json.loads(case.pins))
    info = blueprint.user_task(task.process_id, task.element_id)
    return {"id": task.id, "case_id": task.case_id, "definition": task.definition_key,
            "element_id": task.element_id, "name": task.name, "lane": task.lane, "state": task.state,
            "created_at": rfc3339(task.created_at), "ended_at": rfc3339(task.ended_at),
            "completed_by": task.completed_by, "topic": task.topic, "locked_by": task.locked_by,
            "locked_until": rfc3339(task.locked_until),
            "form": info.form.schema if info else {"type": "object"},
            "documentation": info.documentation if info else None}
