"""From a requirement to the activities that evidence it, and from there to every case that ran them:
two requests for an auditor."""
from __future__ import annotations

from tests.conftest import APPROVAL, FIXTURES, bearer, deploy

AUDITOR = bearer("auditor")


def run_case(client, approved: bool) -> str:
    case = client.post("/api/v1/cases", json={"definition": "approval"}, headers=bearer("system")).get_json()
    case = client.post(f"/api/v1/tasks/{case['tasks'][0]['id']}/complete",
                       json={"data": {"item": "pen", "quantity": 1}}, headers=bearer("system")).get_json()
    client.post(f"/api/v1/tasks/{case['tasks'][0]['id']}/complete", json={"data": {"approved": approved}},
                headers=bearer("system"))
    return case["id"]


def test_auditor_goes_from_a_clause_to_the_evidence_in_two_requests(client):
    assert deploy(client, *APPROVAL, "compliance.toml").status_code == 201
    approved, rejected = run_case(client, True), run_case(client, False)

    listed = client.get("/api/v1/compliance", headers=AUDITOR)
    assert listed.status_code == 200
    requirement = next(r for r in listed.get_json()["items"] if r["id"] == "8.1")
    assert requirement["ref"] == "compliance:8.1" and requirement["standard"] == "ISO/IEC 20000-1:2018"
    assert [(a["element_id"], a["name"], a["lane"]) for a in requirement["activities"]] == [
        ("Activity_Decide", "Decide", "Service manager"), ("Activity_Record", "Record approval", "Service manager")]

    evidence = client.get(f"/api/v1/compliance/{requirement['ref']}/cases", headers=AUDITOR)
    assert evidence.status_code == 200
    items = {item["case_id"]: item for item in evidence.get_json()["items"]}
    assert set(items) == {approved, rejected}
    assert items[approved]["executed"] == ["Activity_Decide", "Activity_Record"]
    assert items[rejected]["executed"] == ["Activity_Decide"]
    trail = client.get(items[approved]["trail"], headers=AUDITOR)
    assert trail.status_code == 200 and any(e["element_id"] == "Activity_Record" for e in trail.get_json()["items"])
    # by the bare clause number too, when only one standard uses it
    assert client.get("/api/v1/compliance/8.1/cases", headers=AUDITOR).status_code == 200


def test_an_unknown_activity_is_a_deploy_time_error_and_nothing_is_deployed(client):
    text = (FIXTURES / "compliance.toml").read_text().replace("approval/Activity_Record", "approval/Activity_Nope")
    files = {"files": [((FIXTURES / name).open("rb"), name) for name in APPROVAL]}
    import io

    files["files"].append((io.BytesIO(text.encode()), "compliance/iso20000.toml"))
    response = client.post("/api/v1/definitions", data=files, content_type="multipart/form-data",
                           headers=bearer("designer"))
    assert response.status_code == 422
    problem = response.get_json()["errors"][0]
    assert problem["file"] == "compliance/iso20000.toml" and problem["line"] == 6
    assert "Activity_Nope" in problem["message"]
    assert client.get("/api/v1/definitions", headers=AUDITOR).get_json()["items"] == []
    assert client.get("/api/v1/compliance", headers=AUDITOR).get_json()["items"] == []


def test_unknown_requirement_is_404(client):
    response = client.get("/api/v1/compliance/9.9/cases", headers=AUDITOR)
    assert response.status_code == 404 and "9.9" in response.get_json()["detail"]


def test_the_shipped_definitions_and_their_cross_reference_deploy_together(engine):
    from usm_engine.api.cli import collect_files

    root = FIXTURES.parents[1] / "definitions"
    created, items = engine.deploy(collect_files((str(root),)), "designer")
    assert created and len(items) >= 14
    refs = {r["ref"] for r in engine.list_compliance()}
    assert any(ref.startswith("iso20000:") for ref in refs) and any(ref.startswith("iso27001:") for ref in refs)
