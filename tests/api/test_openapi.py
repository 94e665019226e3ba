"""The OpenAPI document at /api/v1/openapi.json describes exactly what the server does.

Checked here without any OpenAPI tooling: the document's structure (OpenAPI 3.1), every $ref resolving
inside the document, the set of (path, method) pairs equal to Flask's url_map, security on every
non-public operation, and real responses validated (status, media type, body) against the schema the
document names for them, with jsonschema + referencing resolving $refs against the document itself.
"""
from __future__ import annotations

import io
import json
import re

import pytest
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from usm_engine.engine import store
from tests.conftest import APPROVAL, FIXTURES, bearer, deploy

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
PATH_ITEM_KEYS = HTTP_METHODS | {"$ref", "summary", "description", "servers", "parameters"}
# No token: health, the document itself, its reference and the front page that points to them, and the
# static files of the diagram page and the reference (library code).
PUBLIC = {("/healthz", "get"), ("/metrics", "get"), ("/api/v1/openapi.json", "get"), ("/api/v1/docs", "get"),
          ("/", "get"), ("/assets/bpmn-js/{filename}", "get"), ("/assets/usm/{filename}", "get"),
          ("/assets/swagger-ui/{filename}", "get"), ("/login", "get"), ("/login", "post"), ("/logout", "post")}
# Signing in answers a wrong token (401) or a form sent from another site (403) with the sign-in page (HTML).
SIGN_IN_PAGES = {("/login", "post", "401"), ("/login", "post", "403"), ("/logout", "post", "403")}
# The pages for people (tag "pages", api/routes/pages.py) answer a refusal or a mistake with a page (HTML).
PAGE_TAG = "pages"
DOC_URI = "urn:usm-engine:openapi"

SIMPLE_BPMN = (FIXTURES / "simple.bpmn").read_bytes()


@pytest.fixture
def document(client) -> dict:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.get_json()


def operations(document: dict):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield path, method, operation


def walk(node, where="#"):
    """Every (location, dict) in a JSON document."""
    if isinstance(node, dict):
        yield where, node
        for key, value in node.items():
            yield from walk(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, f"{where}/{index}")


def resolve_pointer(document: dict, ref: str):
    assert ref.startswith("#/"), f"$ref {ref!r} points outside the document"
    node = document
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, list):
            node = node[int(part)]
        else:
            assert part in node, f"$ref {ref!r}: no {part!r}"
            node = node[part]
    return node


# --- structure -------------------------------------------------------------------------------------------

def test_document_is_openapi_3_1(document):
    assert re.fullmatch(r"3\.1\.\d+", document["openapi"])
    assert set(document) <= {"openapi", "info", "jsonSchemaDialect", "servers", "paths", "webhooks", "components",
                             "security", "tags", "externalDocs"}
    info = document["info"]
    assert isinstance(info["title"], str) and info["title"]
    assert isinstance(info["version"], str) and info["version"]
    assert isinstance(document["paths"], dict) and document["paths"]
    assert set(document["components"]) <= {"schemas", "responses", "parameters", "examples", "requestBodies",
                                           "headers", "securitySchemes", "links", "callbacks", "pathItems"}


def test_paths_and_operations_are_well_formed(document):
    operation_ids = []
    for path, item in document["paths"].items():
        assert path.startswith("/"), path
        assert set(item) <= PATH_ITEM_KEYS, (path, set(item) - PATH_ITEM_KEYS)
        templated = set(re.findall(r"{([^}]+)}", path))
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            where = f"{method.upper()} {path}"
            assert isinstance(operation.get("summary"), str) and operation["summary"], where
            operation_ids.append(operation["operationId"])
            parameters = operation.get("parameters", [])
            for parameter in parameters:
                assert parameter["in"] in {"query", "header", "path", "cookie"}, where
                assert isinstance(parameter["name"], str) and parameter["name"], where
                assert "schema" in parameter or "content" in parameter, where
                Draft202012Validator.check_schema(parameter["schema"])
                if parameter["in"] == "path":
                    assert parameter["required"] is True, where
            names = [(p["name"], p["in"]) for p in parameters]
            assert len(names) == len(set(names)), f"{where}: a parameter is listed twice"
            assert {p["name"] for p in parameters if p["in"] == "path"} == templated, where
            if "requestBody" in operation:
                assert operation["requestBody"]["content"], where
                for media in operation["requestBody"]["content"].values():
                    Draft202012Validator.check_schema(media["schema"])
            responses = operation["responses"]
            assert responses, where
            for status, response in responses.items():
                assert re.fullmatch(r"[1-5]\d\d|[1-5]XX|default", status), (where, status)
                assert isinstance(response["description"], str) and response["description"], (where, status)
                for media_type, media in response.get("content", {}).items():
                    assert "/" in media_type, (where, media_type)
                    Draft202012Validator.check_schema(media["schema"])
    assert len(operation_ids) == len(set(operation_ids)), "operationId must be unique"


def test_component_schemas_are_valid_json_schemas(document):
    schemas = document["components"]["schemas"]
    assert {"Case", "Task", "Definition", "DefinitionList", "Problem"} <= set(schemas)
    for schema in schemas.values():
        Draft202012Validator.check_schema(schema)


def test_every_ref_resolves_inside_the_document(document):
    refs = [(where, node["$ref"]) for where, node in walk(document) if "$ref" in node]
    assert refs, "the document should use $ref to its components"
    for where, ref in refs:
        target = resolve_pointer(document, ref)
        assert isinstance(target, dict), f"{where}: {ref} does not name an object"
    used = {ref.rsplit("/", 1)[1] for _, ref in refs if ref.startswith("#/components/schemas/")}
    assert {"Case", "Task", "Problem", "DefinitionList"} <= used


def test_security_scheme_is_bearer(document):
    schemes = document["components"]["securitySchemes"]
    assert schemes, "a bearer security scheme must be declared"
    bearers = [name for name, scheme in schemes.items() if scheme == {"type": "http", "scheme": "bearer"}
               or (scheme.get("type") == "http" and scheme.get("scheme", "").lower() == "bearer")]
    assert bearers


def test_every_non_public_operation_has_security_and_401(document):
    schemes = set(document["components"]["securitySchemes"])
    for path, method, operation in operations(document):
        where = f"{method.upper()} {path}"
        if (path, method) in PUBLIC:
            assert not operation.get("security"), f"{where} needs no token"
            assert "401" not in operation["responses"] or (path, method, "401") in SIGN_IN_PAGES, where
            continue
        assert operation.get("security"), f"{where} has no security requirement"
        for requirement in operation["security"]:
            assert requirement and set(requirement) <= schemes, where
        assert "401" in operation["responses"], f"{where} does not list 401"
        assert "403" in operation["responses"], f"{where} does not list 403"


def test_every_error_response_is_a_problem(document):
    for path, method, operation in operations(document):
        for status, response in operation["responses"].items():
            if status.startswith(("4", "5")) and not (path == "/healthz" and status == "503") \
                    and (path, method, status) not in SIGN_IN_PAGES \
                    and not (PAGE_TAG in operation["tags"] and list(response["content"]) == ["text/html"]):
                # Beside the schema, each carries an example (tests/api/test_openapi_examples.py checks those).
                assert list(response["content"]) == ["application/problem+json"], f"{method.upper()} {path} {status}"
                assert response["content"]["application/problem+json"]["schema"] == {
                    "$ref": "#/components/schemas/Problem"}, f"{method.upper()} {path} {status}"


# --- the document and the routes agree ---------------------------------------------------------------------

def flask_operations(app) -> set[tuple[str, str]]:
    found = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:[^<>:]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            found.add((path, method.lower()))
    return found


def documented_operations(document: dict) -> set[tuple[str, str]]:
    return {(path, method) for path, method, _ in operations(document)}


def route_drift(app, document) -> tuple[set, set]:
    served, documented = flask_operations(app), documented_operations(document)
    return served - documented, documented - served


def test_document_matches_url_map_exactly(app, document):
    undocumented, phantom = route_drift(app, document)
    assert not undocumented, f"routes missing from the OpenAPI document: {sorted(undocumented)}"
    assert not phantom, f"the OpenAPI document names operations the server does not have: {sorted(phantom)}"
    assert ("/api/v1/definitions/{key}/versions/{version}/bpmn", "get") in documented_operations(document)


def test_drift_check_is_not_vacuous(app_factory):
    """The comparison above really catches both directions of drift."""
    app = app_factory()
    document = app.extensions["usm_openapi"]
    assert route_drift(app, document) == (set(), set())
    app.add_url_rule("/api/v1/undocumented", "undocumented", lambda: "x", methods=["GET", "DELETE"])
    trimmed = json.loads(json.dumps(document))
    del trimmed["paths"]["/api/v1/cases/{case_id}/cancel"]["post"]
    trimmed["paths"]["/api/v1/ghost"] = {"get": {"summary": "x", "responses": {}}}
    undocumented, phantom = route_drift(app, trimmed)
    assert undocumented == {("/api/v1/undocumented", "get"), ("/api/v1/undocumented", "delete"),
                            ("/api/v1/cases/{case_id}/cancel", "post")}
    assert phantom == {("/api/v1/ghost", "get")}


def test_path_parameter_types_match_converters(app, document):
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:[^<>:]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            parameters = {p["name"]: p for p in document["paths"][path][method.lower()].get("parameters", [])
                          if p["in"] == "path"}
            for name, converter in rule._converters.items():
                expected = "integer" if type(converter).__name__ == "IntegerConverter" else "string"
                assert parameters[name]["schema"]["type"] == expected, (path, name)


# --- real responses against the document -----------------------------------------------------------------

def _date_time(value) -> bool:
    if not isinstance(value, str):
        return True
    return re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", value) is not None


FORMATS = FormatChecker()
FORMATS.checks("date-time")(_date_time)


def check_response(document: dict, method: str, path: str, response) -> dict | bytes:
    """The status is documented for this operation, the media type is the documented one, and the body
    validates against the documented schema (with every $ref resolved inside the document)."""
    operation = document["paths"][path][method.lower()]
    status = str(response.status_code)
    assert status in operation["responses"], \
        f"{method} {path} answered {status}, which the document does not list: {response.get_data(as_text=True)}"
    content = operation["responses"][status].get("content", {})
    assert response.mimetype in content, f"{method} {path} {status}: {response.mimetype} not in {list(content)}"
    schema = content[response.mimetype]["schema"]
    if response.mimetype.endswith("json"):
        body = json.loads(response.get_data(as_text=True))
    else:
        body = response.get_data(as_text=True)
    registry = Registry().with_resource(DOC_URI, DRAFT202012.create_resource(document))
    if "$ref" in schema:
        schema = {"$ref": DOC_URI + schema["$ref"]}
    validator = Draft202012Validator(schema, registry=registry, format_checker=FORMATS)
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
    assert not errors, f"{method} {path} {status}: " + "; ".join(
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)
    return body


def test_schema_check_is_not_vacuous(document, client):
    """A body that breaks the Case schema is caught, and so is a $ref into the nested TaskSummary."""
    registry = Registry().with_resource(DOC_URI, DRAFT202012.create_resource(document))
    validator = Draft202012Validator({"$ref": DOC_URI + "#/components/schemas/Case"}, registry=registry,
                                     format_checker=FORMATS)
    good = {"id": "c", "definition": "d", "version": 1, "business_key": None, "status": "running",
            "workflow": None, "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
            "data": {}, "tasks": [], "waiting_for": [], "parent_case": None, "etag": '"v1"'}
    assert validator.is_valid(good)
    assert not validator.is_valid({**good, "status": "sleeping"})
    assert not validator.is_valid({**good, "created_at": "yesterday"})
    assert not validator.is_valid({**good, "tasks": [{"id": "t"}]})


def test_case_task_and_definition_responses_match_their_schemas(client, document):
    check_response(document, "POST", "/api/v1/definitions", deploy(client, *APPROVAL))
    check_response(document, "POST", "/api/v1/definitions", deploy(client, *APPROVAL))  # 200, nothing new
    body = check_response(document, "GET", "/api/v1/definitions", client.get("/api/v1/definitions",
                                                                                 headers=bearer("auditor")))
    assert body["items"][0]["key"] == "approval"
    detail = check_response(document, "GET", "/api/v1/definitions/{key}",
                            client.get("/api/v1/definitions/approval", headers=bearer("auditor")))
    assert {t["element_id"] for t in detail["user_tasks"]} == {"Activity_Submit", "Activity_Decide"}
    bpmn = client.get("/api/v1/definitions/approval/versions/1/bpmn", headers=bearer("auditor"))
    check_response(document, "GET", "/api/v1/definitions/{key}/versions/{version}/bpmn", bpmn)
    validated = client.post("/api/v1/definitions/validate", data=SIMPLE_BPMN, content_type="application/xml",
                            headers=bearer("designer"))
    assert check_response(document, "POST", "/api/v1/definitions/validate", validated) == {"valid": True,
                                                                                           "warnings": []}

    started = client.post("/api/v1/cases", json={"definition": "approval", "business_key": "INC-1"},
                          headers={**bearer("system"), "Idempotency-Key": "k1"})
    case = check_response(document, "POST", "/api/v1/cases", started)
    assert started.status_code == 201
    repeated = client.post("/api/v1/cases", json={"definition": "approval", "business_key": "INC-1"},
                           headers={**bearer("system"), "Idempotency-Key": "k1"})
    assert repeated.status_code == 200
    check_response(document, "POST", "/api/v1/cases", repeated)
    check_response(document, "GET", "/api/v1/cases/{case_id}", client.get(f"/api/v1/cases/{case['id']}",
                                                                            headers=bearer("auditor")))
    page = check_response(document, "GET", "/api/v1/cases", client.get("/api/v1/cases?limit=1",
                                                                         headers=bearer("auditor")))
    assert page["next"] is None

    submit = case["tasks"][0]["id"]
    task = check_response(document, "GET", "/api/v1/tasks/{task_id}", client.get(f"/api/v1/tasks/{submit}",
                                                                                  headers=bearer("auditor")))
    assert task["form"]["required"] == ["item", "quantity"]
    check_response(document, "GET", "/api/v1/tasks", client.get("/api/v1/tasks?state=any",
                                                                 headers=bearer("auditor")))
    completed = client.post(f"/api/v1/tasks/{submit}/complete", json={"data": {"item": "pen", "quantity": 2}},
                            headers=bearer("requester"))
    after = check_response(document, "POST", "/api/v1/tasks/{task_id}/complete", completed)
    done_task = check_response(document, "GET", "/api/v1/tasks/{task_id}",
                               client.get(f"/api/v1/tasks/{submit}", headers=bearer("auditor")))
    assert done_task["state"] == "completed" and done_task["ended_at"]

    message = client.post(f"/api/v1/cases/{case['id']}/messages", json={"name": "Message_None"},
                          headers=bearer("system"))
    check_response(document, "POST", "/api/v1/cases/{case_id}/messages", message)
    cancelled = client.post(f"/api/v1/cases/{case['id']}/cancel", headers={**bearer("system"),
                                                                          "If-Match": after["etag"]})
    assert check_response(document, "POST", "/api/v1/cases/{case_id}/cancel", cancelled)["status"] == "cancelled"
    check_response(document, "GET", "/healthz", client.get("/healthz"))


PROBLEMS = [
    # (method, template, concrete path, role, body (content type, bytes) or None, expected status)
    ("GET", "/api/v1/cases/{case_id}", "/api/v1/cases/nope", "auditor", None, 404),
    ("GET", "/api/v1/cases", "/api/v1/cases", None, None, 401),
    ("GET", "/api/v1/cases", "/api/v1/cases?limit=0", "auditor", None, 422),
    ("GET", "/api/v1/tasks", "/api/v1/tasks?cursor=zzz", "auditor", None, 422),
    ("GET", "/api/v1/tasks/{task_id}", "/api/v1/tasks/nope", "auditor", None, 404),
    ("GET", "/api/v1/definitions/{key}", "/api/v1/definitions/nope", "auditor", None, 404),
    ("GET", "/api/v1/definitions/{key}/versions/{version}/bpmn", "/api/v1/definitions/approval/versions/5/bpmn",
     "auditor", None, 404),
    ("POST", "/api/v1/cases", "/api/v1/cases", "designer", ("application/json", b'{"definition": "approval"}'), 403),
    ("POST", "/api/v1/cases", "/api/v1/cases", "system", ("application/json", b'{"definition": 5}'), 422),
    ("POST", "/api/v1/cases", "/api/v1/cases", "system", ("application/json", b'{"definition"'), 400),
    ("POST", "/api/v1/cases", "/api/v1/cases", "system", ("application/json", b'{"definition": "zz"}'), 404),
    ("POST", "/api/v1/definitions", "/api/v1/definitions", "designer", ("application/xml", b"<html/>"), 422),
    ("POST", "/api/v1/definitions", "/api/v1/definitions", "designer", ("text/plain", b"x"), 415),
    ("POST", "/api/v1/definitions/validate", "/api/v1/definitions/validate", "designer",
     ("application/xml", b"<not-closed>"), 422),
    ("POST", "/api/v1/cases/{case_id}/cancel", "/api/v1/cases/{case}/cancel", "system",
     ("application/json", b'{"reason": "x"}'), 422),
    ("POST", "/api/v1/cases/{case_id}/cancel", "/api/v1/cases/{case}/cancel", "system",
     ("application/json", b'{"reason"'), 400),
    ("POST", "/api/v1/cases/{case_id}/messages", "/api/v1/cases/{case}/messages", "system",
     ("application/json", b'{"name": "Message_None"}'), 409),
    ("POST", "/api/v1/tasks/{task_id}/complete", "/api/v1/tasks/{task}/complete", "system",
     ("application/json", b'{"data": {"item": 1}}'), 422),
    ("POST", "/api/v1/tasks/{task_id}/complete", "/api/v1/tasks/{task}/complete", "service-manager",
     ("application/json", b'{"data": {"item": "x", "quantity": 1}}'), 403),
]


@pytest.mark.parametrize("method, template, path, role, body, status", PROBLEMS,
                         ids=[f"{p[0]} {p[2]} {p[5]}" for p in PROBLEMS])
def test_problem_responses_match_the_problem_schema(client, document, method, template, path, role, body, status):
    assert deploy(client, *APPROVAL).status_code == 201
    case = client.post("/api/v1/cases", json={"definition": "approval"}, headers=bearer("system")).get_json()
    path = path.format(case=case["id"], task=case["tasks"][0]["id"])
    kwargs = {"headers": bearer(role) if role else {}}
    if body is not None:
        kwargs.update(content_type=body[0], data=body[1])
    response = client.open(path, method=method, **kwargs)
    assert response.status_code == status, response.get_data(as_text=True)
    problem = check_response(document, method, template, response)
    assert problem["status"] == status and problem["detail"]


def test_stale_if_match_412_and_repeat_409_match_the_document(client, document):
    assert deploy(client, *APPROVAL).status_code == 201
    case = client.post("/api/v1/cases", json={"definition": "approval"}, headers=bearer("system")).get_json()
    submit = case["tasks"][0]["id"]
    first = client.post(f"/api/v1/tasks/{submit}/complete", json={"data": {"item": "x", "quantity": 1}},
                        headers=bearer("system"))
    check_response(document, "POST", "/api/v1/tasks/{task_id}/complete", first)
    again = client.post(f"/api/v1/tasks/{submit}/complete", json={"data": {"item": "x", "quantity": 1}},
                        headers=bearer("system"))
    assert again.status_code == 409
    check_response(document, "POST", "/api/v1/tasks/{task_id}/complete", again)
    decide = first.get_json()["tasks"][0]["id"]
    stale = client.post(f"/api/v1/tasks/{decide}/complete", json={"data": {"approved": True}},
                        headers={**bearer("system"), "If-Match": case["etag"]})
    assert stale.status_code == 412
    check_response(document, "POST", "/api/v1/tasks/{task_id}/complete", stale)
    cancel = client.post(f"/api/v1/cases/{case['id']}/cancel", headers={**bearer("system"), "If-Match": '"v0"'})
    assert cancel.status_code == 412
    check_response(document, "POST", "/api/v1/cases/{case_id}/cancel", cancel)


def test_too_large_responses_match_the_document(app_factory):
    client = app_factory(USM_MAX_BODY_BYTES=1000).test_client()
    document = client.get("/api/v1/openapi.json").get_json()
    big = json.dumps({"definition": "approval", "data": {"x": "y" * 2000}})
    response = client.post("/api/v1/cases", data=big, content_type="application/json", headers=bearer("system"))
    assert response.status_code == 413
    check_response(document, "POST", "/api/v1/cases", response)
    response = deploy(client, *APPROVAL)
    assert response.status_code == 413
    check_response(document, "POST", "/api/v1/definitions", response)


def test_losing_a_deployment_race_is_a_documented_409(client, document, monkeypatch):
    """Two deployments of a changed definition at once: the loser's insert hits the (key, version)
    constraint. Simulated by hiding the latest version from the deploying transaction."""
    assert deploy(client, *APPROVAL).status_code == 201
    monkeypatch.setattr(store, "find_definition", lambda conn, key, version=None: None)
    changed = (FIXTURES / "approval.bpmn").read_bytes().replace(b'name="Approval"', b'name="Approval 2"')
    files = [("approval.bpmn", changed)] + [(n, (FIXTURES / n).read_bytes()) for n in APPROVAL[1:]]
    response = client.post("/api/v1/definitions", data={"files": [(io.BytesIO(c), n) for n, c in files]},
                           content_type="multipart/form-data", headers=bearer("designer"))
    assert response.status_code == 409, response.get_data(as_text=True)
    problem = check_response(document, "POST", "/api/v1/definitions", response)
    assert "deploy again" in problem["detail"]
