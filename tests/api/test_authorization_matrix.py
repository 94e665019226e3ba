"""Every route against every role: who gets in (never 401/403, never 5xx) and who is turned away (exactly
401 without a token, exactly 403 without the role). A route missing from the matrix fails the test, so
a new route cannot ship without deciding who may call it."""
from __future__ import annotations

import pytest

from tests.conftest import APPROVAL, TOKENS, bearer, deploy

ROLES = ["admin", "designer", "system", "auditor", "requester", "none"]
ANY = set(ROLES)
READERS = {"admin", "auditor", "system"}

# (method, rule) -> roles allowed; None = public (no token needed)
MATRIX = {
    ("GET", "/healthz"): None,
    ("GET", "/metrics"): None,
    ("GET", "/api/v1/openapi.json"): None,
    ("GET", "/api/v1/docs"): None,
    ("GET", "/"): None,
    ("GET", "/login"): None,
    ("POST", "/login"): None,
    ("POST", "/logout"): None,
    ("GET", "/assets/swagger-ui/<path:filename>"): None,
    ("GET", "/assets/bpmn-js/<path:filename>"): None,
    ("GET", "/assets/usm/<path:filename>"): None,
    ("GET", "/api/v1/definitions"): ANY,
    ("GET", "/api/v1/definitions/<key>"): ANY,
    ("GET", "/api/v1/definitions/<key>/versions/<int:version>/bpmn"): ANY,
    ("POST", "/api/v1/definitions"): {"admin", "designer"},
    ("POST", "/api/v1/definitions/validate"): {"admin", "designer"},
    ("POST", "/api/v1/cases"): {"admin", "system"},
    ("GET", "/api/v1/cases"): ANY,
    ("GET", "/api/v1/cases/<case_id>"): ANY,
    ("POST", "/api/v1/cases/<case_id>/messages"): {"admin", "system"},
    ("POST", "/api/v1/cases/<case_id>/cancel"): {"admin", "system"},
    ("POST", "/api/v1/cases/<case_id>/suspend"): {"admin", "system"},
    ("POST", "/api/v1/cases/<case_id>/resume"): {"admin", "system"},
    ("POST", "/api/v1/cases/<case_id>/retry"): {"admin", "system"},
    ("POST", "/api/v1/cases/<case_id>/migrate"): {"admin", "system"},
    ("POST", "/api/v1/cases/migrate"): {"admin", "system"},
    ("POST", "/api/v1/messages"): {"admin", "system"},
    ("GET", "/api/v1/tasks"): ANY,
    ("GET", "/api/v1/tasks/<task_id>"): {"admin", "system", "auditor", "requester"},
    ("POST", "/api/v1/tasks/<task_id>/complete"): {"admin", "system", "requester"},
    ("POST", "/api/v1/tasks/<task_id>/fail"): {"admin", "system"},
    ("POST", "/api/v1/tasks/<task_id>/extend-lock"): {"admin", "system"},
    ("POST", "/api/v1/external-tasks/lock"): {"admin", "system"},
    ("GET", "/api/v1/cases/<case_id>/trail"): READERS,
    ("GET", "/api/v1/audit/verify"): READERS,
    ("GET", "/api/v1/cases/<case_id>/diagram"): READERS,
    ("GET", "/api/v1/compliance"): READERS,
    ("GET", "/api/v1/compliance/<path:requirement>/cases"): READERS,
    # The pages for people (api/routes/pages*.py): each as the API it reads.
    ("GET", "/cases"): ANY,
    ("GET", "/cases/<case_id>"): ANY,
    ("GET", "/tasks"): ANY,
    ("GET", "/definitions"): ANY,
    ("GET", "/definitions/<key>"): ANY,
    ("GET", "/compliance"): READERS,
    ("GET", "/compliance/<path:requirement>"): READERS,
    # Service-level insight (api/routes/insight.py): readers, and the lane role service-manager (not a role here).
    ("GET", "/api/v1/insight/service-levels"): READERS,
    ("GET", "/api/v1/insight/steps"): READERS,
    ("GET", "/api/v1/insight/backlog"): READERS,
    ("GET", "/insight"): READERS,
}
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
# Public form posts that change no data, with the status they answer the matrix's bodies (no token field):
# signing in refuses (the page again, 401), signing out redirects to /login (303).
SIGN_IN_FORMS = {("POST", "/login"): 401, ("POST", "/logout"): 303}
SAFE = {"GET", "HEAD"}


def routes(app):
    return sorted((method, rule.rule) for rule in app.url_map.iter_rules() if rule.endpoint != "static"
                  for method in rule.methods - {"HEAD", "OPTIONS"})


def test_every_route_is_in_the_matrix(app):
    assert set(routes(app)) == set(MATRIX)


def test_the_auditor_can_write_nothing_and_read_every_audit_route():
    mutating = [route for route in MATRIX if route[0] in MUTATING and route not in SIGN_IN_FORMS]
    assert mutating and all(MATRIX[route] is not None and "auditor" not in MATRIX[route] for route in mutating)
    audit = [route for route in MATRIX if route[1].startswith(("/api/v1/audit", "/api/v1/compliance"))
             or route[1].endswith(("/trail", "/diagram"))]
    assert len(audit) == 5 and all("auditor" in MATRIX[route] for route in audit)


def _fill(rule: str, ids: dict) -> str:
    return (rule.replace("<path:filename>", ids["filename"]).replace("<key>", "approval")
            .replace("<int:version>", "1").replace("<case_id>", ids["case"]).replace("<task_id>", ids["task"])
            .replace("<path:requirement>", "8.1"))


BODIES = {
    "/api/v1/cases": {"definition": "approval"},
    "/api/v1/cases/<case_id>/messages": {"name": "nothing"},
    "/api/v1/messages": {"name": "nothing"},
    "/api/v1/tasks/<task_id>/complete": {"data": {"item": "pen", "quantity": 1}},
    "/api/v1/tasks/<task_id>/fail": {"worker": "w1", "message": "a user task cannot fail"},
    "/api/v1/tasks/<task_id>/extend-lock": {"worker": "w1", "lock_seconds": 60},
    "/api/v1/external-tasks/lock": {"worker": "w1", "topics": ["cmdb"]},
    "/api/v1/cases/<case_id>/migrate": {"to_version": 1, "dry_run": True},
    "/api/v1/cases/migrate": {"filter": {"definition": "approval"}, "to_version": 1, "dry_run": True},
}


@pytest.fixture
def world(client):
    assert deploy(client, *APPROVAL, "compliance.toml").status_code == 201
    case = client.post("/api/v1/cases", json={"definition": "approval"}, headers=bearer("system")).get_json()
    return {"case": case["id"], "task": case["tasks"][0]["id"], "filename": "diagram.js"}


def statuses(client, world, headers) -> list[tuple[str, str, int]]:
    """(method, rule, status) of one request to every route of the matrix."""
    seen = []
    for method, rule in sorted(MATRIX):
        path = _fill(rule, world)
        if rule == "/assets/usm/<path:filename>":
            path = "/assets/usm/diagram.js"
        elif rule == "/assets/bpmn-js/<path:filename>":
            path = "/assets/bpmn-js/bpmn-navigated-viewer.production.min.js"
        elif rule == "/assets/swagger-ui/<path:filename>":
            path = "/assets/swagger-ui/swagger-ui.css"
        kwargs = {"headers": headers}
        if method == "POST":
            if rule in ("/api/v1/definitions", "/api/v1/definitions/validate"):
                kwargs.update(data=b"<not-bpmn/>", content_type="application/xml")
            else:
                kwargs["json"] = BODIES.get(rule, {})
        seen.append((method, rule, client.open(path, method=method, **kwargs).status_code))
    assert len(seen) == len(MATRIX)
    return seen


@pytest.mark.parametrize("role", ROLES + ["anonymous"])
def test_matrix(app, world, role):
    client = app.test_client()
    headers = {} if role == "anonymous" else {"Authorization": f"Bearer {TOKENS[role]}"}
    for method, rule, status in statuses(client, world, headers):
        allowed = MATRIX[(method, rule)]
        if allowed is None:
            assert status == SIGN_IN_FORMS.get((method, rule), 200), (method, rule, status)
        elif role == "anonymous":
            assert status == 401, (method, rule, status)
        elif role in allowed:
            assert status not in (401, 403) and status < 500, (method, rule, role, status)
        else:
            assert status == 403, (method, rule, role, status)


@pytest.mark.parametrize("role", ROLES)
def test_matrix_signed_in_with_a_cookie(app, world, role):
    """A browser signed in with a role's token (api/sessions.py): every read as that token's, and every
    change refused with 401 (a cookie never changes anything; only the bearer header does)."""
    client = app.test_client()
    assert client.post("/login", data={"token": TOKENS[role]}).status_code == 303
    for method, rule, status in statuses(client, world, {}):
        allowed = MATRIX[(method, rule)]
        if (method, rule) == ("POST", "/logout"):
            assert status == 303
            assert client.post("/login", data={"token": TOKENS[role]}).status_code == 303  # signed in again
        elif allowed is None:
            assert status == SIGN_IN_FORMS.get((method, rule), 200), (method, rule, status)
        elif method not in SAFE:
            assert status == 401, (method, rule, role, status)
        elif role in allowed:
            assert status not in (401, 403) and status < 500, (method, rule, role, status)
        else:
            assert status == 403, (method, rule, role, status)
