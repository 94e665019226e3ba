"""camunda:assignee, candidate groups and Camunda's own forms: where they name the lane's role they say
what the engine does anyway; otherwise the deployment warns that the lane decides who completes the task,
or that the form is not shown. The case runs, and the lane's role holder completes the task."""
from __future__ import annotations

from tests.conftest import FIXTURES, bearer, deploy

MODEL = "camunda_assignment.bpmn"


def warnings_by_element(items: list[dict]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for warning in items[0]["warnings"]:
        found.setdefault(warning["element_id"], []).append(warning["message"])
    return found


def test_assignments_other_than_the_lane_and_camunda_forms_are_warned_about(client):
    response = deploy(client, MODEL)
    assert response.status_code == 201, response.get_json()
    items = response.get_json()["items"]
    lines = sorted((w["line"], w["element_id"]) for w in items[0]["warnings"])
    assert lines == [(19, "Activity_Register"), (23, "Activity_Approve"), (23, "Activity_Approve"),
                     (26, "Activity_Confirm")]
    found = warnings_by_element(items)
    # candidateGroups="requester" in lane Requester, assignee="Requester" in lane Requester: nothing to say
    [register] = found["Activity_Register"]
    assert "names the form 'embedded:app:forms/register.html', which this engine does not show" in register
    assert "set camunda:formKey to a JSON Schema file of the upload (e.g. register-purchase.schema.json)" in register
    assignee, groups = sorted(found["Activity_Approve"])
    assert "names camunda:assignee 'demo', which this engine does not assign tasks by" in assignee
    assert "its lane 'Service manager' (role 'service-manager') decides who completes the task" in assignee
    assert "names camunda:candidateGroups 'Service manager, accounting'" in groups
    [confirm] = found["Activity_Confirm"]
    assert "defines 1 form field in camunda:formData, which this engine does not show or check" in confirm


def test_a_task_in_no_lane_is_said_to_be_for_the_system_role_only(client):
    text = (FIXTURES / MODEL).read_text()
    start, end = text.index("    <bpmn:laneSet"), text.index("</bpmn:laneSet>") + len("</bpmn:laneSet>\n")
    response = client.post("/api/v1/definitions/validate", data=(text[:start] + text[end:]).encode(),
                           content_type="application/xml", headers=bearer("designer"))
    assert response.status_code == 200
    messages = [w["message"] for w in response.get_json()["warnings"] if w["element_id"] == "Activity_Approve"]
    assert len(messages) == 2
    assert all("it is in no lane, so only the system role may" in message for message in messages)


def test_the_lane_role_completes_the_task_whoever_the_model_assigns_it_to(client):
    assert deploy(client, MODEL).status_code == 201
    case = client.post("/api/v1/cases", json={"definition": "camunda_assignment"},
                       headers=bearer("system")).get_json()
    register = case["tasks"][0]
    assert register["element_id"] == "Activity_Register"
    case = client.post(f"/api/v1/tasks/{register['id']}/complete", json={"data": {"item": "laptop"}},
                       headers=bearer("requester")).get_json()
    [approve] = case["tasks"]
    assert (approve["element_id"], approve["lane"]) == ("Activity_Approve", "Service manager")
    refused = client.post(f"/api/v1/tasks/{approve['id']}/complete", json={"data": {"approved": True}},
                          headers=bearer("requester"))
    assert refused.status_code == 403  # the model's candidate groups do not widen the lane
    case = client.post(f"/api/v1/tasks/{approve['id']}/complete", json={"data": {"approved": True}},
                       headers=bearer("service-manager")).get_json()
    [confirm] = case["tasks"]
    done = client.post(f"/api/v1/tasks/{confirm['id']}/complete", json={"data": {"received": "yes, mostly"}},
                       headers=bearer("requester"))
    assert done.status_code == 200  # no form is checked: the formData field says boolean, this is text
    body = done.get_json()
    assert body["status"] == "completed" and body["data"]["received"] == "yes, mostly"
