"""Service-level insight for USM's service manager (the figures: engine/insight.py): three reports of a period, as
JSON or CSV for a backend or a spreadsheet, and /insight, a page that draws them for people."""
from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from flask import Blueprint, Response, jsonify, request

from usm_engine.engine.clock import rfc3339
from usm_engine.engine.insight import GROUPINGS, Period

from ..contract import operation, query_param
from ..http import engine, enum_param, requires, time_param
from .pages import page_blueprint, page_operation, render_page

bp = Blueprint("insight", __name__, url_prefix="/api/v1/insight")
pages = page_blueprint("insight_pages", __name__)

ROLES = ("auditor", "system", "service-manager")
_WHO = "auditor, system, service-manager (the lane role)"
PERIOD = [query_param("from", {"type": "string", "format": "date-time"}, "the start of the period (default: 30 days "
                      "before `to`)"),
          query_param("to", {"type": "string", "format": "date-time"}, "the end of the period, not included "
                      "(default: now)"),
          query_param("workflow", {"type": "string", "maxLength": 8}, "only the calls of this workflow (WF1 … WF8)"),
          query_param("priority", {"type": "string", "maxLength": 16}, "only the calls of this priority (P1 … P4)")]
_FORMAT = query_param("format", {"enum": ["json", "csv"]}, "csv: the items as CSV, as `Accept: text/csv` asks too "
                                                           "(default: json)")
_BY = query_param("by", {"enum": list(GROUPINGS), "default": "workflow-priority"}, "what a row stands for: a "
                  "workflow and priority, a workflow, a priority, or all calls (total)")
_REPORT = {"response_content": {200: ["application/json", "text/csv"]}, "tag": "insight", "roles": _WHO}
SERVICE_LEVEL_COLUMNS = ["resolved", "met", "breached", "without_target", "p50_seconds", "p90_seconds", "open",
                         "escalations", "reclassifications"]
STEP_COLUMNS = ["process", "element_id", "name", "lane", "completed", "p50_seconds", "p90_seconds"]
BACKLOG_COLUMNS = ["lane", "lane_role", "tasks", "open_calls", "oldest_since", "oldest_age_seconds"]


def chosen_period() -> Period:
    """The period of the query: from, to, workflow and priority (422 with a sentence when one is wrong)."""
    return engine().insight_period(time_param("from"), time_param("to"), request.args.get("workflow") or None,
                                   request.args.get("priority") or None)


def _report(name: str, period: Period, items: list[dict], columns: Sequence[str], **more: str) -> Response:
    """The report as JSON, or its items as CSV when the query or the Accept header asks for it."""
    fmt = enum_param("format", ("json", "csv"))
    if fmt is None:
        fmt = "csv" if request.accept_mimetypes.best_match(["application/json", "text/csv"]) == "text/csv" else "json"
    if fmt == "json":
        return jsonify({"from": rfc3339(period.start), "to": rfc3339(period.end), "workflow": period.workflow,
                        "priority": period.priority, **more, "items": items})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(items)
    response = Response(buffer.getvalue(), mimetype="text/csv")
    stamp = "_".join(moment.strftime("%Y%m%dT%H%M%SZ") for moment in (period.start, period.end))
    response.headers["Content-Disposition"] = f'attachment; filename="{name}_{stamp}.csv"'
    return response


@bp.get("/service-levels")
@operation("Per workflow and priority (or `by` either, or in total): calls resolved in the period, met and breached "
           "against their resolution target, resolution time p50/p90, calls open at its end, escalations and "
           "reclassifications", query=[*PERIOD, _BY, _FORMAT], responses={200: "ServiceLevels", 422: "Problem"},
           **_REPORT)
@requires(*ROLES)
def service_levels() -> Response:
    by = enum_param("by", tuple(GROUPINGS), "workflow-priority") or "workflow-priority"
    period = chosen_period()
    return _report("service-levels", period, engine().service_levels(period, GROUPINGS[by]),
                   [*GROUPINGS[by], *SERVICE_LEVEL_COLUMNS], by=by)


@bp.get("/steps")
@operation("Time per step: the tasks completed in the period by process and element, with how long they were ready "
           "(p50/p90)", query=[*PERIOD, _FORMAT], responses={200: "StepTimes", 422: "Problem"}, **_REPORT)
@requires(*ROLES)
def steps() -> Response:
    period = chosen_period()
    return _report("steps", period, engine().step_times(period), STEP_COLUMNS)


@bp.get("/backlog")
@operation("The backlog per lane at the end of the period: tasks open then, of how many calls, and the oldest",
           query=[*PERIOD, _FORMAT], responses={200: "Backlog", 422: "Problem"}, **_REPORT)
@requires(*ROLES)
def backlog() -> Response:
    period = chosen_period()
    return _report("backlog", period, engine().backlog(period), BACKLOG_COLUMNS)


# --- the page ----------------------------------------------------------------------------------------------------

@pages.get("/insight")
@page_operation("Service levels, time per step and backlog per lane of a period, drawn as charts beside their "
                "tables", roles=_WHO, errors=(422,), query=PERIOD)
@requires(*ROLES)
def insight() -> Response:
    period = chosen_period()
    by_priority = engine().service_levels(period, GROUPINGS["priority"])
    by_workflow = engine().service_levels(period, GROUPINGS["workflow"])
    lanes = engine().backlog(period)
    steps = sorted(engine().step_times(period), key=lambda step: (-step["p90_seconds"], -step["completed"],
                                                                   step["process"], step["element_id"]))
    # the downloads are of the period shown, also when it was "the last 30 days" of when the page was made
    query = {name: value for name, value in (("from", rfc3339(period.start)), ("to", rfc3339(period.end)),
                                             ("workflow", period.workflow), ("priority", period.priority)) if value}
    return render_page(
        "pages/insight.html", period=period, query=query, form=_form_values(period), by_priority=by_priority,
        by_workflow=by_workflow, lanes=lanes, steps=steps,
        priority_chart=bar_chart([(row["priority"] or "unclassified", [("met", row["met"]),
                                                                        ("breached", row["breached"]),
                                                                        ("untargeted", row["without_target"])])
                                  for row in by_priority if row["resolved"]]),
        workflow_chart=bar_chart([(row["workflow"] or "none", [("p50", _hours(row["p50_seconds"])),
                                                               ("p90", _hours(row["p90_seconds"]))])
                                  for row in by_workflow if row["resolved"]], stacked=False, unit=" h"),
        lane_chart=bar_chart([(row["lane"] or "no lane", [("tasks", row["tasks"])]) for row in lanes]))


def _form_values(period: Period) -> dict:
    """The period as the form's datetime-local fields show it (UTC, to the minute)."""
    return {"from": period.start.strftime("%Y-%m-%dT%H:%M"), "to": period.end.strftime("%Y-%m-%dT%H:%M"),
            "workflow": period.workflow or "", "priority": period.priority or ""}


def _hours(seconds: int | None) -> float:
    return round((seconds or 0) / 3600, 1)


# The drawing area of a chart: labels on the left, bars to the right of them, values after the bars.
LABEL_WIDTH, BAR_WIDTH, VALUE_WIDTH, ROW_HEIGHT, BAR_HEIGHT = 150, 220, 70, 30, 18


def bar_chart(rows: list[tuple[str, list[tuple[str, float]]]], stacked: bool = True, unit: str = "") -> dict:
    """Horizontal bars, one row per label, drawn to one scale: its segments end to end (`stacked`) or one under
    the other. What an SVG needs, as numbers; the template writes the elements (no style attribute: the page's
    policy allows only its stylesheet)."""
    largest = max([sum(v for _, v in segments) if stacked else max(v for _, v in segments)
                   for _, segments in rows] + [0]) or 1
    height = BAR_HEIGHT if stacked else max([len(segments) for _, segments in rows] + [1]) * (BAR_HEIGHT + 2) - 2
    drawn, top = [], 8
    for label, segments in rows:
        bars, x = [], LABEL_WIDTH
        for index, (kind, value) in enumerate(segments):
            if stacked and not value:
                continue  # nothing to draw, and nothing a reader would find by hovering
            width = round(value / largest * BAR_WIDTH, 1)
            bars.append({"kind": kind, "x": x, "y": top + (0 if stacked else index * (BAR_HEIGHT + 2)),
                         "width": width, "text_x": x + width + 6, "text": f"{value:g}{unit}"})
            x += width if stacked else 0
        drawn.append({"label": label, "bars": bars, "middle": top + height / 2 + 5, "end": x + 6,
                      "total": f"{sum(v for _, v in segments):g}{unit}"})
        top += height + ROW_HEIGHT - BAR_HEIGHT
    return {"rows": drawn, "stacked": stacked, "width": LABEL_WIDTH + BAR_WIDTH + VALUE_WIDTH, "height": top + 4,
            "label_x": LABEL_WIDTH - 8}
