"""The cases pages: /cases searches them, /cases/<id> shows one (pages.py says what the pages share)."""
from __future__ import annotations

from flask import Response, g, request, url_for

from ..contract import PAGING, query_param
from ..http import engine, enum_param, paging, requires, time_param
from .audit import READERS
from .cases import STATUSES
from .pages import as_json_text, call_record, page_blueprint, page_link, page_operation, render_page

bp = page_blueprint("case_pages", __name__)

# The search form's fields, passed to list_cases under the same names.
TEXT_FILTERS = ("business_key", "call_number", "definition", "workflow")
SEARCH = PAGING + [
    query_param("business_key", {"type": "string"}, "only cases with this business key"),
    query_param("call_number", {"type": "string"}, "only cases whose call record has this number (INC-000001)"),
    query_param("definition", {"type": "string"}, "only cases of this definition key"),
    query_param("status", {"enum": ["", *STATUSES]}, "only cases in this status (empty: any)"),
    query_param("workflow", {"type": "string"}, "only cases of this workflow (WF1 … WF8)"),
    query_param("created_after", {"type": "string"}, "created on or after this date or RFC 3339 time"),
    query_param("created_before", {"type": "string"}, "created before this date or RFC 3339 time")]


def _filters() -> dict:
    """The search as list_cases takes it; a field left empty in the form searches nothing."""
    filters: dict = {name: request.args.get(name) or None for name in TEXT_FILTERS}
    filters["status"] = enum_param("status", STATUSES) if request.args.get("status") else None
    filters["created_after"] = time_param("created_after")
    filters["created_before"] = time_param("created_before")
    return filters


@bp.get("/cases")
@page_operation("Search the cases by business key, call number, definition, status, workflow and period, a "
                "page at a time; each links to its case", roles="any authenticated user", errors=(422,),
                query=SEARCH)
@requires()
def cases() -> Response:
    cursor, limit = paging()
    filters = _filters()
    items, next_cursor = engine().list_cases(filters, cursor, limit)
    rows = [{**case, "call": call_record(case["data"])} for case in items]
    keys = [definition["key"] for definition in engine().list_definitions()]
    return render_page("pages/cases.html", rows=rows, next=page_link(next_cursor) if next_cursor else None,
                       first=page_link(None) if cursor else None, form=request.args, definitions=keys,
                       statuses=STATUSES, searched=any(value for value in filters.values()))


@bp.get("/cases/<case_id>")
@page_operation("A case: its status, call record, data, parent and child cases, incident, ready tasks and (for "
                "auditors) its trail, with a link to its diagram", roles="any authenticated user; the trail: "
                "auditor, system", errors=(404,))
@requires()
def case(case_id: str) -> Response:
    found = engine().get_case(case_id)
    parent = engine().get_case(found["parent_case"]) if found["parent_case"] else None
    children = [engine().get_case(child) for child in found.get("child_cases", [])]
    reader = g.principal.has(*READERS)  # the trail and the diagram are the auditors' (api/routes/audit.py)
    return render_page("pages/case.html", case=found, call=call_record(found["data"]),
                       data=as_json_text(found["data"]), parent=_link(parent),
                       children=[_link(child) for child in children],
                       trail=engine().trail(case_id, {}) if reader else None,
                       diagram=url_for("diagram.case_diagram", case_id=case_id) if reader else None)


def _link(case: dict | None) -> dict | None:
    """What a link to another case shows: its definition, status and what people call it."""
    if case is None:
        return None
    call = call_record(case["data"])
    return {"id": case["id"], "definition": case["definition"], "status": case["status"],
            "label": (call or {}).get("number") or case["business_key"] or case["id"]}
