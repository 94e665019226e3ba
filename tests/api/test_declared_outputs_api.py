"""Over HTTP: a user task whose model declares an output (an ioSpecification dataOutput) shows it as a
required field of its form, refuses completion without it with a 422 naming the field (the task stays
open, the case has no incident), and completes with it."""
from __future__ import annotations

from tests.conftest import bearer, deploy

SYSTEM = bearer("system")


def test_completing_without_a_declared_output_is_422_and_the_task_stays_open(client):
    assert deploy(client, "declared_outputs/io_spec_user_task.bpmn").status_code == 201
    case = client.post("/api/v1/cases", json={"definition": "assign"}, headers=SYSTEM).get_json()
    [task] = case["tasks"]
    shown = client.get(f"/api/v1/tasks/{task['id']}", headers=SYSTEM).get_json()
    assert shown["form"]["required"] == ["approver"]

    response = client.post(f"/api/v1/tasks/{task['id']}/complete", json={"data": {}}, headers=SYSTEM)
    assert response.status_code == 422
    body = response.get_json()
    assert "the data does not match the form of task 'Assign approver': approver: this field is required" \
        in body["detail"]
    assert client.get(f"/api/v1/tasks/{task['id']}", headers=SYSTEM).get_json()["state"] == "ready"
    after = client.get(f"/api/v1/cases/{case['id']}", headers=SYSTEM).get_json()
    assert after["status"] == "running" and not after.get("incident")

    response = client.post(f"/api/v1/tasks/{task['id']}/complete", json={"data": {"approver": "bob"}},
                           headers=SYSTEM)
    assert response.status_code == 200 and response.get_json()["status"] == "completed"
