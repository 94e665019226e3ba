"""Every error leaves as application/problem+json (RFC 9457) with a sentence a person can act on."""
from __future__ import annotations

import logging

from flask import Flask, Response, json
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from usm_engine.engine import errors

log = logging.getLogger("usm.api")

_STATUS_BY_ERROR = [
    (errors.NotFound, 404, "Not found"),
    (errors.NotAllowed, 403, "Forbidden"),
    (errors.PreconditionFailed, 412, "Precondition failed"),
    (errors.Conflict, 409, "Conflict"),
    (errors.TooLarge, 413, "Payload too large"),
    (errors.InvalidInput, 422, "Unprocessable content"),
]

# How to do what an engine error says to do next: the engine names the step, the API the route.
_HOW_TO = {
    errors.NextStep.LOCK_EXTERNAL_TASKS: "workers lock tasks with POST /api/v1/external-tasks/lock",
}


class ApiProblem(Exception):
    """Raised by routes for problems found before the engine is involved (auth, parsing, shape)."""

    def __init__(self, status: int, title: str, detail: str, errors_list: list | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail
        self.errors = errors_list or []
        self.headers = headers or {}


def problem(status: int, title: str, detail: str, errors_list: list | None = None,
            headers: dict[str, str] | None = None) -> Response:
    body: dict[str, object] = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    if errors_list:
        body["errors"] = errors_list
    response = Response(json.dumps(body), status=status, mimetype="application/problem+json")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def engine_detail(exc: errors.EngineError) -> str:
    """The engine's sentence and, when it says what to do next, the call that does it."""
    if exc.next_step is None:
        return exc.detail
    return f"{exc.detail} ({_HOW_TO[exc.next_step]})"


def install(app: Flask) -> None:
    @app.errorhandler(ApiProblem)
    def _api_problem(exc: ApiProblem) -> Response:
        return problem(exc.status, exc.title, exc.detail, exc.errors, exc.headers)

    @app.errorhandler(errors.EngineError)
    def _engine_error(exc: errors.EngineError) -> Response:
        for kind, status, title in _STATUS_BY_ERROR:
            if isinstance(exc, kind):
                return problem(status, title, engine_detail(exc), exc.errors)
        log.error("unmapped engine error", exc_info=exc)
        return problem(500, "Internal server error", "the server failed; this is a bug and has been logged")

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(exc: RequestEntityTooLarge) -> Response:
        limit = app.config.get("MAX_CONTENT_LENGTH")
        return problem(413, "Payload too large", f"the request body is larger than the limit of {limit} bytes")

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        status = exc.code or 500
        methods: list[str] = getattr(exc, "valid_methods", None) or []  # only a 405 names them
        allowed = sorted(set(methods) - {"HEAD", "OPTIONS"})
        detail = {404: "there is no such resource; check the path (the API lives under /api/v1)",
                  405: "this method is not allowed here" + (f"; use {', '.join(allowed)}" if allowed else "")
                  }.get(status, exc.description or exc.name)
        response = problem(status, exc.name, detail)
        if status == 405 and methods:
            response.headers["Allow"] = ", ".join(methods)
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.error("unhandled error on a request", exc_info=exc)
        return problem(500, "Internal server error", "the server failed; this is a bug and has been logged")
