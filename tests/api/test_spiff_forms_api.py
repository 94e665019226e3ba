"""Over HTTP, forms named the SpiffWorkflow modeler's way (spiffworkflow:property formJsonSchemaFilename): the
task carries the JSON Schema file uploaded with the diagram, data that does not match it is refused with a
422 naming the field, and both branches of the gateway after it run; a diagram whose form file did not come
with it still deploys, with a located warning, and its task takes any data."""
from __future__ import annotations

import io

from tests.conftest import FIXTURES, bearer

SYSTEM = bearer("system")
FORMS = ("leave-request-schema.json", "approval-schema.json")


def _deploy(client, names: tuple[str, ...]):
    files = [(io.BytesIO((FIXTURES / "spiff_forms" / name).read_bytes()), name) for name in names]
    return client.post("/api/v1/definitions", data={"files": files}, content_type="multipart/form-data",
                       headers=bearer("designer"))


def _asked(client, days: int) -> dict:
    case = client.post("/api/v1/cases", json={"definition": "spiff_leave"}, headers=SYSTEM).get_json()
    [task] = case["tasks"]
    shown = client.get(f"/api/v1/tasks/{task['id']}", headers=SYSTEM).get_json()
    assert shown["form"]["required"] == ["days", "reason"]
    refused = client.post(f"/api/v1/tasks/{task['id']}/complete", json={"data": {"days": "two", "reason": "sea"}},
                          headers=SYSTEM)
    assert refused.status_code == 422 and "days" in refused.get_json()["detail"]
    done = client.post(f"/api/v1/tasks/{task['id']}/complete", json={"data": {"days": days, "reason": "sea"}},
                       headers=SYSTEM)
    assert done.status_code == 200, done.get_json()
    return done.get_json()


def test_a_spiff_modeler_form_is_the_tasks_form_on_both_branches(client):
    deployed = _deploy(client, ("leave.bpmn", *FORMS))
    assert deployed.status_code == 201, deployed.get_json()
    assert deployed.get_json()["items"][0]["warnings"] == []

    short = _asked(client, days=2)
    assert short["status"] == "completed" and short["data"]["days"] == 2

    long = _asked(client, days=10)
    [approve] = long["tasks"]
    assert approve["name"] == "Approve the leave"
    refused = client.post(f"/api/v1/tasks/{approve['id']}/complete", json={"data": {}}, headers=SYSTEM)
    assert refused.status_code == 422 and "approved" in refused.get_json()["detail"]
    approved = client.post(f"/api/v1/tasks/{approve['id']}/complete", json={"data": {"approved": True}},
                           headers=SYSTEM)
    assert approved.status_code == 200 and approved.get_json()["status"] == "completed"


def test_a_spiff_modeler_form_missing_from_the_upload_is_a_located_warning_and_the_task_takes_any_data(client):
    deployed = _deploy(client, ("leave.bpmn", "approval-schema.json"))
    assert deployed.status_code == 201, deployed.get_json()
    warning, unset = deployed.get_json()["items"][0]["warnings"]
    assert "'leave-request-schema.json'" in warning["message"] and "not in the upload" in warning["message"]
    assert (warning["file"], warning["line"], warning["element_id"]) == ("leave.bpmn", 12, "Activity_Ask")
    # without the form, nothing in the upload says that 'days' is entered there
    assert unset["element_id"] == "Gateway_Long" and "reads 'days'" in unset["message"]

    case = client.post("/api/v1/cases", json={"definition": "spiff_leave"}, headers=SYSTEM).get_json()
    [task] = case["tasks"]
    done = client.post(f"/api/v1/tasks/{task['id']}/complete", json={"data": {"days": 7, "note": "anything"}},
                       headers=SYSTEM)
    assert done.status_code == 200 and [t["name"] for t in done.get_json()["tasks"]] == ["Approve the leave"]
