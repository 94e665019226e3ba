"""Every operation of /api/v1/openapi.json carries examples (api/openapi_examples.py), and every example is
valid against the schema beside it, so the API reference at /api/v1/docs never shows a body the server would
not send or accept.

What "every operation carries examples" means here: each media type of a request body has one (but a form
of files, multipart/form-data, for which Swagger UI offers a file picker: no example can stand for a file);
each success (2xx) response has one for every media type but binary files (fonts and the like); each error
response has one, an application/problem+json document; and each operation has at least one 4xx problem,
except the few that take no input at all, which have no client mistake to report.

Each example is validated with jsonschema against the schema at its place in the document, by JSON pointer,
so $refs inside it resolve within the document, with date-time checked as RFC 3339.
"""
from __future__ import annotations

import copy

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from tests.api.test_openapi import DOC_URI, FORMATS, operations
from tests.conftest import APPROVAL, bearer, deploy

BINARY = ("font/", "application/octet-stream", "application/vnd.ms-fontobject")
FILE_FORM = "multipart/form-data"
# They take no input (no parameter, no body, no token), so no client mistake of theirs has a 4xx to show.
NO_CLIENT_ERROR = {("/healthz", "get"), ("/metrics", "get"), ("/api/v1/openapi.json", "get"), ("/", "get"),
                   ("/api/v1/docs", "get"), ("/login", "get")}


@pytest.fixture
def document(client) -> dict:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    return response.get_json()


def pointer(*parts: str) -> str:
    return "#/" + "/".join(part.replace("~", "~0").replace("/", "~1") for part in parts)


def media_types(path: str, method: str, operation: dict):
    """(where, location in the document, media type, media type object) of every body of an operation."""
    for media_type, media in operation.get("requestBody", {}).get("content", {}).items():
        yield "request", ("paths", path, method, "requestBody", "content", media_type), media_type, media
    for status, response in operation["responses"].items():
        for media_type, media in response.get("content", {}).items():
            yield status, ("paths", path, method, "responses", status, "content", media_type), media_type, media


def missing_examples(path: str, method: str, operation: dict) -> list[str]:
    where = f"{method.upper()} {path}"
    found = []
    for status, _, media_type, media in media_types(path, method, operation):
        kind = "request" if status == "request" else "success" if status.startswith("2") else "error"
        needed = {"request": media_type != FILE_FORM, "success": not media_type.startswith(BINARY),
                  "error": True}[kind]
        if needed and "example" not in media:
            found.append(f"{where} {status} {media_type}: no example")
    for status, response in operation["responses"].items():
        if status.startswith("2") and not any("example" in media for media in response.get("content", {}).values()):
            found.append(f"{where} {status}: the success response has no example")
    client_errors = [status for status in operation["responses"] if status.startswith("4")]
    if (path, method) in NO_CLIENT_ERROR:
        if client_errors:
            found.append(f"{where} now lists {client_errors}: take it out of NO_CLIENT_ERROR")
    elif not client_errors:
        found.append(f"{where}: no 4xx problem document")
    return found


def example_problems(document: dict) -> list[str]:
    """Every way the document's examples fall short: missing ones, and ones their schema refuses."""
    registry = Registry().with_resource(DOC_URI, DRAFT202012.create_resource(document))
    found = []
    for path, method, operation in operations(document):
        found += missing_examples(path, method, operation)
        for status, location, media_type, media in media_types(path, method, operation):
            if "example" not in media:
                continue
            schema = {"$ref": DOC_URI + pointer(*location, "schema")}
            validator = Draft202012Validator(schema, registry=registry, format_checker=FORMATS)
            for error in sorted(validator.iter_errors(media["example"]), key=lambda e: list(e.absolute_path)):
                at = "/".join(map(str, error.absolute_path)) or "(the body)"
                found.append(f"{method.upper()} {path} {status} {media_type}: {at}: {error.message}")
    return found


def test_every_operation_has_examples_that_match_their_schemas(document):
    problems = example_problems(document)
    assert not problems, (f"{len(problems)} problems with the examples (written in api/openapi_examples.py):\n"
                          + "\n".join(problems))


def test_the_examples_are_many_and_of_every_kind(document):
    """The rules above are not met by having nothing to check: count what they looked at."""
    kinds = {"request": 0, "success": 0, "problem": 0}
    for path, method, operation in operations(document):
        for status, _, media_type, media in media_types(path, method, operation):
            if "example" in media:
                kind = "request" if status == "request" else "problem" if media_type.endswith("problem+json") \
                    else "success"
                kinds[kind] += 1
    operation_count = len(list(operations(document)))
    assert operation_count >= 30
    assert kinds["success"] >= operation_count and kinds["problem"] >= operation_count
    assert kinds["request"] >= 12


def _at(document: dict, path: str, method: str, status: str, media_type: str) -> dict:
    return document["paths"][path][method]["responses"][status]["content"][media_type]


def test_a_drifted_example_fails(document):
    """Each kind of drift is caught: a wrong value, a field the schema forbids, a required field left out,
    a time that is not RFC 3339, an example taken away."""
    drifted = copy.deepcopy(document)
    case = _at(drifted, "/api/v1/cases", "post", "201", "application/json")["example"]
    case["status"] = "sleeping"
    case["created_at"] = "yesterday"
    request = drifted["paths"]["/api/v1/cases"]["post"]["requestBody"]["content"]["application/json"]["example"]
    request["colour"] = "red"
    del _at(drifted, "/api/v1/tasks/{task_id}/complete", "post", "409", "application/problem+json")["example"][
        "detail"]
    del _at(drifted, "/api/v1/definitions", "get", "200", "application/json")["example"]
    problems = "\n".join(example_problems(drifted))
    assert "POST /api/v1/cases 201 application/json: status: 'sleeping' is not one of" in problems
    assert "POST /api/v1/cases 201 application/json: created_at: 'yesterday' is not a 'date-time'" in problems
    assert "POST /api/v1/cases request application/json: (the body): Additional properties are not allowed " \
           "('colour' was unexpected)" in problems
    assert "POST /api/v1/tasks/{task_id}/complete 409 application/problem+json: (the body): 'detail' is a " \
           "required property" in problems
    assert "GET /api/v1/definitions 200 application/json: no example" in problems


def test_an_operation_without_a_4xx_example_is_reported(document):
    drifted = copy.deepcopy(document)
    responses = drifted["paths"]["/api/v1/cases/{case_id}"]["get"]["responses"]
    for status in [status for status in responses if status.startswith("4")]:
        del responses[status]
    assert "GET /api/v1/cases/{case_id}: no 4xx problem document" in example_problems(drifted)


def test_the_request_examples_are_accepted_by_the_server(client, document):
    """Beyond their schemas: "Try it out" with the examples as they stand does what they say."""
    bodies = {path: item["post"]["requestBody"]["content"] for path, item in document["paths"].items()
              if "post" in item and "requestBody" in item["post"]}
    validated = client.post("/api/v1/definitions/validate", data=bodies["/api/v1/definitions/validate"][
        "application/xml"]["example"], content_type="application/xml", headers=bearer("designer"))
    assert validated.status_code == 200, validated.get_data(as_text=True)
    assert deploy(client, *APPROVAL).status_code == 201
    started = client.post("/api/v1/cases", json=bodies["/api/v1/cases"]["application/json"]["example"],
                          headers=bearer("system"))
    assert started.status_code == 201, started.get_data(as_text=True)
    assert started.get_json()["business_key"] == "REQ-1"


def test_the_problem_examples_carry_the_status_they_document(document):
    for path, method, operation in operations(document):
        for status, response in operation["responses"].items():
            media = response.get("content", {}).get("application/problem+json")
            if media:
                assert media["example"]["status"] == int(status), (method, path, status)
