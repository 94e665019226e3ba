"""POST /api/v1/messages: names compared exactly on both databases (through the message_waits rows, not
a text search), and a retry with the same Idempotency-Key neither delivers twice nor starts a second case."""
from __future__ import annotations

import pytest

from tests.conftest import bearer, deploy

SYSTEM = bearer("system")


def post_message(client, body: dict, key: str | None = None):
    headers = {**SYSTEM, **({"Idempotency-Key": key} if key else {})}
    return client.post("/api/v1/messages", json=body, headers=headers)


def start(client, key: str) -> dict:
    response = client.post("/api/v1/cases", json={"definition": key}, headers=SYSTEM)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def waiting(client, case_id: str) -> list[str]:
    case = client.get(f"/api/v1/cases/{case_id}", headers=SYSTEM).get_json()
    return sorted(w["name"] for w in case["waiting_for"] if w["type"] == "message")


def test_names_with_wildcards_quotes_and_backslashes_route_exactly(client):
    assert deploy(client, "odd_message_names.bpmn").status_code == 201
    odd, plain = start(client, "odd_names"), start(client, "plain_name")
    assert waiting(client, odd["id"]) == ['50%_off', 'back\\slash', 'say "hi"']
    assert post_message(client, {"name": "50__off"}).status_code == 404   # _ is no wildcard
    assert post_message(client, {"name": "50%"}).status_code == 404       # nor is %
    for name in ('say "hi"', "back\\slash", "50%_off"):
        response = post_message(client, {"name": name, "data": {"n": 1}})
        assert response.status_code == 200 and response.get_json()["id"] == odd["id"], name
    assert client.get(f"/api/v1/cases/{odd['id']}", headers=SYSTEM).get_json()["status"] == "completed"
    assert waiting(client, plain["id"]) == ["50xxoff"]                    # untouched by "50%_off"
    delivered = post_message(client, {"name": "50xxoff"})
    assert delivered.status_code == 200 and delivered.get_json()["id"] == plain["id"]
    assert post_message(client, {"name": "50xxoff"}).status_code == 404   # nobody waits any more


def test_a_repeated_message_is_delivered_once(client):
    assert deploy(client, "odd_message_names.bpmn").status_code == 201
    plain = start(client, "plain_name")
    first = post_message(client, {"name": "50xxoff", "data": {"ref": 7}}, key="msg-1")
    assert first.status_code == 200 and first.get_json()["status"] == "completed"
    again = post_message(client, {"name": "50xxoff", "data": {"ref": 7}}, key="msg-1")
    assert again.status_code == 200 and again.get_json()["id"] == plain["id"]
    trail = client.get(f"/api/v1/cases/{plain['id']}/trail", headers=SYSTEM).get_json()["items"]
    assert [e["type"] for e in trail].count("message_received") == 1
    other = post_message(client, {"name": "50xxoff", "data": {"ref": 8}}, key="msg-1")
    assert other.status_code == 422 and "already used for a different message" in other.get_json()["detail"]


def test_a_repeated_starting_message_starts_one_case(client):
    assert deploy(client, "handoff_risk.bpmn").status_code == 201
    body = {"name": "risk_submitted", "business_key": "RSK-1", "data": {"risk": "flood"}}
    first = post_message(client, body, key="start-1")
    assert first.status_code == 201
    again = post_message(client, body, key="start-1")
    assert again.status_code == 200 and again.get_json()["id"] == first.get_json()["id"]
    cases = client.get("/api/v1/cases?business_key=RSK-1", headers=SYSTEM).get_json()["items"]
    assert [c["id"] for c in cases] == [first.get_json()["id"]]
    without_key = post_message(client, body)
    assert without_key.status_code == 201 and without_key.get_json()["id"] != first.get_json()["id"]


@pytest.mark.parametrize("key", ["k" * 256, "nul\0inside"])
def test_a_bad_idempotency_key_is_refused(client, key):
    assert deploy(client, "handoff_risk.bpmn").status_code == 201
    response = post_message(client, {"name": "risk_submitted"}, key=key)
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] == "Idempotency-Key"
