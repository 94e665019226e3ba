"""Request parsing shared by the routes: JSON bodies checked against a schema, paging, auth."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from functools import wraps

from flask import current_app, g, request
from jsonschema import Draft202012Validator

from .problems import ApiProblem


def json_body(schema: dict) -> dict:
    """The request body as a JSON object that satisfies `schema`, or a 400/422 that says what is wrong."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise ApiProblem(400, "Bad request", "the request body is empty; send a JSON object")
    try:
        body = json.loads(raw)
    except UnicodeDecodeError:
        raise ApiProblem(400, "Bad request", "the request body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ApiProblem(400, "Bad request", f"the request body is not valid JSON: {exc.msg} at line {exc.lineno} "
                                             f"column {exc.colno}") from None
    problems = []
    for error in sorted(_validator(schema).iter_errors(body), key=lambda e: list(e.absolute_path)):
        field = ".".join(str(p) for p in error.absolute_path)
        if error.validator == "required":
            missing = error.message.split("'")[1]
            field = f"{field}.{missing}" if field else missing
            message = "this field is required"
        elif error.validator == "type" and error.absolute_path and error.absolute_path[-1] == "data":
            message = "data must be a JSON object, e.g. {\"field\": \"value\"}"
        else:
            message = error.message
        problems.append({"field": field or "body", "message": message})
    if problems:
        first = problems[0]
        raise ApiProblem(422, "Unprocessable content", f"the request body is not acceptable: "
                                                        f"{first['field']}: {first['message']}", problems)
    return body


_validators: dict[int, Draft202012Validator] = {}


def _validator(schema: dict) -> Draft202012Validator:
    key = id(schema)
    if key not in _validators:
        _validators[key] = Draft202012Validator(schema)
    return _validators[key]


def paging() -> tuple[str | None, int]:
    raw = request.args.get("limit", "50")
    try:
        limit = int(raw)
    except ValueError:
        limit = -1
    if not 1 <= limit <= current_app.config["USM_MAX_PAGE_SIZE"]:
        raise ApiProblem(422, "Unprocessable content",
                         f"limit must be a whole number from 1 to {current_app.config['USM_MAX_PAGE_SIZE']}",
                         [{"field": "limit", "message": f"got '{raw}'"}])
    return request.args.get("cursor") or None, limit


def time_param(name: str) -> datetime | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ApiProblem(422, "Unprocessable content", f"{name} must be an RFC 3339 time such as "
                                                       "2026-11-27T20:15:00Z", [{"field": name, "message": f"got '{raw}'"}]) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


def enum_param(name: str, allowed: tuple[str, ...], default: str | None = None) -> str | None:
    raw = request.args.get(name, default)
    if raw is not None and raw not in allowed:
        raise ApiProblem(422, "Unprocessable content", f"{name} must be one of: {', '.join(allowed)}",
                         [{"field": name, "message": f"got '{raw}'"}])
    return raw


def requires(*roles: str):
    """Authenticate the bearer token (401) and require one of `roles` (403); no roles = any known token."""

    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            principal = current_app.extensions["usm_tokens"].authenticate(request.headers.get("Authorization"))
            if principal is None:
                raise ApiProblem(401, "Unauthorized", "send a valid token as 'Authorization: Bearer <token>'",
                                 headers={"WWW-Authenticate": 'Bearer realm="usm"'})
            if roles and not principal.has(*roles):
                raise ApiProblem(403, "Forbidden", f"this needs one of the roles: {', '.join(roles)}; "
                                                   f"your token has: {', '.join(sorted(principal.roles)) or 'none'}")
            g.principal = principal
            return view(*args, **kwargs)

        return wrapper

    return decorate


def engine():
    return current_app.extensions["usm_engine"]
