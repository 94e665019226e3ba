"""Migrating cases over HTTP: POST /api/v1/cases/{id}/migrate and POST /api/v1/cases/migrate, their
refusals as problem documents, the diagram page of a migrated case, and `usm cases migrate`."""
from __future__ import annotations

import io
import json

import pytest
from click.testing import CliRunner

from usm_engine.api.cli import main
from tests.api.test_openapi import check_response
from tests.conftest import APPROVAL, FIXTURES, bearer, deploy
from tests.engine.test_case_migration import (ACTIVE, START_DATA, approval_without_submit_and_record,
                                              escalation_files, escalation_renamed, escalation_with_triage,
                                              escalation_without_the_active_step)

SINGLE, BULK = "/api/v1/cases/{case_id}/migrate", "/api/v1/cases/migrate"


def upload(client, files: list[tuple[str, bytes]]):
    data = {"files": [(io.BytesIO(content), name) for name, content in files]}
    response = client.post("/api/v1/definitions", data=data, content_type="multipart/form-data",
                           headers=bearer("designer"))
    assert response.status_code in (200, 201), response.get_json()
    return response


@pytest.fixture
def document(client) -> dict:
    return client.get("/api/v1/openapi.json").get_json()


@pytest.fixture
def escalated(client):
    upload(client, escalation_files())
    response = client.post("/api/v1/cases", json={"definition": "usm-escalation", "data": START_DATA},
                           headers=bearer("system"))
    assert response.status_code == 201
    return response.get_json()


def migrate(client, case_id: str, body, role: str = "system", **headers):
    return client.post(f"/api/v1/cases/{case_id}/migrate", json=body, headers={**bearer(role), **headers})


def test_a_step_added_before_the_active_one_over_http(client, document, escalated):
    upload(client, escalation_files(escalation_with_triage()))
    dry = migrate(client, escalated["id"], {"to_version": 2, "dry_run": True})
    assert check_response(document, "POST", SINGLE, dry)["result"] == "would_migrate"
    response = migrate(client, escalated["id"], {"to_version": 2}, **{"If-Match": escalated["etag"]})
    report = check_response(document, "POST", SINGLE, response)
    assert report["result"] == "migrated" and report["case"]["version"] == 2
    assert response.headers["ETag"] == report["case"]["etag"] != escalated["etag"]
    assert report["case"]["tasks"] == escalated["tasks"] and report["case"]["data"] == escalated["data"]
    trail = client.get(f"/api/v1/cases/{escalated['id']}/trail?type=case_migrated", headers=bearer("auditor"))
    [event] = trail.get_json()["items"]
    assert event["details"] == {"from_version": 1, "to_version": 2, "mapping": {}} and event["actor"] == "system-user"


def test_the_active_step_removed_is_a_409_naming_it_and_the_dry_run_lists_it(client, document, escalated):
    upload(client, escalation_files(escalation_without_the_active_step()))
    dry = check_response(document, "POST", SINGLE, migrate(client, escalated["id"], {"to_version": 2, "dry_run": True}))
    assert dry["result"] == "refused" and [m["element_id"] for m in dry["missing"]] == [ACTIVE]
    refused = migrate(client, escalated["id"], {"to_version": 2})
    assert refused.status_code == 409
    problem = check_response(document, "POST", SINGLE, refused)
    assert "'Handle escalation' (Activity_HandleEscalation)" in problem["detail"] and "mapping" in problem["detail"]
    assert problem["errors"][0]["element_id"] == ACTIVE and problem["errors"][0]["state"] == "ready"
    assert client.get(f"/api/v1/cases/{escalated['id']}", headers=bearer("auditor")).get_json()["version"] == 1


def test_a_renamed_step_with_a_mapping_completes_on_the_new_version(client, escalated):
    upload(client, escalation_files(escalation_renamed()))
    mapping = {ACTIVE: "Activity_ResolveEscalation"}
    case = migrate(client, escalated["id"], {"to_version": 2, "mapping": mapping}).get_json()["case"]
    task = case["tasks"][0]
    assert task["id"] == escalated["tasks"][0]["id"] and task["element_id"] == "Activity_ResolveEscalation"
    listed = client.get("/api/v1/tasks?definition=usm-escalation", headers=bearer("admin")).get_json()["items"]
    assert [t["element_id"] for t in listed] == ["Activity_ResolveEscalation"]
    done = client.post(f"/api/v1/tasks/{task['id']}/complete", json={"data": {"action": "inform customer"}},
                       headers=bearer("system"))
    assert done.status_code == 200 and done.get_json()["status"] == "completed" and done.get_json()["version"] == 2

    page = client.get(f"/api/v1/cases/{escalated['id']}/diagram", headers=bearer("auditor"))
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert "Ran on v1 until " in html and "then v2." in html
    assert "Activity_HandleEscalation → Activity_ResolveEscalation" in html
    payload = json.loads(html.split('id="case-data">', 1)[1].split("</script>", 1)[0])
    [move] = payload["migrations"]
    assert (move["from_version"], move["to_version"], move["mapping"]) == (1, 2, mapping)
    drawn = payload["diagrams"][0]
    assert drawn["version"] == 2 and "StartEvent_EscalationRaised" in drawn["earlier"]
    assert "Activity_ResolveEscalation" in drawn["executed"] and "Activity_ResolveEscalation" not in drawn["earlier"]
    assert 'data-element="Activity_ResolveEscalation"' in html  # v1's trail links find the renamed element
    assert 'data-element="Activity_HandleEscalation"' not in html
    assert "<script>" not in html.replace('<script type="application/json"', "")  # still no inline script


def test_suspended_and_incident_cases_over_http(client, escalated):
    assert client.post(f"/api/v1/cases/{escalated['id']}/suspend", headers=bearer("system")).status_code == 200
    upload(client, escalation_files(escalation_with_triage()))
    moved = migrate(client, escalated["id"], {"to_version": 2}).get_json()["case"]
    assert moved["status"] == "suspended" and moved["version"] == 2
    resumed = client.post(f"/api/v1/cases/{escalated['id']}/resume", headers=bearer("system")).get_json()
    assert resumed["status"] == "running" and resumed["tasks"] == escalated["tasks"]


def test_bulk_with_a_filter_migrates_and_refuses_case_by_case(client, document):
    assert deploy(client, *APPROVAL).status_code == 201
    start = lambda: client.post("/api/v1/cases", json={"definition": "approval"}, headers=bearer("system")).get_json()  # noqa: E731
    at_submit, at_decide, suspended = start(), start(), start()
    for case in (at_decide, suspended):
        client.post(f"/api/v1/tasks/{case['tasks'][0]['id']}/complete", json={"data": {"item": "pen", "quantity": 1}},
                    headers=bearer("system"))
    client.post(f"/api/v1/cases/{suspended['id']}/suspend", headers=bearer("system"))
    upload(client, [("approval.bpmn", approval_without_submit_and_record()),
                    *[(name, (FIXTURES / name).read_bytes()) for name in APPROVAL[1:]]])
    body = {"filter": {"definition": "approval", "version": 1, "status": "running"}, "to_version": 2, "dry_run": True}
    dry = check_response(document, "POST", BULK, client.post(BULK, json=body, headers=bearer("system")))
    assert {i["case_id"]: i["result"] for i in dry["items"]} == {at_submit["id"]: "refused",
                                                               at_decide["id"]: "would_migrate"}
    assert dry["migrated"] == 0 and dry["refused"] == 1 and dry["next"] is None
    first = client.post(BULK, json={**body, "limit": 1}, headers=bearer("system")).get_json()
    second = client.post(BULK, json={**body, "limit": 1, "cursor": first["next"]}, headers=bearer("system")).get_json()
    assert [i["case_id"] for i in first["items"] + second["items"]] == [at_submit["id"], at_decide["id"]]
    assert first["next"] and second["next"] is None
    waiting = {**body, "dry_run": False, "filter": {"definition": "approval", "waiting_at": "Activity_Decide"}}
    done = check_response(document, "POST", BULK, client.post(BULK, json=waiting, headers=bearer("system")))
    assert sorted(i["case_id"] for i in done["items"]) == sorted([at_decide["id"], suspended["id"]])
    assert done["migrated"] == 2
    states = {c["id"]: (c["version"], c["status"]) for c in client.get(
        "/api/v1/cases?definition=approval", headers=bearer("auditor")).get_json()["items"]}
    assert states == {at_submit["id"]: (1, "running"), at_decide["id"]: (2, "running"),
                      suspended["id"]: (2, "suspended")}
    rest = client.post(BULK, json={**waiting, "filter": {"definition": "approval"}, "limit": 1},
                       headers=bearer("system")).get_json()
    assert rest["items"][0]["result"] == "refused" and "Activity_Submit" in rest["items"][0]["reasons"][0]
    assert len(rest["items"]) == 1 and rest["next"] is None  # cases already on version 2 are not considered


@pytest.mark.parametrize("path, body, status", [
    (SINGLE.format(case_id="nope"), {"to_version": 2}, 404),
    ("{case}", {"to_version": 9}, 404),
    (BULK, {"filter": {"definition": "usm-escalation"}, "to_version": 9}, 404),
    (BULK, {"filter": {"definition": "nothing-deployed"}, "to_version": 1}, 404),
    ("{case}", {"to_version": 1}, 409),
    ("{case}", {"to_version": 2, "mapping": {ACTIVE: "Activity_Nowhere"}}, 422),
    ("{case}", {"to_version": 2, "mapping": {"Activity_Typo": "Activity_ResolveEscalation"}}, 422),
    ("{case}", {"to_version": "2"}, 422),
    ("{case}", {"mapping": {}}, 422),
    ("{case}", {"to_version": 2, "mapping": {ACTIVE: 5}}, 422),
    ("{case}", {"to_version": 2, "extra": True}, 422),
    (BULK, {"to_version": 2}, 422),
    (BULK, {"filter": {"definition": "usm-escalation", "status": "completed"}, "to_version": 2}, 422),
    (BULK, {"filter": {"definition": "usm-escalation"}, "to_version": 2, "limit": 100000}, 422),
])
def test_refusals_are_problem_documents(client, document, escalated, path, body, status):
    upload(client, escalation_files(escalation_renamed()))
    path = SINGLE.format(case_id=escalated["id"]) if path == "{case}" else path
    response = client.post(path, json=body, headers=bearer("system"))
    assert response.status_code == status, response.get_data(as_text=True)
    problem = check_response(document, "POST", BULK if path == BULK else SINGLE, response)
    assert problem["detail"]


def test_malformed_json_is_400_and_a_stale_if_match_412(client, escalated):
    upload(client, escalation_files(escalation_with_triage()))
    path = SINGLE.format(case_id=escalated["id"])
    assert client.post(path, data=b'{"to_version": ', content_type="application/json",
                       headers=bearer("system")).status_code == 400
    assert client.post(BULK, data=b"", content_type="application/json", headers=bearer("system")).status_code == 400
    assert migrate(client, escalated["id"], {"to_version": 2}, **{"If-Match": '"v0"'}).status_code == 412
    assert migrate(client, escalated["id"], {"to_version": 2}, role="auditor").status_code == 403


def test_a_finished_case_is_refused_with_409(client, escalated):
    upload(client, escalation_files(escalation_with_triage()))
    task = escalated["tasks"][0]["id"]
    client.post(f"/api/v1/tasks/{task}/complete", json={"data": {"action": "expedite"}}, headers=bearer("system"))
    refused = migrate(client, escalated["id"], {"to_version": 2, "dry_run": True})
    assert refused.status_code == 409 and "already completed" in refused.get_json()["detail"]


def test_usm_cases_migrate_on_the_command_line(client, escalated, monkeypatch, database_url):
    upload(client, escalation_files(escalation_renamed()))
    monkeypatch.setenv("USM_DATABASE_URL", database_url)
    refused = CliRunner().invoke(main, ["cases", "migrate", escalated["id"], "--to-version", "2"])
    assert refused.exit_code == 1 and "Activity_HandleEscalation" in refused.output
    dry = CliRunner().invoke(main, ["cases", "migrate", "--definition", "usm-escalation", "--to-version", "2",
                                    "--map", f"{ACTIVE}=Activity_ResolveEscalation", "--dry-run"])
    assert dry.exit_code == 0 and dry.output.strip().endswith("v1 -> v2: would migrate"), dry.output
    done = CliRunner().invoke(main, ["cases", "migrate", escalated["id"], "--to-version", "2",
                                     "--map", f"{ACTIVE}=Activity_ResolveEscalation", "--actor", "ops"])
    assert done.exit_code == 0 and done.output.strip().endswith("v1 -> v2: migrated"), done.output
    case = client.get(f"/api/v1/cases/{escalated['id']}", headers=bearer("auditor")).get_json()
    assert case["version"] == 2 and case["tasks"][0]["element_id"] == "Activity_ResolveEscalation"
    bad = CliRunner().invoke(main, ["cases", "migrate", escalated["id"], "--to-version", "1", "--map", "x"])
    assert bad.exit_code == 2 and "OLD_ID=NEW_ID" in bad.output
