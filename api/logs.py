"""Logs as JSON lines, one per request and one per problem, each with the request id, the case id and the
actor where there is one; never a token, never case data.

A request id comes from the client's X-Request-Id header (when it is a plain token of at most 64
characters) or is made here, and is sent back in the response's X-Request-Id."""
from __future__ import annotations

import logging
import re
import secrets
import time
from contextvars import ContextVar

from flask import g, request
from pythonjsonlogger.orjson import OrjsonFormatter

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
_ACCEPTABLE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
log = logging.getLogger("usm.requests")


class _Context(logging.Filter):
    """Adds the request's id, case and actor to every record logged while it is served."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        if not hasattr(record, "case_id"):
            record.case_id = _request_value(lambda: (request.view_args or {}).get("case_id"))
        if not hasattr(record, "actor"):
            record.actor = _request_value(lambda: getattr(g.get("principal"), "user", None))
        return True


def _request_value(read):
    try:
        return read()
    except RuntimeError:  # outside a request (the timer worker, start-up)
        return None


class _Formatter(OrjsonFormatter):
    """orjson's formatter, with the time of day written once a second rather than on every line (strftime was half
    of what formatting a request's line cost). Its text is the standard library's: "2026-12-07 05:27:28,123"."""

    _second: tuple[int, str] = (-1, "")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        second, text = self._second
        if second != int(record.created):
            second = int(record.created)
            text = time.strftime(self.default_time_format, self.converter(second))
            self._second = (second, text)  # one assignment: threads read a consistent pair
        return self.default_msec_format % (text, record.msecs)


def configure(level: int = logging.INFO) -> None:
    """JSON lines on stderr for the whole process (the server and `usm worker`)."""
    handler = logging.StreamHandler()
    # orjson's formatter: the same fields as the standard library's, written in a fraction of the time (one line
    # per request is on every request's path); characters beyond ASCII as UTF-8 rather than escaped.
    handler.setFormatter(_Formatter("%(asctime)s %(levelname)s %(name)s %(message)s",
                                    rename_fields={"asctime": "time", "levelname": "level", "name": "logger"}))
    handler.addFilter(_Context())
    # A record would otherwise walk up the stack for its caller's file, line and function, which no line here
    # shows (the logging HOWTO's "Optimization" names this switch). Thread and process stay: gunicorn's own
    # lines print the process id.
    logging._srcfile = None  # type: ignore[attr-defined]
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def install(app) -> None:
    @app.before_request
    def _begin():
        given = request.headers.get("X-Request-Id", "")
        g.request_id = given if _ACCEPTABLE_ID.fullmatch(given) else secrets.token_hex(16)  # as a uuid4's hex, cheaper
        g.request_token = REQUEST_ID.set(g.request_id)
        g.request_began = time.perf_counter()

    @app.after_request
    def _end(response):
        response.headers["X-Request-Id"] = g.get("request_id", "")
        log.info("%s %s %s", request.method, request.path, response.status_code,
                 extra={"method": request.method, "path": request.path, "status": response.status_code,
                        "ms": round((time.perf_counter() - g.get("request_began", time.perf_counter())) * 1000, 1)})
        return response

    @app.teardown_request
    def _forget(_exc):
        token = g.pop("request_token", None)
        if token is not None:
            REQUEST_ID.reset(token)
