"""The audit trail: what auditors read. Read-only by construction: no route here writes."""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from typing import TextIO

from flask import Blueprint, Response, jsonify, request, url_for

from ..contract import PAGING, operation, query_param
from ..http import engine, enum_param, paging, requires, time_param

bp = Blueprint("audit", __name__, url_prefix="/api/v1")

READERS = ("auditor", "system")
CSV_COLUMNS = ["seq", "at", "case_id", "type", "actor", "element_id", "element_name", "lane", "definition",
               "version", "definition_hash", "data_changes", "details", "prev_hash", "hash", "element_definition"]


def write_events_csv(events: Iterable[dict], output: TextIO) -> None:
    """Events as CSV, one row each as it comes (`usm audit export` streams any number of them)."""
    writer = csv.DictWriter(output, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for event in events:
        writer.writerow({**event, "data_changes": json.dumps(event["data_changes"], sort_keys=True),
                         "details": json.dumps(event["details"], sort_keys=True)})


@bp.get("/cases/<case_id>/trail")
@operation("A case's audit trail in order, as JSON or CSV", roles="auditor, system", tag="audit",
           responses={200: "Trail", 404: "Problem", 422: "Problem"},
           response_content={200: ["application/json", "text/csv"]},
           query=[query_param("format", {"enum": ["json", "csv"], "default": "json"}, "json or csv"),
                  query_param("actor", {"type": "string"}, "only events by this actor"),
                  query_param("element", {"type": "string"}, "only events of this element id"),
                  query_param("type", {"type": "string"}, "only events of this type"),
                  query_param("since", {"type": "string", "format": "date-time"}, "at or after"),
                  query_param("until", {"type": "string", "format": "date-time"}, "before")])
@requires(*READERS)
def case_trail(case_id):
    fmt = enum_param("format", ("json", "csv"), "json")
    filters = {"actor": request.args.get("actor"), "element": request.args.get("element"),
               "type": request.args.get("type"), "since": time_param("since"), "until": time_param("until")}
    events = engine().trail(case_id, filters)
    if fmt == "csv":
        buffer = io.StringIO()
        write_events_csv(events, buffer)
        response = Response(buffer.getvalue(), mimetype="text/csv")
        response.headers["Content-Disposition"] = f'attachment; filename="trail-{case_id}.csv"'
        return response
    return jsonify({"items": events})


@bp.get("/audit/verify")
@operation("Recompute the hash chains of a page of cases (and, on the first page, the deployments' chain); "
           "report the first broken link; follow `next` to verify them all", roles="auditor, system", tag="audit",
           responses={200: "Verification", 422: "Problem"}, query=PAGING)
@requires(*READERS)
def verify():
    cursor, limit = paging()
    return jsonify(engine().verify_trails(cursor, limit))


@bp.get("/compliance")
@operation("Requirements (ISO/IEC 20000-1 clauses, ISO/IEC 27001 controls) with the activities that evidence them",
           roles="auditor, system", tag="audit", responses={200: "ComplianceList"})
@requires(*READERS)
def compliance():
    return jsonify({"items": engine().list_compliance()})


@bp.get("/compliance/<path:requirement>/cases")
@operation("The cases that executed a requirement's activities, with links to their trails",
           roles="auditor, system", tag="audit", responses={200: "RequirementCases", 404: "Problem", 422: "Problem"},
           query=PAGING)
@requires(*READERS)
def requirement_cases(requirement):
    cursor, limit = paging()
    found, items, next_cursor = engine().requirement_cases(requirement, cursor, limit)
    items = [{**item, "trail": url_for("audit.case_trail", case_id=item["case_id"]),
              "diagram": url_for("diagram.case_diagram", case_id=item["case_id"])} for item in items]
    return jsonify({"requirement": found, "items": items, "next": next_cursor})
