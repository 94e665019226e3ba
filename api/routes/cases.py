"""Cases: started by backend systems, read by everyone with a token."""
from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, Response, g, jsonify, request

from usm_engine.engine.case_migration import Migration, Selection

from ..contract import PAGING, operation, query_param
from ..http import engine, enum_param, json_body, page_limit, paging, requires, time_param
from ..problems import ApiProblem
from ..schemas import EMPTY, MIGRATE_CASE, MIGRATE_CASES, RETRY, ROUTE_MESSAGE, SEND_MESSAGE, START_CASE

bp = Blueprint("cases", __name__, url_prefix="/api/v1/cases")

STATUSES = ("running", "completed", "cancelled", "error", "suspended")
_IF_MATCH = "If-Match"


def case_response(case: dict, status: int = 200) -> Response:
    response = jsonify(case)
    response.status_code = status
    response.headers["ETag"] = case["etag"]
    return response


def idempotency_key() -> str | None:
    """The Idempotency-Key header, checked: it is stored, in a column of 255 characters."""
    key = request.headers.get("Idempotency-Key") or None
    if key is not None and len(key) > 255:
        raise ApiProblem(422, "Unprocessable content", "the Idempotency-Key header is longer than 255 characters; "
                                                       "use a shorter key such as a UUID",
                         [{"field": "Idempotency-Key", "message": f"{len(key)} characters, at most 255"}])
    if key is not None and "\0" in key:  # the key reaches SQL; PostgreSQL refuses NUL
        raise ApiProblem(422, "Unprocessable content", "the Idempotency-Key header contains a NUL character; "
                                                       "use a key such as a UUID",
                         [{"field": "Idempotency-Key", "message": "must not contain the NUL character"}])
    return key


@bp.post("")
@operation("Start a case; repeat-safe with an Idempotency-Key header", roles="system", request="StartCase",
           responses={200: "Case", 201: "Case", 404: "Problem", 422: "Problem"}, tag="cases")
@requires("system")
def start_case() -> Response:
    body = json_body(START_CASE)
    case, created = engine().start_case(
        body["definition"], g.principal.user, version=body.get("version"), business_key=body.get("business_key"),
        data=body.get("data") or {}, idempotency_key=idempotency_key())
    return case_response(case, 201 if created else 200)


@bp.get("")
@operation("Cases, oldest first, filtered and paged", roles="any authenticated user", responses={200: "CasePage",
           422: "Problem"}, tag="cases", query=PAGING + [
    query_param("status", {"enum": list(STATUSES)}, "only cases in this status"),
    query_param("definition", {"type": "string"}, "only cases of this definition key"),
    query_param("business_key", {"type": "string"}, "only cases with this business key"),
    query_param("call_number", {"type": "string"}, "only cases whose call record has this number (INC-000042)"),
    query_param("workflow", {"type": "string"}, "only cases following this USM workflow (WF1 … WF8)"),
    query_param("created_after", {"type": "string", "format": "date-time"}, "created at or after"),
    query_param("created_before", {"type": "string", "format": "date-time"}, "created before")])
@requires()
def list_cases() -> Response:
    cursor, limit = paging()
    filters = {"status": enum_param("status", STATUSES), "definition": request.args.get("definition"),
               "business_key": request.args.get("business_key"), "call_number": request.args.get("call_number"),
               "workflow": request.args.get("workflow"),
               "created_after": time_param("created_after"), "created_before": time_param("created_before")}
    items, next_cursor = engine().list_cases(filters, cursor, limit)
    return jsonify({"items": items, "next": next_cursor})


@bp.get("/<case_id>")
@operation("A case with its ready tasks", roles="any authenticated user", responses={200: "Case", 404: "Problem"},
           tag="cases")
@requires()
def get_case(case_id: str) -> Response:
    return case_response(engine().get_case(case_id))


@bp.post("/<case_id>/messages")
@operation("Deliver a BPMN message to this case", roles="system", request="SendMessage",
           responses={200: "Case", 404: "Problem", 409: "Problem", 412: "Problem", 422: "Problem"}, tag="cases")
@requires("system")
def send_message(case_id: str) -> Response:
    body = json_body(SEND_MESSAGE)
    case = engine().send_message(case_id, body["name"], body.get("data") or {}, g.principal.user,
                                 request.headers.get(_IF_MATCH))
    return case_response(case)


def _bodiless_command(command: Callable[[str, str, str | None], dict], case_id: str) -> Response:
    """Cancel, suspend, resume: no body needed, but a body that is sent must be an empty object."""
    if request.get_data(cache=True).strip():
        json_body(EMPTY)
    return case_response(command(case_id, g.principal.user, request.headers.get(_IF_MATCH)))


@bp.post("/<case_id>/cancel")
@operation("Cancel a case that has not finished", roles="system", request="optional-empty",
           responses={200: "Case", 404: "Problem", 409: "Problem", 412: "Problem", 422: "Problem"}, tag="cases")
@requires("system")
def cancel_case(case_id: str) -> Response:
    return _bodiless_command(engine().cancel_case, case_id)


@bp.post("/<case_id>/suspend")
@operation("Suspend a case: completions, messages and timers wait until it is resumed", roles="system",
           request="optional-empty", responses={200: "Case", 404: "Problem", 409: "Problem", 412: "Problem",
                                                422: "Problem"}, tag="cases")
@requires("system")
def suspend_case(case_id: str) -> Response:
    return _bodiless_command(engine().suspend_case, case_id)


@bp.post("/<case_id>/resume")
@operation("Resume a suspended case", roles="system", request="optional-empty",
           responses={200: "Case", 404: "Problem", 409: "Problem", 412: "Problem", 422: "Problem"}, tag="cases")
@requires("system")
def resume_case(case_id: str) -> Response:
    return _bodiless_command(engine().resume_case, case_id)


@bp.post("/<case_id>/retry")
@operation("After an incident: merge optional data into the failed step and run it again", roles="system",
           request="optional-retry", responses={200: "Case", 404: "Problem", 409: "Problem", 412: "Problem",
                                                413: "Problem", 422: "Problem"}, tag="cases")
@requires("system")
def retry_case(case_id: str) -> Response:
    body = json_body(RETRY) if request.get_data(cache=True).strip() else {}
    return case_response(engine().retry_case(case_id, g.principal.user, body.get("data") or {},
                                             request.headers.get(_IF_MATCH)))


def _migration(body: dict) -> Migration:
    return Migration(body["to_version"], body.get("mapping") or {}, bool(body.get("dry_run", False)))


@bp.post("/<case_id>/migrate")
@operation("Move a case that has not finished to another version of its definition (dry_run: only report; "
           "a refusal names the steps that need a mapping)", roles="system", request="MigrateCase", tag="cases",
           query=[{"name": _IF_MATCH, "in": "header", "required": False, "schema": {"type": "string"},
                   "description": "the case's etag as read; 412 when it changed since"}],
           responses={200: "Migration", 404: "Problem", 409: "Problem", 412: "Problem", 422: "Problem"})
@requires("system")
def migrate_case(case_id: str) -> Response:
    body = json_body(MIGRATE_CASE)
    report = engine().migrate_cases(case_id, _migration(body), g.principal.user,
                                    if_match=request.headers.get(_IF_MATCH))
    response = jsonify(report)
    if "case" in report:
        response.headers["ETag"] = report["case"]["etag"]
    return response


@bp.post("/migrate")
@operation("Move the unfinished cases a filter selects to another version of their definition, a page at a "
           "time; each case is migrated or refused with reasons (dry_run: only report)", roles="system",
           request="MigrateCases", responses={200: "MigrationBatch", 404: "Problem", 422: "Problem"}, tag="cases")
@requires("system")
def migrate_cases() -> Response:
    body = json_body(MIGRATE_CASES)
    limit = page_limit(body.get("limit", 100), body.get("limit", 100))
    chosen = body["filter"]
    if any(isinstance(value, str) and "\0" in value for value in chosen.values()):  # they reach SQL
        raise ApiProblem(422, "Unprocessable content", "the filter contains a NUL character (\\u0000); remove it",
                         [{"field": "filter", "message": "must not contain the NUL character"}])
    selection = Selection(chosen["definition"], chosen.get("version"), chosen.get("status"), chosen.get("waiting_at"))
    return jsonify(engine().migrate_cases(selection, _migration(body), g.principal.user, cursor=body.get("cursor"),
                                          limit=limit))


messages_bp = Blueprint("messages", __name__, url_prefix="/api/v1/messages")


@messages_bp.post("")
@operation("Deliver a message to the one case waiting for it, or start a case on a message start event; "
           "repeat-safe with an Idempotency-Key header", roles="system", request="RouteMessage", tag="cases",
           responses={200: "Case", 201: "Case", 404: "Problem", 409: "Problem", 422: "Problem"})
@requires("system")
def route_message() -> Response:
    body = json_body(ROUTE_MESSAGE)
    case, started = engine().route_message(body["name"], g.principal.user, body.get("business_key"),
                                           body.get("correlation"), body.get("data") or {}, idempotency_key())
    return case_response(case, 201 if started else 200)
