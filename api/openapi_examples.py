"""An example of every request and response body in the OpenAPI document, beside the schemas they illustrate
(api/schemas.py). Swagger UI at /api/v1/docs shows them, and fills "Try it out" with the request examples.

They tell one story, the approval process of the README's walkthrough (tests/fixtures/approval.bpmn), so ids,
keys and times agree from one operation to the next, and the texts of the problems are the server's own.
tests/api/test_openapi_examples.py checks that every operation has them and validates each against the schema
it illustrates: an example that drifts from its schema fails there.
"""
from __future__ import annotations

import copy
from typing import Any

CASE_ID = "d5744950-5769-4b81-a7aa-b455243d535a"
SUBMIT_TASK = "28a16fdf-964f-407f-afaa-ee2d782ae1ec"
DECIDE_TASK = "4d174056-d313-48b7-a35a-a4489fb8fe0d"
MISSING_ID = "00000000-0000-4000-8000-000000000000"
DEFINITION_HASH = "cb8379ac2098aa165029e3938a51da0bcecfc008fd6795f401178647f96c5b34"
FIRST_HASH = "0" * 64
EVENT_HASHES = ("8b5cc4df7eec7d32a7814eca4af047ae33b2d52342667715682e19c25b0b9faa",
                "ac0f09c0f8bf5e7a4b063d863255f16d8ce9abe600e288d934cf313bcbff63eb")
DEPLOYED, STARTED, SUBMITTED = "2026-11-27T20:10:00Z", "2026-11-27T20:15:00Z", "2026-11-27T20:17:42Z"

SUBMIT_FORM = {"title": "Submit request", "type": "object",
               "properties": {"item": {"type": "string", "minLength": 1, "description": "What you need"},
                              "quantity": {"type": "integer", "minimum": 1, "maximum": 100}},
               "required": ["item", "quantity"], "additionalProperties": False}
DECIDE_FORM = {"title": "Decide", "type": "object",
               "properties": {"approved": {"type": "boolean", "description": "Approve the request?"},
                              "comment": {"type": "string"}},
               "required": ["approved"], "additionalProperties": False}

DEFINITION = {"key": "approval", "name": "Approval", "version": 1, "hash": DEFINITION_HASH,
              "deployed_at": DEPLOYED, "deployed_by": "designer"}
# A model brought from another team: its data store documents where data lives, and deploys as a warning.
WARNING = {"file": "approval.bpmn", "line": 12, "element_id": "DataStore_Crm",
           "message": "data store 'CRM' (DataStore_Crm) is kept as documentation only: this engine keeps no data in "
                      "data stores; its 1 data association is ignored, and the process runs without it"}
LINKS = {"startable": True, "start": {"plain": True, "messages": []}, "calls": [], "called_by": [], "starts": []}

SUBMIT_SUMMARY = {"id": SUBMIT_TASK, "element_id": "Activity_Submit", "name": "Submit request",
                  "lane": "Requester", "state": "ready", "created_at": STARTED}
DECIDE_SUMMARY = {"id": DECIDE_TASK, "element_id": "Activity_Decide", "name": "Decide",
                  "lane": "Service manager", "state": "ready", "created_at": SUBMITTED}
STARTED_CASE = {"id": CASE_ID, "definition": "approval", "version": 1, "business_key": "REQ-1",
                "status": "running", "workflow": None, "created_at": STARTED, "updated_at": STARTED, "data": {},
                "tasks": [SUBMIT_SUMMARY], "waiting_for": [], "parent_case": None, "child_cases": [],
                "etag": '"v1"'}
CASE = {**STARTED_CASE, "updated_at": SUBMITTED, "data": {"item": "laptop", "quantity": 1},
        "tasks": [DECIDE_SUMMARY], "etag": '"v2"'}
CANCELLED_CASE = {**CASE, "status": "cancelled", "tasks": [], "etag": '"v3"'}
SUSPENDED_CASE = {**CASE, "status": "suspended", "etag": '"v3"'}
RESUMED_CASE = {**CASE, "etag": '"v4"'}

TASK = {**DECIDE_SUMMARY, "case_id": CASE_ID, "definition": "approval", "ended_at": None, "completed_by": None,
        "topic": None, "locked_by": None, "locked_until": None, "form": DECIDE_FORM,
        "documentation": "Approve or reject the request."}
LOCKED_TASK = {**TASK, "id": "aee90fd3-a832-441a-9977-c2ea4d6d61b0", "element_id": "Activity_Lookup",
               "name": "Look up the asset", "lane": None, "topic": "cmdb", "locked_by": "w1",
               "locked_until": "2026-11-27T20:22:42Z", "form": {}, "documentation": None,
               "data": {"item": "laptop", "quantity": 1}, "business_key": "REQ-1"}

EVENT = {"seq": 4, "at": SUBMITTED, "case_id": CASE_ID, "type": "task_completed", "actor": "alice",
         "element_id": "Activity_Submit", "element_name": "Submit request", "lane": "Requester",
         "element_definition": "approval", "definition": "approval", "version": 1,
         "definition_hash": DEFINITION_HASH, "data_changes": {"item": [None, "laptop"], "quantity": [None, 1]},
         "details": {"task_id": SUBMIT_TASK}, "prev_hash": EVENT_HASHES[0], "hash": EVENT_HASHES[1]}
FIRST_EVENT = {"seq": 1, "at": STARTED, "case_id": CASE_ID, "type": "case_started", "actor": "system",
               "element_id": None, "element_name": None, "lane": None, "definition": "approval", "version": 1,
               "definition_hash": DEFINITION_HASH, "data_changes": {}, "details": {"business_key": "REQ-1"},
               "prev_hash": FIRST_HASH, "hash": EVENT_HASHES[0]}

REQUIREMENT = {"ref": "compliance:8.1", "standard": "ISO/IEC 20000-1:2018", "id": "8.1",
               "title": "Operational planning and control: approvals are decided and recorded",
               "note": "The manager's decision and its record.",
               "activities": [{"definition": "approval", "element_id": "Activity_Decide", "name": "Decide",
                               "lane": "Service manager"}]}

MIGRATED = {"case_id": CASE_ID, "definition": "approval", "from_version": 1, "to_version": 2, "status": "running",
            "dry_run": False, "result": "migrated", "mapping": {}, "missing": [], "reasons": [],
            "case": {**CASE, "version": 2, "etag": '"v3"'}}
REFUSED = {**{name: value for name, value in MIGRATED.items() if name != "case"},  # nothing moved: no case
           "case_id": "aee90fd3-a832-441a-9977-c2ea4d6d61b0", "result": "refused",
           "missing": [{"element_id": "Activity_Decide", "element_name": "Decide", "state": "ready",
                        "message": "'Decide' (Activity_Decide) is ready in this case, and version 2 has no element "
                                   "with this id: map it to one"}],
           "reasons": ["version 2 of 'approval' has no counterpart for where this case stands: 'Decide' "
                       "(Activity_Decide); give a mapping"]}

INDEX = {"name": "usm-engine", "description": "A workflow engine for USM (Unified Service Management): it runs "
         "service-management workflows written as BPMN 2.0 behind this HTTP API.", "api_version": "1.0.0",
         "links": {
             "docs": {"href": "/api/v1/docs", "type": "text/html", "title": "API reference", "needs_token": False},
             "openapi": {"href": "/api/v1/openapi.json", "type": "application/json",
                         "title": "The OpenAPI 3.1 document", "needs_token": False},
             "health": {"href": "/healthz", "type": "application/json",
                        "title": "Liveness and database reachability", "needs_token": False},
             "case_diagram": {"href": "/api/v1/cases/{case_id}/diagram", "type": "text/html",
                              "title": "A case drawn on its diagram", "needs_token": True, "templated": True}}}

# Success bodies by the component schema the document names for them.
SCHEMA_EXAMPLES = {
    "Case": CASE, "CasePage": {"items": [CASE], "next": None}, "Task": TASK,
    "TaskPage": {"items": [TASK], "next": "eyJrIjoiNGQxNzQwNTYifQ"},
    "DefinitionList": {"items": [{**DEFINITION, **LINKS}]},
    "DefinitionDetail": {**DEFINITION, **LINKS, "versions": [DEFINITION], "lanes": ["Requester", "Service manager"],
                         "user_tasks": [{"element_id": "Activity_Submit", "name": "Submit request",
                                         "lane": "Requester", "documentation": "Describe what you need and how many.",
                                         "form": SUBMIT_FORM}],
                         "start_inputs": {"type": "object", "properties": {"urgent": {"type": "boolean"}},
                                          "required": ["urgent"]}},
    "Deployment": {"items": [{**DEFINITION, "created": True, "warnings": []}]},
    "Validation": {"valid": True, "warnings": [WARNING]},
    "Health": {"status": "ok", "database": "ok"}, "Index": INDEX,
    "LockedTasks": {"items": [LOCKED_TASK]}, "Trail": {"items": [FIRST_EVENT, EVENT]},
    "Verification": {"ok": True, "cases": 1, "events": 6, "next": None},
    "ComplianceList": {"items": [REQUIREMENT]},
    "Migration": MIGRATED,
    "MigrationBatch": {"dry_run": False, "items": [MIGRATED, REFUSED], "next": None, "migrated": 1, "refused": 1},
    "RequirementCases": {"requirement": REQUIREMENT, "next": None, "items": [{
        "case_id": CASE_ID, "definition": "approval", "version": 1, "business_key": "REQ-1", "status": "completed",
        "created_at": STARTED, "executed": ["Activity_Decide"], "trail": f"/api/v1/cases/{CASE_ID}/trail",
        "diagram": f"/api/v1/cases/{CASE_ID}/diagram"}]},
}

# Service-level insight (api/routes/insight.py) of a week of USM calls, as JSON and as CSV.
_WEEK = {"from": "2026-11-20T00:00:00Z", "to": "2026-11-27T00:00:00Z", "workflow": None, "priority": None}
_LEVEL = {"workflow": "WF4", "priority": "P1", "resolved": 12, "met": 10, "breached": 2, "without_target": 0,
          "p50_seconds": 9000, "p90_seconds": 16200, "open": 3, "escalations": 2, "reclassifications": 1}
_STEP = {"process": "usm-recover", "element_id": "Activity_Analyze", "name": "Analyze", "lane": "Solution team",
         "completed": 14, "p50_seconds": 2700, "p90_seconds": 7200}
_LANE = {"lane": "Solution team", "lane_role": "solution-team", "tasks": 5, "open_calls": 4,
         "oldest_since": "2026-11-25T09:30:00Z", "oldest_age_seconds": 138600}
SCHEMA_EXAMPLES.update({"ServiceLevels": {**_WEEK, "by": "workflow-priority", "items": [_LEVEL]},
                        "StepTimes": {**_WEEK, "items": [_STEP]}, "Backlog": {**_WEEK, "items": [_LANE]}})
INSIGHT_CSV = {operation: ",".join(row) + "\n" + ",".join(map(str, row.values())) + "\n" for operation, row in (
    ("insight_service_levels", _LEVEL), ("insight_steps", _STEP), ("insight_backlog", _LANE))}
_EMPTY_PERIOD = "the period is empty: from (2026-11-27T00:00:00Z) must be before to (2026-11-20T00:00:00Z)"

BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="Definitions_hello"
                  targetNamespace="http://example.com/hello">
  <bpmn:process id="hello" name="Hello" isExecutable="true">
    <bpmn:startEvent id="StartEvent_1"><bpmn:outgoing>Flow_1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:endEvent id="EndEvent_1"><bpmn:incoming>Flow_1</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="Flow_1" sourceRef="StartEvent_1" targetRef="EndEvent_1" />
  </bpmn:process>
</bpmn:definitions>
"""

# Request bodies by the component schema the document names for them.
REQUEST_EXAMPLES = {
    "StartCase": {"definition": "approval", "business_key": "REQ-1", "data": {}},
    "CompleteTask": {"data": {"approved": True, "comment": "within budget"}},
    "SendMessage": {"name": "approved", "data": {"by": "alice"}},
    "RouteMessage": {"name": "approved", "business_key": "REQ-1", "data": {"by": "alice"}},
    "Retry": {"data": {"quantity": 2}},
    "LockExternalTasks": {"worker": "w1", "topics": ["cmdb"], "max_tasks": 10, "lock_seconds": 300},
    "ExtendLock": {"worker": "w1", "lock_seconds": 600},
    "FailTask": {"worker": "w1", "message": "the CMDB answered 503 three times"},
    # Dry runs, so that "Try it out" with them only reports.
    "MigrateCase": {"to_version": 2, "mapping": {"Activity_Decide": "Activity_Approve"}, "dry_run": True},
    "MigrateCases": {"filter": {"definition": "approval", "version": 1, "status": "running"}, "to_version": 2,
                     "dry_run": True, "limit": 100},
    "SignIn": {"token": "<the token usm token create printed>", "next": f"/api/v1/cases/{CASE_ID}/diagram"},
}
# By media type, for bodies the document describes without a component schema.
MEDIA_REQUEST_EXAMPLES = {"application/xml": BPMN}

METRICS = """# HELP usm_cases_started_total Cases started (directly, by a message or by a hand-off)
# TYPE usm_cases_started_total counter
usm_cases_started_total{definition="approval"} 12.0
# HELP usm_tasks_completed_total Tasks completed
# TYPE usm_tasks_completed_total counter
usm_tasks_completed_total{definition="approval"} 20.0
"""
TRAIL_CSV = ("seq,at,case_id,type,actor,element_id,element_name,lane,definition,version,definition_hash,"
             "data_changes,details,prev_hash,hash,element_definition\n"
             f"1,{STARTED},{CASE_ID},case_started,system,,,,approval,1,{DEFINITION_HASH},{{}},"
             f"\"{{\"\"business_key\"\": \"\"REQ-1\"\"}}\",{FIRST_HASH},{EVENT_HASHES[0]},\n")
DIAGRAM_PAGE = ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
                f"<title>Case {CASE_ID} — approval v1</title>\n…</head><body>…</body></html>\n")
HOME_PAGE = ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>usm-engine</title>\n…"
             "<h1>usm-engine</h1>…</html>\n")
DOCS_PAGE = ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
             "<title>usm-engine API reference</title>\n…<main id=\"swagger-ui\" data-openapi=\"/api/v1/openapi.json\">"
             "…</html>\n")
LOGIN_PAGE = ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
              "<title>Sign in — usm-engine</title>\n…"
              "<form class=\"signin\" method=\"post\" action=\"/login\">…<label for=\"token\">Token</label>…</html>\n")
REFUSED_LOGIN_PAGE = LOGIN_PAGE.replace("<form", "<p class=\"problem\" id=\"problem\" role=\"alert\">That token was "
                                        "not accepted. …</p>\n<form")
CROSS_SITE_LOGIN_PAGE = LOGIN_PAGE.replace("<form", "<p class=\"problem\" id=\"problem\" role=\"alert\">This "
                                           "sign-in form was sent from another site. …</p>\n<form")
DOCUMENT = {"openapi": "3.1.0", "info": {"title": "usm-engine API", "version": "1.0.0"},
            "paths": {"/healthz": {"get": {"summary": "Liveness and database reachability", "responses": {
                "200": {"description": "OK"}}}}}, "components": {"schemas": {}}}
# The static files: one of each text kind (fonts and other binary files have no text to show).
FILE_EXAMPLES = {"text/javascript": "// Draws the definitions a case ran …\n(function () { \"use strict\"; … })();\n",
                 "text/css": "body { font-family: system-ui, sans-serif; margin: 0; }\n",
                 "image/svg+xml": "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 16 16\"></svg>\n",
                 "application/json": "{\"version\": 3, \"sources\": [], \"mappings\": \"\"}"}


def _page(title: str, main: str) -> str:
    """A page for people (api/routes/pages.py), cut short: the layout, the title and what the page says first."""
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
            f"<title>{title} — usm-engine</title>\n…</head><body class=\"page\">…<main id=\"main\" tabindex=\"-1\">\n"
            f"<h1>{main}…</main>\n</body></html>\n")


def _problem_page(title: str, sentence: str) -> str:
    return _page(title, f"{title}</h1>\n<p class=\"problem\" role=\"alert\">{sentence}</p>\n")


# The pages by operationId: their title and the start of their heading.
PAGES = {"case_pages_cases": ("Cases", "Cases</h1>\n<form class=\"search\" method=\"get\" action=\"/cases\" …"),
         "case_pages_case": ("Case REQ-1", "Case REQ-1 <span class=\"status status-running\">running</span></h1>\n"),
         "work_pages_tasks": ("Tasks", "Tasks</h1>\n<p>The ready tasks of your lanes: <code>service-manager</code>.\n"),
         "work_pages_definitions": ("Definitions", "Definitions</h1>\n"),
         "work_pages_definition": ("Approval", "Approval <span class=\"muted\">approval v1</span></h1>\n"),
         "work_pages_compliance": ("Compliance", "Compliance</h1>\n"),
         "work_pages_requirement": ("8.1 Operational planning and control", "<span class=\"ref\">8.1</span> "
                                    "Operational planning and control</h1>\n"),
         "insight_pages_insight": ("Service levels", "Service levels</h1>\n<p class=\"lead\">From <time datetime="
                                   "\"2026-11-20T00:00Z\">2026-11-20 00:00</time> to …")}
FORBIDDEN_PAGE = _problem_page("Forbidden", "This needs one of the roles: auditor, system; your token has: "
                                            "service-manager.")
_LIMIT_PAGE = _problem_page("Unprocessable content", "Limit must be a whole number from 1 to 500.")
PAGE_PROBLEMS = {
    ("case_pages_case", 404): _problem_page("Not found", f"No case with id '{MISSING_ID}'."),
    ("work_pages_definition", 404): _problem_page("Not found", "No definition with key 'aproval' is deployed."),
    ("work_pages_requirement", 404): _problem_page("Not found", "No requirement 'compliance:9.9' in the deployed "
                                                                "compliance cross-reference."),
    ("case_pages_cases", 422): _problem_page("Unprocessable content", "created_after must be an RFC 3339 time "
                                                                      "such as 2026-11-27T20:15:00Z."),
    ("work_pages_tasks", 422): _LIMIT_PAGE, ("work_pages_requirement", 422): _LIMIT_PAGE,
    ("insight_pages_insight", 422): _problem_page("Unprocessable content", "T" + _EMPTY_PERIOD[1:] + "."),
}

# Success bodies particular to one operation and status: (operationId, status) -> {media type: example}.
RESPONSE_EXAMPLES: dict[tuple[str, int], dict] = {
    **{(operation, 200): {"text/html": _page(*page)} for operation, page in PAGES.items()},
    **{(operation, 403): {"text/html": FORBIDDEN_PAGE} for operation in PAGES},
    **{key: {"text/html": page} for key, page in PAGE_PROBLEMS.items()},
    ("cases_start_case", 201): {"application/json": STARTED_CASE},
    ("cases_start_case", 200): {"application/json": STARTED_CASE},
    ("cases_cancel_case", 200): {"application/json": CANCELLED_CASE},
    ("cases_suspend_case", 200): {"application/json": SUSPENDED_CASE},
    ("cases_resume_case", 200): {"application/json": RESUMED_CASE},
    ("messages_route_message", 201): {"application/json": {**STARTED_CASE, "business_key": "REQ-2"}},
    ("definitions_deploy", 200): {"application/json": {"items": [{**DEFINITION, "created": False,
                                                                  "warnings": [WARNING]}]}},
    ("definitions_get_definition_bpmn", 200): {"application/xml": BPMN},
    ("audit_case_trail", 200): {"text/csv": TRAIL_CSV},
    ("diagram_case_diagram", 200): {"text/html": DIAGRAM_PAGE},
    ("meta_home", 200): {"text/html": HOME_PAGE},
    ("meta_api_docs", 200): {"text/html": DOCS_PAGE},
    ("signin_login_page", 200): {"text/html": LOGIN_PAGE},
    ("signin_sign_in", 401): {"text/html": REFUSED_LOGIN_PAGE},
    ("signin_sign_in", 403): {"text/html": CROSS_SITE_LOGIN_PAGE},
    ("signin_sign_out", 403): {"text/html": CROSS_SITE_LOGIN_PAGE},
    ("meta_openapi_document", 200): {"application/json": DOCUMENT},
    ("meta_healthz", 503): {"application/json": {"status": "degraded", "database": "unreachable"}},
    ("metrics_metrics", 200): {"text/plain": METRICS},
    **{(operation, 200): {"text/csv": text} for operation, text in INSIGHT_CSV.items()},
}

ProblemText = tuple[str, list]  # a problem's detail, and its errors (none: [])
TITLES = {400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found", 409: "Conflict",
          412: "Precondition failed", 413: "Payload too large", 415: "Unsupported media type",
          422: "Unprocessable content"}
# What the server says for each status when nothing more particular is written below: (detail, errors).
GENERAL_PROBLEMS: dict[int, ProblemText] = {
    400: ("the request body is not valid JSON: Expecting property name enclosed in double quotes at line 1 "
          "column 2", []),
    401: ("send a valid token as 'Authorization: Bearer <token>'", []),
    403: ("this needs one of the roles: system; your token has: auditor", []),
    404: ("there is no such resource; check the path (the API lives under /api/v1)", []),
    409: ("the case cannot accept this now: it was cancelled", []),
    412: ('the case changed since you read it (it is now "v3"); read it again and retry', []),
    413: ("the request body is larger than the limit of 4194304 bytes", []),
    415: ("send the BPMN document as application/xml, or files as multipart/form-data (got text/plain)", []),
    422: ("the request body is not acceptable: definition: 5 is not of type 'string'",
          [{"field": "definition", "message": "5 is not of type 'string'"}]),
}
_NO_CASE: ProblemText = (f"no case with id '{MISSING_ID}'", [])
_NO_TASK: ProblemText = (f"no task with id '{MISSING_ID}'", [])
_NO_DEFINITION: ProblemText = ("no definition with key 'aproval' is deployed", [])
_BAD_LIMIT: ProblemText = ("limit must be a whole number from 1 to 500", [{"field": "limit", "message": "got '0'"}])
_NOT_BPMN: ProblemText = (
    "the definition is not valid: approval.bpmn:12: Gateway_Approved: a condition is missing on the flow Flow_No",
    [{"file": "approval.bpmn", "line": 12, "element_id": "Gateway_Approved",
      "message": "a condition is missing on the flow Flow_No"}])
_NO_LOCK: ProblemText = (
    "worker 'w1' does not hold the lock on task 'Look up the asset': it is locked by worker 'w2'; lock it again "
    "before completing or failing it (workers lock tasks with POST /api/v1/external-tasks/lock)", [])
# Problems particular to one operation and status: (operationId, status) -> (detail, errors).
PROBLEMS: dict[tuple[str, int], ProblemText] = {
    **{(operation, 404): _NO_CASE for operation in (
        "cases_get_case", "cases_cancel_case", "cases_suspend_case", "cases_resume_case", "cases_retry_case",
        "cases_send_message", "cases_migrate_case", "audit_case_trail", "diagram_case_diagram")},
    **{(operation, 404): _NO_TASK for operation in (
        "tasks_get_task", "tasks_complete_task", "tasks_fail_task", "tasks_extend_lock")},
    **{(operation, 422): _BAD_LIMIT for operation in (
        "cases_list_cases", "tasks_list_tasks", "audit_verify", "audit_requirement_cases")},
    ("cases_start_case", 404): _NO_DEFINITION,
    ("definitions_get_definition", 404): _NO_DEFINITION,
    ("definitions_get_definition_bpmn", 404): ("definition 'approval' has no version 7", []),
    ("cases_migrate_cases", 404): ("definition 'approval' has no version 7", []),
    ("cases_migrate_case", 409): ("version 2 of 'approval' has no counterpart for where this case stands: 'Decide' "
                                  "(Activity_Decide); give a mapping", [REFUSED["missing"][0]]),
    ("audit_requirement_cases", 404): ("no requirement 'compliance:9.9' in the deployed compliance "
                                       "cross-reference", []),
    ("messages_route_message", 404): ("no case waits for message 'approved', and no deployed definition starts "
                                      "on it", []),
    ("messages_route_message", 409): ("2 cases wait for message 'approved'; say which with business_key or "
                                      "correlation", [{"case_id": CASE_ID, "message": "waits for it"}]),
    ("cases_send_message", 409): ("the case waits for no message named 'approved'; it waits for no message", []),
    ("cases_cancel_case", 409): ("the case is already cancelled; only a case that has not finished can be "
                                 "cancelled", []),
    ("cases_suspend_case", 409): ("only a running case or one with an incident can be suspended; this one is "
                                  "completed", []),
    ("cases_resume_case", 409): ("only a suspended case can be resumed; this one is running", []),
    ("cases_retry_case", 409): ("only a case with an incident can be retried; this one is running", []),
    ("tasks_complete_task", 409): ("task 'Decide' is completed, not ready; it cannot be completed again", []),
    ("tasks_complete_task", 422): ("the data does not match the form of task 'Decide': approved: 'yes' is not "
                                   "of type 'boolean'", [{"field": "approved",
                                                          "message": "'yes' is not of type 'boolean'"}]),
    ("tasks_fail_task", 409): _NO_LOCK,
    ("tasks_extend_lock", 409): _NO_LOCK,
    ("definitions_deploy", 409): ("another deployment of the same definition finished first; deploy again to "
                                  "get the next version", []),
    ("definitions_deploy", 422): _NOT_BPMN,
    ("definitions_validate", 422): _NOT_BPMN,
    **{(operation, 422): (_EMPTY_PERIOD, [{"field": "from", "message": "must be before to"}])
       for operation in INSIGHT_CSV},
}


def problem_example(operation_id: str, status: int) -> dict:
    detail, errors = PROBLEMS.get((operation_id, status)) or GENERAL_PROBLEMS[status]
    body: dict = {"type": "about:blank", "title": TITLES[status], "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    return body


def _schema_name(schema: dict) -> str:
    return schema.get("$ref", "").rsplit("/", 1)[-1]


def response_example(operation_id: str, status: int, media_type: str, schema: dict) -> Any:
    """The example for one media type of one response, or None where there is none to give."""
    particular = RESPONSE_EXAMPLES.get((operation_id, status), {})
    if media_type in particular:
        return particular[media_type]
    if media_type == "application/problem+json":
        return problem_example(operation_id, status) if status in TITLES else None
    if _schema_name(schema) in SCHEMA_EXAMPLES:
        return SCHEMA_EXAMPLES[_schema_name(schema)]
    if schema == {"type": "string"}:  # a file of the asset routes; a body with a schema needs its own example
        return FILE_EXAMPLES.get(media_type)
    return None


def request_example(media_type: str, schema: dict) -> Any:
    if _schema_name(schema) in REQUEST_EXAMPLES:
        return REQUEST_EXAMPLES[_schema_name(schema)]
    if media_type == "application/json" and schema.get("type") == "object":
        return {}  # the optional body of cancel, suspend and resume: nothing to say
    return MEDIA_REQUEST_EXAMPLES.get(media_type)


def with_examples(paths: dict) -> dict:
    """A copy of the document's paths with an `example` on every media type that has one to show; the
    copy, because operations share some request bodies (the upload) and each is given its own."""
    paths = copy.deepcopy(paths)
    for item in paths.values():
        for operation in item.values():
            for media_type, media in operation.get("requestBody", {}).get("content", {}).items():
                _set(media, request_example(media_type, media["schema"]))
            for status, response in operation["responses"].items():
                for media_type, media in response.get("content", {}).items():
                    _set(media, response_example(operation["operationId"], int(status), media_type,
                                                 media["schema"]))
    return paths


def _set(media: dict, example: Any) -> None:
    if example is not None:
        # A copy, so this module's constants stay as written whatever later edits the document.
        media["example"] = copy.deepcopy(example)
