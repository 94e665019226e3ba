"""What the pages for people in a browser share: the layout's context, their Content-Security-Policy, and
errors shown as a page.

The pages (pages_cases.py, pages_work.py) are server-rendered and read only: they call the same engine
reads as the JSON routes, behind the same `requires`, so a page shows what its reader could GET through
the API, and a browser signed in at /login (api/sessions.py) can change nothing through them. Errors are
raised as they are for the API (ApiProblem, engine errors) and leave as application/problem+json; each
page blueprint turns those into an HTML page with the same status and sentence, so there is one place that
decides what an error says.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, g, render_template, request

from .. import sessions
from ..contract import operation
from .meta import HOME_POLICY

# No script at all, like the front page; the one form, "Sign out", posts to this server.
PAGE_POLICY = HOME_POLICY
# A definition's picture: bpmn-js and diagram.js from this server, the BPMN in a JSON block (never run).
PICTURE_POLICY = HOME_POLICY + "; script-src 'self'"
_PROBLEM = "application/problem+json"


def page_blueprint(name: str, import_name: str) -> Blueprint:
    bp = Blueprint(name, import_name, template_folder="../templates")
    bp.after_request(_problem_as_page)
    return bp


def page_operation(summary: str, *, roles: str, errors: tuple[int, ...] = (),
                   query: list[dict] | None = None) -> Callable:
    """`@operation` for a page: HTML; a browser without a session is sent (303) to /login, other clients get
    the 401 problem; a refusal (403) and the `errors` are pages too."""
    statuses = (403, *errors)
    return operation(f"{summary} (an HTML page for people)", roles=roles, tag="pages", query=query,
                     responses={200: "", 303: "", **{status: "" for status in statuses}},
                     response_content={200: "text/html", **{status: "text/html" for status in statuses}})


def call_record(data: dict) -> dict | None:
    """The USM call record in a case's data (definitions/README.md), when the case has one."""
    call = data.get("call")
    return call if isinstance(call, dict) else None


def render_page(template: str, *, status: int = 200, policy: str = PAGE_POLICY, **context: Any) -> Response:
    """A page in the shared layout (templates/layout.html), which says who reads it."""
    principal = g.get("principal") or sessions.current_principal()
    html = render_template(template, user=principal.user if principal else None,
                           roles=sorted(principal.roles) if principal else [],
                           signed_in=sessions.signed_in() is not None, **context)
    response = Response(html, status=status, mimetype="text/html")
    response.headers["Content-Security-Policy"] = policy
    return response


def _problem_as_page(response: Response) -> Response:
    """A problem raised by a page's view, as a page. A 401 stays a problem: a browser never gets one (it is
    sent to /login), only a client that sent no cookie and no acceptable token."""
    if response.mimetype != _PROBLEM or response.status_code == 401:
        return response
    problem = json.loads(response.get_data(as_text=True))
    detail = str(problem.get("detail") or problem.get("title") or "")
    if detail.split(" ", 1)[0].isalpha():  # not a field's name, such as created_after, which stays as written
        detail = detail[:1].upper() + detail[1:]
    sentence = detail + ("" if detail.endswith((".", "!", "?")) else ".")
    section = "/" + request.path.strip("/").split("/")[0]  # /cases for a case that is not there
    return render_page("pages/problem.html", status=response.status_code, code=response.status_code,
                       title=problem.get("title"), detail=sentence, errors=problem.get("errors") or [],
                       back=section)


def page_link(cursor: str | None) -> str:
    """This page's address with the same query (the fields left empty left out) at `cursor`; None: the first page."""
    query = {name: value for name, value in request.args.items() if name != "cursor" and value != ""}
    if cursor is not None:
        query["cursor"] = cursor
    return f"{request.path}?{urlencode(query)}" if query else request.path


def as_json_text(value: object) -> str:
    """Case data and forms, indented for reading (the template escapes it)."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)
