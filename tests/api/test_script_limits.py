"""A runaway script becomes an incident within the sandbox's limits, inside the server's worker
threads, while the server keeps answering other requests."""
from __future__ import annotations

import threading
import time

from tests.conftest import APPROVAL, bearer, deploy


def start_and_choose(client, kind: str):
    case = client.post("/api/v1/cases", json={"definition": "runaway"}, headers=bearer("system")).get_json()
    return client.post(f"/api/v1/tasks/{case['tasks'][0]['id']}/complete", json={"data": {"kind": kind}},
                       headers=bearer("system"))


def test_endless_loop_becomes_an_incident_within_the_time_limit(client):
    assert deploy(client, "runaway.bpmn").status_code == 201
    started = time.monotonic()
    response = start_and_choose(client, "loop")
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    case = response.get_json()
    assert case["status"] == "error"
    assert case["incident"]["element_id"] == "Activity_Loop"
    assert "longer than" in case["incident"]["message"]
    assert elapsed < 10  # the 2 s limit, plus the rest of the request


def test_huge_allocation_becomes_an_incident_at_once(client):
    assert deploy(client, "runaway.bpmn").status_code == 201
    case = start_and_choose(client, "big").get_json()
    assert case["status"] == "error" and case["incident"]["element_id"] == "Activity_Big"
    assert "size limit" in case["incident"]["message"]


def test_other_requests_are_answered_while_a_script_runs_away(app):
    client = app.test_client()
    assert deploy(client, "runaway.bpmn").status_code == 201
    assert deploy(client, *APPROVAL).status_code == 201
    result = {}

    def runaway():
        result["case"] = start_and_choose(app.test_client(), "loop").get_json()

    worker = threading.Thread(target=runaway)
    worker.start()
    time.sleep(0.3)  # the loop is running now
    answered = []
    while worker.is_alive() and len(answered) < 20:
        started = time.monotonic()
        response = client.post("/api/v1/cases", json={"definition": "approval"}, headers=bearer("system"))
        answered.append((response.status_code, time.monotonic() - started))
    worker.join(30)
    assert result["case"]["status"] == "error"
    assert answered and all(status == 201 for status, _ in answered)
    assert max(seconds for _, seconds in answered) < 1.5, answered
