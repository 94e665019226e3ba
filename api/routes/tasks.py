"""Tasks: the work people and systems do."""
from __future__ import annotations

from flask import Blueprint, Response, g, jsonify, request

from ..auth import SEES_ALL_TASKS
from ..contract import PAGING, operation, query_param
from ..http import engine, enum_param, json_body, paging, requires
from ..problems import ApiProblem
from ..schemas import COMPLETE_TASK, EXTEND_LOCK, FAIL_TASK, LOCK_EXTERNAL_TASKS
from .cases import case_response

bp = Blueprint("tasks", __name__, url_prefix="/api/v1/tasks")

STATES = ("ready", "completed", "cancelled", "any")


def visible_lane_roles() -> set[str] | None:
    """None = every task; otherwise only tasks of these lane roles."""
    principal = g.principal
    return None if principal.has(*SEES_ALL_TASKS) else set(principal.lane_roles)


@bp.get("")
@operation("Tasks, oldest first; a lane holder sees the tasks of its lanes", roles="any authenticated user",
           responses={200: "TaskPage", 422: "Problem"}, tag="tasks", query=PAGING + [
    query_param("case", {"type": "string"}, "only tasks of this case"),
    query_param("lane", {"type": "string"}, "only tasks of this lane (its name)"),
    query_param("state", {"enum": list(STATES), "default": "ready"}, "task state; 'any' for all"),
    query_param("definition", {"type": "string"}, "only tasks of cases of this definition key"),
    query_param("topic", {"type": "string"}, "only external service tasks on this topic")])
@requires()
def list_tasks() -> Response:
    cursor, limit = paging()
    filters = {"state": enum_param("state", STATES, "ready"), "case": request.args.get("case"),
               "lane": request.args.get("lane"), "definition": request.args.get("definition"),
               "topic": request.args.get("topic")}
    items, next_cursor = engine().list_tasks(filters, visible_lane_roles(), cursor, limit)
    return jsonify({"items": items, "next": next_cursor})


@bp.get("/<task_id>")
@operation("A task with its form (JSON Schema) and documentation", roles="any authenticated user "
           "(lane holders: tasks of their lanes)", responses={200: "Task", 403: "Problem", 404: "Problem"}, tag="tasks")
@requires()
def get_task(task_id: str) -> Response:
    task = engine().get_task(task_id)
    lanes = visible_lane_roles()
    if lanes is not None and not g.principal.may_complete(task["lane"]):
        raise ApiProblem(403, "Forbidden",
                         f"this task belongs to lane '{task['lane']}', which your token does not hold")
    return jsonify(task)


@bp.post("/<task_id>/complete")
@operation("Complete a ready task with data that satisfies its form", roles="system, or the task's lane role",
           request="CompleteTask", responses={200: "Case", 403: "Problem", 404: "Problem", 409: "Problem",
                                              412: "Problem", 413: "Problem", 422: "Problem"}, tag="tasks")
@requires()
def complete_task(task_id: str) -> Response:
    body = json_body(COMPLETE_TASK)
    principal = g.principal
    case = engine().complete_task(task_id, body.get("data") or {}, principal.user, principal.may_complete,
                                  request.headers.get("If-Match"), worker=body.get("worker"))
    return case_response(case)


@bp.post("/<task_id>/fail")
@operation("An external task's worker reports that it could not do the job: the case gets an incident "
           "(retry it to hand the task out again)", roles="system", request="FailTask",
           responses={200: "Case", 403: "Problem", 404: "Problem", 409: "Problem", 413: "Problem", 422: "Problem"},
           tag="tasks")
@requires("system")
def fail_task(task_id: str) -> Response:
    body = json_body(FAIL_TASK)
    principal = g.principal
    case = engine().fail_external_task(task_id, body["worker"], body["message"], principal.user, principal.may_complete)
    return case_response(case)


@bp.post("/<task_id>/extend-lock")
@operation("An external task's worker keeps its lock for a long job: the lock now ends lock_seconds from now",
           roles="system", request="ExtendLock", responses={200: "Task", 403: "Problem", 404: "Problem",
                                                            409: "Problem", 413: "Problem", 422: "Problem"},
           tag="tasks")
@requires("system")
def extend_lock(task_id: str) -> Response:
    body = json_body(EXTEND_LOCK)
    return jsonify(engine().extend_external_lock(task_id, body["worker"], body["lock_seconds"],
                                                 g.principal.may_complete))


external_bp = Blueprint("external_tasks", __name__, url_prefix="/api/v1/external-tasks")


@external_bp.post("/lock")
@operation("Fetch and lock ready external service tasks (camunda:type=\"external\") on some topics, oldest "
           "first, each with its case data; complete them with the same 'worker'", roles="system",
           request="LockExternalTasks", responses={200: "LockedTasks", 413: "Problem", 422: "Problem"}, tag="tasks")
@requires("system")
def lock_external_tasks() -> Response:
    body = json_body(LOCK_EXTERNAL_TASKS)
    items = engine().lock_external_tasks(body["worker"], body["topics"], body.get("max_tasks", 1),
                                         body.get("lock_seconds", 300))
    return jsonify({"items": items})
