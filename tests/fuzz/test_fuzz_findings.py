"""Regressions for what the fuzzers found in api/, each pinned with the smallest request that showed it."""
from __future__ import annotations

import io
from pathlib import Path

import pytest

from usm_engine.api.routes.diagram import BPMN_JS, USM_ASSETS
from tests.conftest import APPROVAL, bearer, deploy

SYSTEM = bearer("system")


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:500])
    assert response.mimetype == "application/problem+json"
    return response.get_json()


@pytest.mark.parametrize("body", [
    b'{"definition": "approval", "data": {"n": ' + b"7" * 5000 + b"}}",
    b'{"definition": "approval", "version": -' + b"1" * 4301 + b"}",
], ids=["in data", "as version"])
def test_an_integer_longer_than_python_reads_is_a_400_not_a_500(client, body):
    # Python refuses int() of more than 4300 digits with ValueError, which json_body did not catch.
    problem = assert_problem(client.post("/api/v1/cases", data=body, content_type="application/json",
                                         headers=SYSTEM), 400)
    assert "digits" in problem["detail"] and "string" in problem["detail"]


def test_an_integer_of_4300_digits_is_still_read(client):
    assert deploy(client, *APPROVAL).status_code == 201
    body = b'{"definition": "approval", "version": 1, "data": {"n": ' + b"9" * 4300 + b"}}"
    response = client.post("/api/v1/cases", data=body, content_type="application/json", headers=SYSTEM)
    assert response.status_code == 201, response.get_data(as_text=True)[:500]


@pytest.mark.parametrize("version", [2**31, 2**63, 2**64, 10**30])
def test_a_version_beyond_the_database_integer_is_not_found(client, version):
    # SQLite raised OverflowError (>= 2**63) and PostgreSQL DataError (>= 2**31): a 500 either way.
    assert deploy(client, *APPROVAL).status_code == 201
    problem = assert_problem(client.get(f"/api/v1/definitions/approval/versions/{version}/bpmn",
                                        headers=SYSTEM), 404)
    assert str(version) in problem["detail"]
    assert client.get("/api/v1/definitions/approval/versions/2147483647/bpmn", headers=SYSTEM).status_code == 404
    assert client.get("/api/v1/definitions/approval/versions/1/bpmn", headers=SYSTEM).status_code == 200


def _asset_files():
    for route, root in (("/assets/usm", USM_ASSETS), ("/assets/bpmn-js", BPMN_JS)):
        for path in sorted(Path(root).rglob("*")):
            if path.is_file():
                yield f"{route}/{path.relative_to(root).as_posix()}"


def test_every_asset_is_served_with_a_documented_media_type(client):
    # The document said application/octet-stream; the files came as text/javascript, text/css, font/...
    document = client.get("/api/v1/openapi.json").get_json()
    urls = list(_asset_files())
    assert any(url.startswith("/assets/usm/") for url in urls)
    for url in urls:
        template = "/assets/usm/{filename}" if url.startswith("/assets/usm/") else "/assets/bpmn-js/{filename}"
        documented = document["paths"][template]["get"]["responses"]["200"]["content"]
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.mimetype in documented, (url, response.mimetype, sorted(documented))


def test_an_idempotency_key_with_nul_is_a_422(client):
    # PostgreSQL refused the NUL when the key was looked up: a 500 (SQLite took it).
    assert deploy(client, *APPROVAL).status_code == 201
    problem = assert_problem(client.post("/api/v1/cases", json={"definition": "approval"},
                                         headers={**SYSTEM, "Idempotency-Key": "a\x00b"}), 422)
    assert problem["errors"][0]["field"] == "Idempotency-Key"


@pytest.mark.parametrize("name", ["a\x00b.bpmn", "é" * 300 + ".bpmn"], ids=["NUL", "300 characters"])
@pytest.mark.parametrize("path", ["/api/v1/definitions", "/api/v1/definitions/validate"])
@pytest.mark.parametrize("how", ["multipart", "query"])
def test_an_upload_name_the_database_cannot_store_is_a_422(client, name, path, how):
    # PostgreSQL refused the NUL or the 256th character when the definition row was written: a 500.
    xml = (Path(__file__).parent / "open_form.bpmn").read_bytes()
    if how == "multipart":
        response = client.post(path, data={"files": [(io.BytesIO(xml), name)]}, content_type="multipart/form-data",
                               headers=bearer("designer"))
    else:
        response = client.post(path, query_string={"filename": name}, data=xml, content_type="application/xml",
                               headers=bearer("designer"))
    assert "file name" in assert_problem(response, 422)["detail"]
    assert client.get("/api/v1/definitions", headers=SYSTEM).get_json()["items"] == []


def test_an_upload_name_of_255_characters_is_stored(client):
    xml = (Path(__file__).parent / "open_form.bpmn").read_bytes()
    name = "é" * 250 + ".bpmn"
    response = client.post("/api/v1/definitions", data={"files": [(io.BytesIO(xml), name)]},
                           content_type="multipart/form-data", headers=bearer("designer"))
    assert response.status_code == 201, response.get_data(as_text=True)[:500]


@pytest.mark.parametrize("body", [{"worker": "w1", "topics": ["a\x00b"]}, {"worker": "w\x00", "topics": ["a"]}],
                         ids=["topic", "worker"])
def test_a_nul_in_what_a_worker_locks_is_a_422(client, body):
    # PostgreSQL refused the NUL in a topic when the tasks were looked up: a 500 (SQLite took it).
    response = client.post("/api/v1/external-tasks/lock", json=body, headers=bearer("system"))
    assert response.status_code == 422
    assert "NUL" in response.get_json()["errors"][0]["message"]
