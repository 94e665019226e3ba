"""An event-based gateway waits for whichever of its events comes first: here a customer's reply (a message)
or two days passing (a timer). Both branches through the HTTP API: the waiting case names both events, the one
that comes first takes its path, and the other is withdrawn (a late reply is refused, the timer never fires)."""
from __future__ import annotations

from tests.conftest import bearer, deploy
from usm_engine.engine.clock import FixedClock

SYSTEM = bearer("system")
CASES = "/api/v1/cases"


def started(app_factory) -> tuple:
    clock = FixedClock()
    app = app_factory(clock=clock)
    client, engine = app.test_client(), app.extensions["usm_engine"]
    assert deploy(client, "reply_or_reminder.bpmn").status_code == 201
    response = client.post(CASES, json={"definition": "reply_or_reminder"}, headers=SYSTEM)
    assert response.status_code == 201, response.get_json()
    return client, engine, clock, response.get_json()


def case_of(client, case_id: str) -> dict:
    return client.get(f"{CASES}/{case_id}", headers=SYSTEM).get_json()


def passed(client, case_id: str) -> list[str]:
    events = client.get(f"{CASES}/{case_id}/trail", headers=SYSTEM).get_json()["items"]
    return [event["element_id"] for event in events if event["type"] == "event_passed"]


def test_the_waiting_case_names_the_message_and_the_timer_with_its_due_time(app_factory):
    _, _, clock, case = started(app_factory)
    assert case["status"] == "running"
    waits = {w["type"]: w for w in case["waiting_for"]}
    assert set(waits) == {"message", "timer"}
    assert waits["message"]["name"] == "customer_replied"
    assert waits["timer"]["due_at"] == "2026-01-03T00:00:00Z" and clock.now().isoformat().startswith("2026-01-01")


def test_a_reply_takes_the_message_path_and_the_timer_never_fires(app_factory):
    client, engine, clock, case = started(app_factory)
    response = client.post(f"{CASES}/{case['id']}/messages", json={"name": "customer_replied", "data": {"text": "ok"}},
                           headers=SYSTEM)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["status"] == "completed"
    clock.advance(days=3)
    assert engine.fire_due_timers() == 0
    done = case_of(client, case["id"])
    assert done["status"] == "completed" and done["data"]["customer_replied"] == {"text": "ok"}
    assert "Event_TwoDays" not in passed(client, case["id"])


def test_two_days_without_a_reply_take_the_timer_path_and_a_late_reply_is_refused(app_factory):
    client, engine, clock, case = started(app_factory)
    clock.advance(days=2, minutes=1)
    assert engine.fire_due_timers() == 1
    after = case_of(client, case["id"])
    assert [task["element_id"] for task in after["tasks"]] == ["Task_Remind"]
    assert after["waiting_for"] == []
    late = client.post(f"{CASES}/{case['id']}/messages", json={"name": "customer_replied"}, headers=SYSTEM)
    assert late.status_code == 409
    assert "waits for no message named 'customer_replied'" in late.get_json()["detail"]
    assert passed(client, case["id"])[-1] == "Event_TwoDays"


def test_a_reply_routed_by_name_finds_the_waiting_case(app_factory):
    client, _, _, case = started(app_factory)
    response = client.post("/api/v1/messages", json={"name": "customer_replied"}, headers=SYSTEM)
    assert response.status_code == 200, response.get_json()
    assert case_of(client, case["id"])["status"] == "completed"
