"""USM_MAX_INSTANCES as a client meets it: a deploy refused with the located problem, a case started in
error with the incident, and a retry with smaller data that carries on."""
from __future__ import annotations

import io

from tests.conftest import FIXTURES, bearer, deploy


def test_a_client_sees_the_ceiling_at_deploy_and_as_an_incident(app_factory):
    client = app_factory(USM_MAX_INSTANCES="5").test_client()

    literal = (FIXTURES / "multi_instance.bpmn").read_bytes().replace(b">count<", b">6<")
    refused = client.post("/api/v1/definitions", content_type="multipart/form-data", headers=bearer("designer"),
                          data={"files": [(io.BytesIO(literal), "six.bpmn")]})
    assert refused.status_code == 422
    [problem] = refused.get_json()["errors"]
    assert (problem["file"], problem["line"], problem["element_id"]) == ("six.bpmn", 9, "Activity_Review")
    assert "asks for 6 instances" in problem["message"] and "USM_MAX_INSTANCES" in problem["message"]

    assert deploy(client, "multi_instance.bpmn").status_code == 201
    started = client.post("/api/v1/cases", json={"definition": "multi_instance", "data": {"count": 100_000}},
                          headers=bearer("system"))
    assert started.status_code == 201
    case = started.get_json()
    assert case["status"] == "error" and case["tasks"] == []
    assert case["incident"]["element_id"] == "Activity_Review"
    assert "asks for 100000 instances" in case["incident"]["message"]
    assert "limit of 5 (setting USM_MAX_INSTANCES)" in case["incident"]["message"]
    listed = client.get(f"/api/v1/tasks?case={case['id']}", headers=bearer("admin")).get_json()
    assert listed["items"] == []

    retried = client.post(f"/api/v1/cases/{case['id']}/retry", json={"data": {"count": 2}},
                          headers=bearer("system"))
    assert retried.status_code == 200
    case = retried.get_json()
    assert case["status"] == "running" and len(case["tasks"]) == 2
    for task in case["tasks"]:
        done = client.post(f"/api/v1/tasks/{task['id']}/complete", json={"data": {}}, headers=bearer("system"))
        assert done.status_code == 200
    assert done.get_json()["status"] == "completed"
