"""Over HTTP, pre- and post-scripts as the SpiffWorkflow modeler writes them: what the pre-script sets is in
the case a client reads as the task is shown, what the post-script sets decides the gateway after the task
(both branches), and a failing post-script is the case's incident, which a retry with the missing data
carries on from; the task is not completed twice."""
from __future__ import annotations

import io

from tests.conftest import FIXTURES, bearer

SYSTEM = bearer("system")


def _deployed(client) -> None:
    bpmn = (FIXTURES / "spiff_scripts" / "prepost.bpmn").read_bytes()
    deployed = client.post("/api/v1/definitions", data={"files": [(io.BytesIO(bpmn), "prepost.bpmn")]},
                           content_type="multipart/form-data", headers=bearer("designer"))
    assert deployed.status_code == 201, deployed.get_json()


def _ordered(client, data: dict, items=("cup", "mug")) -> dict:
    started = client.post("/api/v1/cases", json={"definition": "spiff_prepost",
                                                  "data": {"customer": "Ann", "items": list(items)}}, headers=SYSTEM)
    assert started.status_code == 201, started.get_json()
    case = started.get_json()
    assert case["data"]["greeting"] == "Hello Ann"  # set by the pre-script before the task was shown
    done = client.post(f"/api/v1/tasks/{case['tasks'][0]['id']}/complete", json={"data": data}, headers=SYSTEM)
    assert done.status_code == 200, done.get_json()
    return done.get_json()


def _packed(client, case: dict) -> dict:
    while case["tasks"]:
        assert {t["name"] for t in case["tasks"]} == {"Pack each item"}
        case = client.post(f"/api/v1/tasks/{case['tasks'][0]['id']}/complete", json={"data": {}},
                           headers=SYSTEM).get_json()
    return case


def test_post_script_totals_decide_both_branches_over_http(client):
    _deployed(client)
    small = _ordered(client, {"qty": 2, "price": 10})
    assert small["data"]["total"] == 20 and [t["name"] for t in small["tasks"]] == ["Pack each item"] * 2
    assert _packed(client, small)["data"]["packed"] == 2

    large = _ordered(client, {"qty": 20, "price": 10}, items=("plate",))
    assert large["data"]["total"] == 200 and [t["name"] for t in large["tasks"]] == ["Approve the order"]
    approved = client.post(f"/api/v1/tasks/{large['tasks'][0]['id']}/complete", json={"data": {}},
                           headers=SYSTEM).get_json()
    done = _packed(client, approved)
    assert done["status"] == "completed" and done["data"]["items"] == ["PLATE"]


def test_a_failing_post_script_is_an_incident_and_a_retry_over_http_carries_on(client):
    _deployed(client)
    failed = _ordered(client, {"qty": 2})  # no price for the post-script's total
    assert failed["status"] == "error" and failed["incident"]["element_id"] == "Activity_Order"
    assert "price" in failed["incident"]["message"]
    retried = client.post(f"/api/v1/cases/{failed['id']}/retry", json={"data": {"price": 5}}, headers=SYSTEM)
    assert retried.status_code == 200, retried.get_json()
    assert retried.get_json()["data"]["total"] == 10
    assert [t["name"] for t in retried.get_json()["tasks"]] == ["Pack each item"] * 2
    # the order task was completed once, by the first call: its trail says so
    trail = client.get(f"/api/v1/cases/{failed['id']}/trail?type=task_completed", headers=SYSTEM).get_json()["items"]
    assert [e["element_id"] for e in trail] == ["Activity_Order"]
