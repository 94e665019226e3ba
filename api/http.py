"""Request parsing shared by the routes: JSON bodies checked against a schema, paging, auth."""
from __future__ import annotations

import json
import math
import sys
from datetime import datetime
from functools import wraps

from flask import current_app, g, request
from jsonschema import Draft202012Validator

from .contract import OPERATION_ATTR
from usm_engine.engine.data_limits import MAX_DATA_DEPTH, nesting_depth
from usm_engine.engine.clock import parse_rfc3339
from usm_engine.engine.forms import missing_field

from . import sessions
from .problems import ApiProblem


def _has_nul(value) -> bool:
    """A NUL in a text, or in a text of a list (e.g. the topics a worker locks)."""
    if isinstance(value, str):
        return "\0" in value
    return isinstance(value, list) and any(isinstance(item, str) and "\0" in item for item in value)


def json_body(schema: dict) -> dict:
    """The request body as a JSON object that satisfies `schema`, or a 400/422 that says what is wrong."""
    raw = request.get_data(cache=True)
    announced = request.content_length
    if announced is not None and len(raw) < announced:  # gunicorn hands on a body cut short as it is
        raise ApiProblem(400, "Bad request", f"the request body ended after {len(raw)} of the {announced} bytes its "
                                             "Content-Length announced; send it whole")
    if not raw.strip():
        raise ApiProblem(400, "Bad request", "the request body is empty; send a JSON object")
    try:
        body = json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite_float, parse_int=_readable_int)
    except UnicodeDecodeError:
        raise ApiProblem(400, "Bad request", "the request body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ApiProblem(400, "Bad request", f"the request body is not valid JSON: {exc.msg} at line {exc.lineno} "
                                             f"column {exc.colno}") from None
    except RecursionError:
        raise _too_deep() from None
    if nesting_depth(body) > MAX_JSON_DEPTH:
        raise _too_deep()
    problems = []
    for error in sorted(_validator(schema).iter_errors(body), key=lambda e: list(e.absolute_path)):
        field = ".".join(str(p) for p in error.absolute_path)
        if error.validator == "required":
            missing = missing_field(error)
            field = ".".join(part for part in (field, missing) if part)
            message = "this field is required"
        elif error.validator == "type" and error.absolute_path and error.absolute_path[-1] == "data":
            message = "data must be a JSON object, e.g. {\"field\": \"value\"}"
        else:
            message = error.message
        problems.append({"field": field or "body", "message": message})
    if isinstance(body, dict):  # identifiers end up in SQL, where PostgreSQL refuses the NUL character
        problems += [{"field": name, "message": "must not contain the NUL character (\\u0000)"}
                     for name, value in body.items() if name != "data" and _has_nul(value)]
    if problems:
        first = problems[0]
        raise ApiProblem(422, "Unprocessable content", f"the request body is not acceptable: "
                                                        f"{first['field']}: {first['message']}", problems)
    return body


def _refuse_constant(name: str):
    """Python's json accepts NaN and Infinity, which are not JSON and could not be sent back as JSON."""
    raise ApiProblem(400, "Bad request", f"the request body is not valid JSON: {name} is not a JSON number")


def _finite_float(text: str) -> float:
    """1e999 parses as infinity, which JSON cannot carry back out."""
    value = float(text)
    if not math.isfinite(value):
        raise ApiProblem(400, "Bad request", f"the request body holds the number {text[:40]}, which is too large "
                                             "to represent; send it as a string")
    return value


def _readable_int(text: str) -> int:
    """Python refuses to convert integers of more than sys.get_int_max_str_digits() digits (4300 by
    default) with a ValueError, which would otherwise surface as a 500."""
    limit = sys.get_int_max_str_digits()
    if limit and len(text.lstrip("-")) > limit:
        raise ApiProblem(400, "Bad request", f"the request body holds an integer of {len(text.lstrip('-'))} digits; "
                                             f"the limit is {limit}; send it as a string")
    return int(text)


# Deeper bodies cannot be parsed, stored and restored within Python's recursion limit.
MAX_JSON_DEPTH = MAX_DATA_DEPTH


def _too_deep() -> ApiProblem:
    return ApiProblem(422, "Unprocessable content", f"the request body nests objects and arrays more than "
                                                    f"{MAX_JSON_DEPTH} levels deep; flatten it",
                      [{"field": "body", "message": f"nested more than {MAX_JSON_DEPTH} levels deep"}])


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
    return request.args.get("cursor") or None, page_limit(limit, raw)


def page_limit(limit: int, given: object) -> int:
    """`limit`, if it is a page size this server serves (query or body alike), else 422."""
    largest = current_app.extensions["usm_settings"].max_page_size
    if not 1 <= limit <= largest:
        raise ApiProblem(422, "Unprocessable content", f"limit must be a whole number from 1 to {largest}",
                         [{"field": "limit", "message": f"got '{given}'"}])
    return limit


def time_param(name: str) -> datetime | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    try:
        return parse_rfc3339(raw)
    except ValueError:
        raise ApiProblem(422, "Unprocessable content", f"{name} must be an RFC 3339 time such as 2026-11-27T20:15:00Z",
                         [{"field": name, "message": f"got '{raw}'"}]) from None


def enum_param(name: str, allowed: tuple[str, ...], default: str | None = None) -> str | None:
    raw = request.args.get(name, default)
    if raw is not None and raw not in allowed:
        raise ApiProblem(422, "Unprocessable content", f"{name} must be one of: {', '.join(allowed)}",
                         [{"field": name, "message": f"got '{raw}'"}])
    return raw


def requires(*roles: str):
    """Authenticate the bearer token, or for GET/HEAD a browser's sign-in cookie (401, or for a browser's
    page a redirect to /login: api/sessions.py), and require one of `roles` (403); no roles = any known token."""

    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            principal = sessions.current_principal()
            if principal is None:
                return sessions.refuse()
            if roles and not principal.has(*roles):
                raise ApiProblem(403, "Forbidden", f"this needs one of the roles: {', '.join(roles)}; "
                                                   f"your token has: {', '.join(sorted(principal.roles)) or 'none'}")
            _refuse_nul_in_url(kwargs)
            g.principal = principal
            return view(*args, **kwargs)

        return wrapper

    return decorate


def _refuse_nul_in_url(path_args: dict) -> None:
    """Identifiers and filters reach SQL, where PostgreSQL refuses the NUL character: say so instead of failing."""
    if any(isinstance(value, str) and "\0" in value for value in path_args.values()):
        raise ApiProblem(404, "Not found", "there is no such resource: identifiers never contain a NUL character (%00)")
    raw_query = request.query_string
    if b"%00" not in raw_query and b"\0" not in raw_query:  # no NUL can be in any value: most requests
        return
    documented = getattr(current_app.view_functions.get(request.endpoint), OPERATION_ATTR, {}).get("query", [])
    for name in (parameter["name"] for parameter in documented):
        if any("\0" in value for value in request.args.getlist(name)):
            raise ApiProblem(422, "Unprocessable content", f"the query parameter {name} contains a NUL character "
                                                           "(%00); remove it",
                             [{"field": name, "message": "must not contain the NUL character"}])


def engine():
    return current_app.extensions["usm_engine"]
