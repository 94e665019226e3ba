"""External tasks over HTTP: what a worker process does, and what it is told when it gets it wrong."""
from __future__ import annotations

from tests.conftest import FIXTURES, bearer, deploy

SYSTEM = bearer("system")


def lock(client, body, status=200):
    response = client.post("/api/v1/external-tasks/lock", json=body, headers=SYSTEM)
    assert response.status_code == status, response.get_json()
    return response.get_json()


def test_a_worker_fetches_completes_and_fails_over_http(client):
    assert deploy(client, "external.bpmn").status_code == 201
    case = client.post("/api/v1/cases", json={"definition": "external", "data": {"change": "x"}},
                       headers=SYSTEM).get_json()
    listed = client.get("/api/v1/tasks?topic=cmdb", headers=SYSTEM).get_json()["items"]
    assert [(t["element_id"], t["topic"], t["locked_by"]) for t in listed] == [("Activity_UpdateCmdb", "cmdb", None)]
    [job] = lock(client, {"worker": "w1", "topics": ["cmdb"], "max_tasks": 5, "lock_seconds": 30})["items"]
    assert job["case_id"] == case["id"] and job["data"] == {"change": "x"} and job["locked_by"] == "w1"
    assert client.get(f"/api/v1/tasks/{job['id']}", headers=SYSTEM).get_json()["locked_by"] == "w1"

    # the holder of the task's lane (Requester) may not complete it, and without the lock nobody may
    response = client.post(f"/api/v1/tasks/{job['id']}/complete", json={"data": {}}, headers=bearer("requester"))
    assert response.status_code == 403
    response = client.post(f"/api/v1/tasks/{job['id']}/complete", json={"data": {}}, headers=SYSTEM)
    assert response.status_code == 409 and "lock it first" in response.get_json()["detail"]
    response = client.post(f"/api/v1/tasks/{job['id']}/complete", json={"data": {}, "worker": "w2"}, headers=SYSTEM)
    assert response.status_code == 409 and "locked by worker 'w1'" in response.get_json()["detail"]

    response = client.post(f"/api/v1/tasks/{job['id']}/fail", json={"worker": "w1", "message": "CMDB down"},
                           headers=SYSTEM)
    assert response.status_code == 200 and response.get_json()["status"] == "error"
    assert client.post(f"/api/v1/cases/{case['id']}/retry", json={}, headers=SYSTEM).get_json()["status"] == "running"
    [job] = lock(client, {"worker": "w2", "topics": ["cmdb"]})["items"]
    response = client.post(f"/api/v1/tasks/{job['id']}/complete", json={"data": {"ci": "SW-1"}, "worker": "w2"},
                           headers=SYSTEM)
    assert response.status_code == 200 and response.get_json()["tasks"][0]["name"] == "Confirm"


def test_bad_lock_and_fail_requests_are_4xx(client):
    for body in ({}, {"worker": "w1"}, {"worker": "w1", "topics": []}, {"worker": "", "topics": ["a"]},
                 {"worker": "w1", "topics": ["a"], "max_tasks": 0}, {"worker": "w1", "topics": ["a"], "max_tasks": 101},
                 {"worker": "w1", "topics": ["a"], "lock_seconds": 0}, {"worker": "w1", "topics": ["a"], "x": 1},
                 {"worker": "w1", "topics": "cmdb"}):
        lock(client, body, 422)
    response = client.post("/api/v1/tasks/nope/fail", json={"worker": "w1", "message": "m"}, headers=SYSTEM)
    assert response.status_code == 404
    response = client.post("/api/v1/tasks/nope/fail", json={"worker": "w1"}, headers=SYSTEM)
    assert response.status_code == 422


def test_a_completion_the_model_fails_is_answered_with_the_incident_not_a_server_error(client):
    # The service task declares an output the worker leaves out: the case's incident, a 200, never a 500.
    text = (FIXTURES / "external.bpmn").read_text().replace(
        '<bpmn:incoming>F1</bpmn:incoming><bpmn:outgoing>F2</bpmn:outgoing></bpmn:serviceTask>',
        '<bpmn:incoming>F1</bpmn:incoming><bpmn:outgoing>F2</bpmn:outgoing><bpmn:ioSpecification>'
        '<bpmn:dataOutput id="ci" name="ci" /><bpmn:inputSet /><bpmn:outputSet><bpmn:dataOutputRefs>ci'
        '</bpmn:dataOutputRefs></bpmn:outputSet></bpmn:ioSpecification></bpmn:serviceTask>')
    deployed = client.post("/api/v1/definitions", data=text.encode(), content_type="application/xml",
                           headers=bearer("designer"))
    assert deployed.status_code in (200, 201), deployed.get_json()
    client.post("/api/v1/cases", json={"definition": "external"}, headers=SYSTEM)
    [job] = lock(client, {"worker": "w1", "topics": ["cmdb"]})["items"]
    response = client.post(f"/api/v1/tasks/{job['id']}/complete", json={"data": {}, "worker": "w1"}, headers=SYSTEM)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["status"] == "error" and response.get_json()["incident"]["task_id"] == job["id"]
