"""The pages of work and of what runs it: /tasks (a person's ready tasks), /definitions (what is deployed,
each with its picture and forms) and /compliance (requirement → activities → cases). pages.py says what
the pages share."""
from __future__ import annotations

from flask import Response

from ..auth import SEES_ALL_TASKS
from ..contract import PAGING
from ..http import engine, paging, requires
from .audit import READERS
from .diagram import json_for_html
from .pages import (PICTURE_POLICY, as_json_text, call_record, page_blueprint, page_link, page_operation,
                    render_page)
from .tasks import visible_lane_roles

bp = page_blueprint("work_pages", __name__)


@bp.get("/tasks")
@page_operation("The ready tasks of the reader's lanes (auditor, system and admin: every ready task), oldest first, "
                "each with its case", roles="any authenticated user (lane holders: the tasks of their lanes)",
                errors=(422,), query=PAGING)
@requires()
def tasks() -> Response:
    cursor, limit = paging()
    lanes = visible_lane_roles()  # as GET /api/v1/tasks decides it
    items, next_cursor = engine().list_tasks({"state": "ready"}, lanes, cursor, limit)
    cases = {case_id: engine().get_case(case_id) for case_id in dict.fromkeys(task["case_id"] for task in items)}
    rows = [{**task, "case": cases[task["case_id"]], "call": call_record(cases[task["case_id"]]["data"])}
            for task in items]
    return render_page("pages/tasks.html", rows=rows, lanes=sorted(lanes) if lanes is not None else None,
                       sees_all=sorted(SEES_ALL_TASKS), next=page_link(next_cursor) if next_cursor else None,
                       first=page_link(None) if cursor else None)


@bp.get("/definitions")
@page_operation("The deployed definitions: the latest version of each, whether a client may start it and how, "
                "what it calls and starts, each linking to its picture, versions and forms",
                roles="any authenticated user")
@requires()
def definitions() -> Response:
    return render_page("pages/definitions.html", items=engine().list_definitions())


@bp.get("/definitions/<key>")
@page_operation("A definition: its latest version drawn with bpmn-js, its versions, whether it can be started, "
                "its lanes and its user tasks with their forms (JSON Schema fields)", roles="any authenticated user",
                errors=(404,))
@requires()
def definition(key: str) -> Response:
    found = engine().get_definition(key)
    _, bpmn = engine().definition_source(key, found["version"])
    # diagram.js draws what it is given in this shape; a definition has no path to mark.
    picture = {"diagrams": [{"definition": key, "version": found["version"], "executed": [], "flows": [],
                             "current": [], "bpmn": bpmn.decode("utf-8", errors="replace")}]}
    return render_page("pages/definition.html", policy=PICTURE_POLICY, definition=found,
                       forms=[_form(task) for task in found["user_tasks"]], picture=json_for_html(picture))


def _form(task: dict) -> dict:
    """A user task's form as a person reads it: one row per field, and the whole JSON Schema."""
    schema = task["form"]
    required = set(schema.get("required") or [])
    fields = []
    for name, field in (schema.get("properties") or {}).items():
        field = field if isinstance(field, dict) else {}
        kind = field.get("type") or ("one of" if "enum" in field else "any")
        fields.append({"name": name, "title": field.get("title"), "description": field.get("description"),
                       "type": " or ".join(kind) if isinstance(kind, list) else kind, "enum": field.get("enum"),
                       "required": name in required})
    return {**task, "fields": fields, "schema": as_json_text(schema)}


@bp.get("/compliance")
@page_operation("The compliance cross-reference: each requirement (ISO/IEC 20000-1 clause, ISO/IEC 27001 control) "
                "with the activities that evidence it, linking to the cases that executed them",
                roles="auditor, system")
@requires(*READERS)
def compliance() -> Response:
    standards: dict[str, list[dict]] = {}
    for requirement in engine().list_compliance():
        standards.setdefault(requirement["standard"], []).append(requirement)
    return render_page("pages/compliance.html", standards=standards)


@bp.get("/compliance/<path:requirement>")
@page_operation("A requirement, its activities and the cases that executed them, a page at a time, each linking "
                "to its case", roles="auditor, system", errors=(404, 422), query=PAGING)
@requires(*READERS)
def requirement(requirement: str) -> Response:
    cursor, limit = paging()
    found, items, next_cursor = engine().requirement_cases(requirement, cursor, limit)
    return render_page("pages/requirement.html", requirement=found, items=items,
                       next=page_link(next_cursor) if next_cursor else None, first=page_link(None) if cursor else None)
