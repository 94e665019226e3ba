"""Items 5 and 6: the USM workflows end to end through the HTTP API (see scenarios.py), plus the
form contract (422) and lane roles."""
from __future__ import annotations

import pytest

from engine.clock import FixedClock
from tests.conftest import bearer
from tests.definitions.scenarios import SCENARIOS
from tests.definitions.support import REQUEST, Driver, deploy_definitions, record_coverage


def run_scenario(app_factory, name: str) -> None:
    function, needs_clock = SCENARIOS[name]
    clock = FixedClock() if needs_clock else None
    app = app_factory(clock=clock)
    client = app.test_client()
    deploy_definitions(client)
    driver = Driver(client, app)
    driver.clock = clock
    function(driver)
    record_coverage(driver, name)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario(app_factory, name):
    run_scenario(app_factory, name)


@pytest.fixture
def usm(app):
    client = app.test_client()
    deploy_definitions(client)
    return Driver(client, app)


def test_every_definition_deploys_with_usm_serve_file_names(usm):
    keys = {d["key"] for d in usm.get("/api/v1/definitions")["items"]}
    assert {"usm-agree", "usm-change", "usm-recover", "usm-operate", "usm-improve", "usm-call",
            "usm-wf1-wish", "usm-wf2-rfc", "usm-wf3-incident-change", "usm-wf4-incident-operate",
            "usm-wf5-service-request", "usm-wf6-risk-agreement", "usm-wf7-risk-change",
            "usm-wf8-risk-operate"} <= keys


def test_forms_reject_what_the_decision_cannot_use(usm):
    case = usm.start("usm-agree")
    at = usm.drive(case["id"], until="Activity_Negotiate")
    task = usm.get(f"/api/v1/tasks/{at['tasks'][0]['id']}")
    assert task["form"]["properties"]["offer_agreed"]["type"] == "boolean"
    for bad in ({}, {"offer_agreed": "maybe"}, {"offer_agreed": True},  # agreed needs the RFC to submit
                {"offer_agreed": False, "surprise": 1}):
        response = usm.client.post(f"/api/v1/tasks/{task['id']}/complete", json={"data": bad}, headers=bearer("system"))
        assert response.status_code == 422, bad
        assert response.get_json()["errors"], bad
    case = usm.start("usm-operate")
    at = usm.drive(case["id"], until="Activity_AcceptCall")
    response = usm.client.post(f"/api/v1/tasks/{at['tasks'][0]['id']}/complete",
                               json={"data": {"intake_decision": "reclassify"}}, headers=bearer("system"))
    assert response.status_code == 422
    assert [e["field"] for e in response.get_json()["errors"]] == ["reclassify_as"]
    response = usm.client.post(f"/api/v1/tasks/{at['tasks'][0]['id']}/complete",
                               json={"data": {"intake_decision": "maybe"}}, headers=bearer("system"))
    assert response.status_code == 422


def test_a_lane_role_completes_its_own_lane_and_not_another(usm):
    case = usm.start("usm-agree")
    usm.drive(case["id"], until="Activity_SpecifyService")
    manager = Driver(usm.client, role="service-manager")
    [visible] = manager.ready(case["id"])
    assert visible["lane"] == "Service manager" and visible["element_id"] == "Activity_SpecifyService"
    task = manager.get(f"/api/v1/tasks/{visible['id']}")
    manager.complete(task, Driver.answer(task["form"], {}, {}, "Activity_SpecifyService"))
    other = usm.start("usm-operate")
    accept = usm.ready(other["id"])[0]
    assert accept["lane"] == "Service desk"
    manager.complete(accept, {"intake_decision": "accept"}, status=403)
    assert manager.ready(other["id"]) == []


def test_a_call_can_also_be_started_as_a_case_and_then_received(usm):
    case = usm.start("usm-call", {})
    assert case["waiting_for"] == [{"type": "message", "name": "call_received"}]
    case = usm.post(f"/api/v1/cases/{case['id']}/messages", {"name": "call_received", "data": {"request": REQUEST}}, 200)
    assert [t["element_id"] for t in case["tasks"]] == ["Activity_RegisterAndClassifyCall"]
