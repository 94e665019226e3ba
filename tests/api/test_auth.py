"""Authentication (401) and authorization (403) on every route group, and tokens never leaking.

Rules (api/http.py `requires`, api/auth.py, api/routes/*): reads need any known token; deploy and
validate need `designer`; start, messages and cancel need `system`; completing a task needs `system` or
the role of the task's lane; a token without `admin`, `system` or `auditor` sees only the tasks of the
lanes it holds. `admin` may do everything. /healthz and the OpenAPI document need no token.
"""
from __future__ import annotations

import json
import logging

import pytest

from usm_engine.api.auth import token_digest
from tests.conftest import APPROVAL, FIXTURES, TOKENS, bearer, deploy

ROLES = ("admin", "designer", "system", "auditor", "requester", "none")
EVERYONE = frozenset(ROLES)

SIMPLE_BPMN = (FIXTURES / "simple.bpmn").read_bytes()

XML = ("application/xml", SIMPLE_BPMN)


def js(body: dict):
    return "application/json", json.dumps(body).encode()


# (group, method, path template, body, roles allowed, status when allowed). Everyone else gets 403.
ROUTES = [
    ("definitions list", "GET", "/api/v1/definitions", None, EVERYONE, 200),
    ("definition read", "GET", "/api/v1/definitions/approval", None, EVERYONE, 200),
    ("definition bpmn", "GET", "/api/v1/definitions/approval/versions/1/bpmn", None, EVERYONE, 200),
    ("deploy", "POST", "/api/v1/definitions", XML, {"admin", "designer"}, 201),
    ("validate", "POST", "/api/v1/definitions/validate", XML, {"admin", "designer"}, 200),
    ("case start", "POST", "/api/v1/cases", js({"definition": "approval"}), {"admin", "system"}, 201),
    ("cases list", "GET", "/api/v1/cases", None, EVERYONE, 200),
    ("case read", "GET", "/api/v1/cases/{case}", None, EVERYONE, 200),
    ("case message", "POST", "/api/v1/cases/{case}/messages", js({"name": "Message_None"}), {"admin", "system"},
     409),
    ("case cancel", "POST", "/api/v1/cases/{case}/cancel", None, {"admin", "system"}, 200),
    ("tasks list", "GET", "/api/v1/tasks", None, EVERYONE, 200),
    ("task read, own lane", "GET", "/api/v1/tasks/{submit}", None, {"admin", "system", "auditor", "requester"}, 200),
    ("task read, other lane", "GET", "/api/v1/tasks/{decide}", None, {"admin", "system", "auditor"}, 200),
    ("task complete, own lane", "POST", "/api/v1/tasks/{submit}/complete",
     js({"data": {"item": "pen", "quantity": 1}}), {"admin", "system", "requester"}, 200),
    ("task complete, other lane", "POST", "/api/v1/tasks/{decide}/complete", js({"data": {"approved": True}}),
     {"admin", "system"}, 200),
]

MATRIX = [pytest.param(method, path, body, role, status if role in allowed else 403,
                       id=f"{group}-{role}")
          for group, method, path, body, allowed, status in ROUTES for role in ROLES]


def assert_problem(response, status: int, *words: str) -> dict:
    text = response.get_data(as_text=True)
    assert response.status_code == status, text
    assert response.mimetype == "application/problem+json"
    body = json.loads(text)
    assert body["status"] == status and body["title"] and body["type"]
    assert isinstance(body["detail"], str) and len(body["detail"]) >= 15
    for word in words:
        assert word.lower() in body["detail"].lower(), f"{word!r} not in {body['detail']!r}"
    return body


@pytest.fixture
def world(client):
    """The approval process deployed, case A waiting at 'Submit request' (lane Requester), case B at
    'Decide' (lane Service manager)."""
    assert deploy(client, *APPROVAL).status_code == 201
    a = client.post("/api/v1/cases", json={"definition": "approval"}, headers=bearer("system")).get_json()
    b = client.post("/api/v1/cases", json={"definition": "approval"}, headers=bearer("system")).get_json()
    done = client.post(f"/api/v1/tasks/{b['tasks'][0]['id']}/complete",
                       json={"data": {"item": "chair", "quantity": 2}}, headers=bearer("system"))
    assert done.status_code == 200
    ids = {"case": a["id"], "submit": a["tasks"][0]["id"], "decide": done.get_json()["tasks"][0]["id"],
           "case_b": b["id"]}
    return client, ids


def snapshot(client) -> tuple:
    """Everything a forbidden request could have changed."""
    cases = client.get("/api/v1/cases", headers=bearer("admin")).get_json()["items"]
    tasks = client.get("/api/v1/tasks?state=any", headers=bearer("admin")).get_json()["items"]
    definitions = client.get("/api/v1/definitions", headers=bearer("admin")).get_json()["items"]
    return ([(c["id"], c["etag"], c["status"]) for c in cases], [(t["id"], t["state"]) for t in tasks],
            [(d["key"], d["version"]) for d in definitions])


def send(client, method: str, path: str, body, headers: dict):
    kwargs = {"headers": headers}
    if body is not None:
        kwargs.update(content_type=body[0], data=body[1])
    return client.open(path, method=method, **kwargs)


@pytest.mark.parametrize("method, path, body, role, expected", MATRIX)
def test_role_matrix(world, method, path, body, role, expected):
    client, ids = world
    before = snapshot(client)
    response = send(client, method, path.format(**ids), body, bearer(role))
    if expected == 403:
        problem = assert_problem(response, 403)
        detail = problem["detail"]
        assert any(word in detail for word in ("role", "lane")), detail
        assert snapshot(client) == before, "a forbidden request changed something"
    else:
        assert response.status_code == expected, response.get_data(as_text=True)


def test_forbidden_detail_names_needed_and_held_roles(world):
    client, ids = world
    problem = assert_problem(client.post("/api/v1/cases", json={"definition": "approval"},
                                         headers=bearer("designer")), 403, "system")
    assert "designer" in problem["detail"]
    problem = assert_problem(client.post(f"/api/v1/tasks/{ids['decide']}/complete", json={"data": {"approved": True}},
                                         headers=bearer("requester")), 403, "service-manager", "Service manager")
    assert_problem(client.get(f"/api/v1/tasks/{ids['decide']}", headers=bearer("requester")), 403,
                   "Service manager")
    assert_problem(client.post("/api/v1/definitions", data=SIMPLE_BPMN, content_type="application/xml",
                               headers=bearer("none")), 403, "designer", "none")


# --- 401 -----------------------------------------------------------------------------------------------

BAD_AUTH = {
    "no header": None,
    "wrong scheme": "Basic " + "c3lzdGVtOnN5c3RlbS10b2tlbg==",
    "token without scheme": TOKENS["system"],
    "other scheme with a real token": f"Token {TOKENS['system']}",
    "empty bearer": "Bearer ",
    "unknown token": "Bearer not-a-token-anyone-issued",
    "digest instead of token": f"Bearer {token_digest(TOKENS['system'])}",
}

UNAUTH = [pytest.param(method, path, body, header, id=f"{group}-{name}")
          for group, method, path, body, _, _ in ROUTES for name, header in BAD_AUTH.items()]


@pytest.mark.parametrize("method, path, body, header", UNAUTH)
def test_missing_or_unknown_token_is_401(world, method, path, body, header):
    client, ids = world
    before = snapshot(client)
    response = send(client, method, path.format(**ids), body, {"Authorization": header} if header else {})
    assert_problem(response, 401, "Authorization: Bearer")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert snapshot(client) == before


def test_401_comes_before_404_so_ids_do_not_leak(client):
    for path in ("/api/v1/cases/00000000-0000-4000-8000-000000000000", "/api/v1/tasks/nope",
                 "/api/v1/definitions/nope"):
        assert_problem(client.get(path), 401, "token")


def test_scheme_is_case_insensitive(world):
    client, _ = world
    response = client.get("/api/v1/cases", headers={"Authorization": f"bearer {TOKENS['auditor']}"})
    assert response.status_code == 200


@pytest.mark.parametrize("path", ["/healthz", "/api/v1/openapi.json"])
@pytest.mark.parametrize("header", [None, "Bearer unknown", "Basic Zm9vOmJhcg=="])
def test_public_routes_need_no_token(client, path, header):
    response = client.get(path, headers={"Authorization": header} if header else {})
    assert response.status_code == 200
    assert response.mimetype == "application/json"


# --- lanes ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("role, visible", [
    ("admin", {"submit", "decide"}), ("system", {"submit", "decide"}), ("auditor", {"submit", "decide"}),
    ("requester", {"submit"}), ("service-manager", {"decide"}), ("designer", set()), ("none", set()),
])
def test_task_list_shows_a_lane_holder_only_its_lanes(world, role, visible):
    client, ids = world
    response = client.get("/api/v1/tasks", headers=bearer(role))
    assert response.status_code == 200
    assert {t["id"] for t in response.get_json()["items"]} == {ids[name] for name in visible}
    # a lane filter cannot widen what a lane holder sees
    other = client.get("/api/v1/tasks?lane=Service%20manager&state=any", headers=bearer(role)).get_json()["items"]
    assert {t["id"] for t in other} == {ids["decide"]} & {ids[name] for name in visible}


def test_lane_holders_complete_their_own_lane_only(world):
    client, ids = world
    response = client.post(f"/api/v1/tasks/{ids['submit']}/complete", json={"data": {"item": "pen", "quantity": 3}},
                           headers=bearer("requester"))
    assert response.status_code == 200, response.get_data(as_text=True)
    case = response.get_json()
    decide = case["tasks"][0]
    assert decide["lane"] == "Service manager"
    assert client.get(f"/api/v1/tasks/{ids['submit']}", headers=bearer("auditor")).get_json()["completed_by"] == \
        "requester-user"

    assert_problem(client.post(f"/api/v1/tasks/{decide['id']}/complete", json={"data": {"approved": False}},
                               headers=bearer("requester")), 403, "Service manager")
    assert client.get(f"/api/v1/cases/{case['id']}", headers=bearer("auditor")).get_json()["etag"] == case["etag"]
    response = client.post(f"/api/v1/tasks/{decide['id']}/complete", json={"data": {"approved": False}},
                           headers=bearer("service-manager"))
    assert response.status_code == 200
    assert response.get_json()["status"] == "completed"


def test_lane_holder_cannot_start_or_cancel(world):
    client, ids = world
    assert_problem(client.post("/api/v1/cases", json={"definition": "approval"}, headers=bearer("requester")),
                   403, "system")
    assert_problem(client.post(f"/api/v1/cases/{ids['case']}/cancel", headers=bearer("service-manager")),
                   403, "system")


# --- tokens never leak ---------------------------------------------------------------------------------

def test_tokens_file_stores_only_digests(tokens_file):
    text = open(tokens_file, encoding="utf-8").read()
    for role, token in TOKENS.items():
        assert token not in text, f"the {role} token is stored in clear"
        if role != "admin":
            assert token_digest(token) in text
    assert "sha256" in text


def test_no_token_reaches_the_log(world, caplog):
    client, ids = world
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="spiff")  # the engine quiets it; open it up to see everything
    secret = "Sup3r-Secret-token-that-nobody-issued"
    assert client.get("/api/v1/cases", headers={"Authorization": f"Bearer {secret}"}).status_code == 401
    assert client.post("/api/v1/cases", json={"definition": "approval"},
                       headers=bearer("designer")).status_code == 403
    assert client.post("/api/v1/cases", json={"definition": "nope"}, headers=bearer("system")).status_code == 404
    ok = client.post(f"/api/v1/tasks/{ids['submit']}/complete", json={"data": {"item": "pen", "quantity": 1}},
                     headers=bearer("requester"))
    assert ok.status_code == 200
    assert client.get(f"/api/v1/cases/{ids['case']}", headers=bearer("system")).status_code == 200
    assert caplog.records, "the requests should have produced some log output to check"
    logged = caplog.text + "".join(repr(record.__dict__) for record in caplog.records)
    for token in (secret, *TOKENS.values()):
        assert token not in logged
        assert token_digest(token) not in logged
