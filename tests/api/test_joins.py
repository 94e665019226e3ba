"""Joins fire exactly once per round, whatever branches a person takes, in whatever order, with loops,
boundary events and throw events, driven through the HTTP API.

SpiffWorkflow's own joins fired once per branch in the second round of a loop (the Operate process ran
"Review delivery & feedback" twice and failed); engine/joins.py replaces them."""
from __future__ import annotations

import itertools

import pytest

from usm_engine.engine.clock import FixedClock
from tests.conftest import FIXTURES, bearer

JOINS = FIXTURES / "joins"
SUBSETS = [dict(zip("abc", bits, strict=True)) for bits in itertools.product([False, True], repeat=3)]
HEADERS = bearer("admin")


def deploy(client, diagram: str) -> None:
    names = [diagram, "choose.schema.json", "again.schema.json"]
    files = [((JOINS / name).open("rb"), name) for name in names]
    response = client.post("/api/v1/definitions", data={"files": files}, content_type="multipart/form-data",
                           headers=HEADERS)
    for handle, _ in files:
        handle.close()
    assert response.status_code in (200, 201), response.get_json()


def start(client, key: str) -> str:
    response = client.post("/api/v1/cases", json={"definition": key}, headers=HEADERS)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def ready(client, case_id: str) -> dict[str, str]:
    """element id -> task id of the case's ready tasks."""
    items = client.get(f"/api/v1/tasks?case={case_id}", headers=HEADERS).get_json()["items"]
    found = {item["element_id"]: item["id"] for item in items}
    assert len(found) == len(items), f"two ready tasks of one element: {items}"
    return found


def complete(client, case_id: str, element_id: str, data: dict | None = None) -> None:
    task_id = ready(client, case_id)[element_id]
    response = client.post(f"/api/v1/tasks/{task_id}/complete", json={"data": data or {}}, headers=HEADERS)
    assert response.status_code == 200, response.get_json()


def joined(client, case_id: str) -> int:
    trail = client.get(f"/api/v1/cases/{case_id}/trail", headers=HEADERS).get_json()["items"]
    return sum(1 for event in trail if event["type"] == "gateway_taken" and event["element_id"] == "Gateway_Join")


def finish_round(client, case_id: str, rounds_done: int, again: bool) -> None:
    """The join fired once for this round: one "After the join" task, nothing else ready."""
    assert ready(client, case_id).keys() == {"Activity_After"}
    assert joined(client, case_id) == rounds_done
    complete(client, case_id, "Activity_After", {"again": again})


def assert_completed(client, case_id: str) -> None:
    case = client.get(f"/api/v1/cases/{case_id}", headers=HEADERS).get_json()
    assert case["status"] == "completed" and not case.get("incident"), case
    verify = client.get("/api/v1/audit/verify", headers=HEADERS).get_json()
    assert verify["ok"] is True, verify


@pytest.mark.parametrize("second", SUBSETS, ids=lambda s: "".join(k for k, v in s.items() if v) or "none")
def test_inclusive_join_lets_one_token_through_for_every_subset_in_both_rounds(client, second):
    deploy(client, "joins_inclusive.bpmn")
    for first in SUBSETS:
        case_id = start(client, "joins-inclusive")
        for number, choice in enumerate([first, second], start=1):
            complete(client, case_id, "Activity_Choose", choice)
            if choice["b"]:
                # the join waits for the person working on branch B, even when A and C are through
                assert ready(client, case_id).keys() == {"Activity_B"}
                assert joined(client, case_id) == number - 1
                complete(client, case_id, "Activity_B")
            finish_round(client, case_id, number, again=number == 1)
        assert_completed(client, case_id)


@pytest.mark.parametrize("first", list(itertools.permutations("ABC")), ids="".join)
def test_parallel_join_waits_for_all_three_in_any_order_in_both_rounds(client, first):
    deploy(client, "joins_parallel.bpmn")
    for second in itertools.permutations("ABC"):
        case_id = start(client, "joins-parallel")
        for number, order in enumerate([first, second], start=1):
            for done, branch in enumerate(order):
                assert ready(client, case_id).keys() == {f"Activity_{b}" for b in order[done:]}
                complete(client, case_id, f"Activity_{branch}")
            finish_round(client, case_id, number, again=number == 1)
        assert_completed(client, case_id)


# What happens in one round of joins_boundary.bpmn: which timers fire while the tasks are open, and the
# order in which the open tasks are then completed.
BOUNDARY_ROUNDS = {
    "no timer": (0, ["Activity_Work", "Activity_Check"]),
    "reminder, work first": (1, ["Activity_Work", "Activity_Check", "Activity_Escalate"]),
    "reminder, escalation first": (1, ["Activity_Escalate", "Activity_Check", "Activity_Work"]),
    "deadline": (2, ["Activity_Escalate", "Activity_FallBack", "Activity_Work"]),
    "deadline, work first": (2, ["Activity_Work", "Activity_Escalate", "Activity_FallBack"]),
}


@pytest.mark.parametrize("first", list(BOUNDARY_ROUNDS))
def test_inclusive_join_after_boundary_events_waits_for_what_can_still_come(app_factory, first):
    clock = FixedClock()
    app = app_factory(clock=clock)
    client, engine = app.test_client(), app.extensions["usm_engine"]
    deploy(client, "joins_boundary.bpmn")
    for second in BOUNDARY_ROUNDS:
        case_id = start(client, "joins-boundary")
        for number, name in enumerate([first, second], start=1):
            hours, order = BOUNDARY_ROUNDS[name]
            if hours:
                clock.advance(hours=hours, minutes=1)
                engine.fire_due_timers()
            if hours == 2:  # the deadline interrupted Check: Fall back replaces it
                assert "Activity_Check" not in ready(client, case_id)
            for position, element in enumerate(order):
                assert joined(client, case_id) == number - 1, (name, element)
                complete(client, case_id, element)
                if position < len(order) - 1:
                    assert "Activity_After" not in ready(client, case_id), (name, element)
            finish_round(client, case_id, number, again=number == 1)
        assert_completed(client, case_id)
