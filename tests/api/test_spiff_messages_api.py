"""Over HTTP, a model drawn in the SpiffWorkflow modeler: what its send task sends (spiffworkflow:messagePayload)
starts the other process with it in the start event's variable, and a message a client posts lands in the
variable the catch names (spiffworkflow:messageVariable), which the gateway after it reads."""
from __future__ import annotations

import io

from tests.conftest import FIXTURES, bearer

SYSTEM = bearer("system")
FILES = ("quote_buyer.bpmn", "quote_seller.bpmn", "choose.schema.json")


def test_a_spiff_modeler_conversation_runs_over_http(client):
    files = [(io.BytesIO((FIXTURES / "spiff_messages" / name).read_bytes()), name) for name in FILES]
    deployed = client.post("/api/v1/definitions", data={"files": files}, content_type="multipart/form-data",
                           headers=bearer("designer"))
    assert deployed.status_code == 201, deployed.get_json()
    assert [item["warnings"] for item in deployed.get_json()["items"]] == [[], []]

    case = client.post("/api/v1/cases", json={"definition": "quote_buyer"}, headers=SYSTEM).get_json()
    [task] = case["tasks"]
    done = client.post(f"/api/v1/tasks/{task['id']}/complete", json={"data": {"item": "chair", "qty": 4}},
                       headers=SYSTEM)
    assert done.status_code == 200, done.get_json()
    [seller_id] = client.get(f"/api/v1/cases/{case['id']}", headers=SYSTEM).get_json()["child_cases"]
    seller = client.get(f"/api/v1/cases/{seller_id}", headers=SYSTEM).get_json()
    assert seller["data"]["request"] == {"item": "chair", "qty": 4} and seller["data"]["pieces"] == 4

    routed = client.post("/api/v1/messages", json={"name": "quote_given", "data": {"price": 100}}, headers=SYSTEM)
    assert routed.status_code == 200, routed.get_json()
    assert routed.get_json()["id"] == case["id"] and routed.get_json()["status"] == "running"  # 400 > 300
    routed = client.post("/api/v1/messages", json={"name": "quote_revised", "data": {"price": 70}}, headers=SYSTEM)
    assert routed.status_code == 200, routed.get_json()
    bought = client.get(f"/api/v1/cases/{case['id']}", headers=SYSTEM).get_json()
    assert bought["status"] == "completed"
    assert bought["data"]["quote"] == {"price": 100} and bought["data"]["revised"] == {"price": 70}
