"""Items 5 and 6: the USM workflows end to end through the HTTP API (see scenarios.py), plus the
form contract (422) and lane roles."""
from __future__ import annotations

import pytest

from usm_engine.engine.clock import FixedClock
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


def test_one_way_in_for_a_new_call_whichever_way_it_starts(usm):
    # Started directly or by the call_received message, a call begins at once with its request in
    # `request`; a second call_received starts a second call instead of feeding the first.
    direct = usm.start("usm-call", {"request": REQUEST})
    assert direct["waiting_for"] == [] and [t["element_id"] for t in direct["tasks"]] == [
        "Activity_RegisterAndClassifyCall"]
    received = usm.call_received({"request": REQUEST})
    assert received["id"] != direct["id"] and received["definition"] == "usm-call"
    for case in (direct, received):
        assert case["data"]["request"] == REQUEST
    assert direct["data"] == received["data"]
    assert usm.case(direct["id"])["tasks"] == direct["tasks"]  # untouched by the message


def test_frames_are_only_called_and_cannot_be_started(usm):
    for frame in ("usm-frame-intake", "usm-frame-classify", "usm-frame-review", "usm-frame-close"):
        problem = usm.post("/api/v1/cases", {"definition": frame, "data": {"request": REQUEST}}, 422)
        assert f"definition '{frame}' is only called by other definitions (" in problem["detail"]
        assert "usm-operate" in problem["detail"] and "start one of those instead" in problem["detail"]
    assert not [case for case in usm.all_cases()]  # nothing half-started


def test_definitions_say_who_starts_calls_and_hands_off_to_whom(usm):
    listed = {d["key"]: d for d in usm.get("/api/v1/definitions")["items"]}
    intake = usm.get("/api/v1/definitions/usm-frame-intake")
    assert intake["startable"] is False and intake["start"] == {"plain": False, "messages": []}
    assert intake["called_by"] == ["usm-agree", "usm-change", "usm-improve", "usm-operate", "usm-recover"]
    assert intake["starts"] == ["usm-call"]  # a reclassified call goes back to the service desk
    call = listed["usm-call"]
    assert call["startable"] is True and call["start"] == {"plain": False, "messages": ["call_received"]}
    assert call["calls"] == [] and call["starts"] == ["usm-agree", "usm-change", "usm-improve", "usm-operate",
                                                       "usm-recover"]
    operate = listed["usm-operate"]
    assert operate["startable"] is True and operate["start"] == {"plain": True, "messages": []}
    assert operate["calls"] == ["usm-frame-classify", "usm-frame-close", "usm-frame-intake", "usm-frame-review"]
    assert set(operate["called_by"]) == {"usm-change", "usm-recover", "usm-improve", "usm-wf5-service-request"}
    assert operate["starts"] == ["usm-escalation", "usm-improve", "usm-recover"]
    assert listed["usm-escalation"]["start"] == {"plain": False, "messages": ["escalation_raised"]}
    # direct calls only: WF6 runs Improve, which forks into Agree
    assert listed["usm-wf1-wish"]["calls"] == ["usm-agree"] and listed["usm-agree"]["called_by"] == [
        "usm-improve", "usm-wf1-wish"]
    assert listed["usm-wf6-risk-agreement"]["calls"] == ["usm-improve"]
    startable = sorted(key for key, d in listed.items() if d["startable"])
    assert [key for key in listed if key not in startable] == [
        "usm-frame-classify", "usm-frame-close", "usm-frame-intake", "usm-frame-review"]
