"""A message a case throws starts another process (a hand-off). When the other process cannot start on it
(here: the message lacks the `ticket` its correlation reads), the case that threw it gets an incident at the
throw, naming the message and why; the person who completed the step before it is not refused, nothing of the
hand-off is written, and the trail records no link. When the message carries what is needed, the hand-off
starts the second line's case."""
from __future__ import annotations

from tests.conftest import fixture_files

ANYONE = lambda lane: True  # noqa: E731 - authorization is the API's concern, not these tests'
FILES = ("handoff/escalate.bpmn", "handoff/second_line.bpmn")


def triaged(engine, handover: dict) -> dict:
    engine.deploy(fixture_files(*FILES), "designer")
    case, _ = engine.start_case("first_line", "system")
    [task] = case["tasks"]
    return engine.complete_task(task["id"], {"handover": handover}, "agent", ANYONE)


def test_a_handover_without_the_key_the_other_side_reads_is_the_senders_incident(engine):
    case = triaged(engine, {"summary": "printer on fire"})
    assert case["status"] == "error"
    incident = case["incident"]
    assert incident["element_id"] == "Event_HandOver"
    assert incident["message"].startswith("message 'ticket_handed_over' thrown at 'Hand over' (Event_HandOver) in "
                                          "'first_line' could not start the process it starts: ")
    assert "name 'ticket' is not defined" in incident["message"]
    assert incident["action"].startswith("Cancel the case")
    trail = engine.trail(case["id"], {})
    assert [e["type"] for e in trail if e["type"] in ("task_completed", "incident")] == ["task_completed", "incident"]
    assert not [e for e in trail if e["type"] == "case_linked"]
    assert engine.list_cases({"definition": "second_line"}, None, 50)[0] == []


def test_a_handover_with_the_key_starts_the_second_line(engine):
    case = triaged(engine, {"ticket": "T-17", "summary": "printer on fire"})
    assert case["status"] == "completed"
    [link] = [e["details"] for e in engine.trail(case["id"], {}) if e["type"] == "case_linked"]
    child = engine.get_case(link["child_case"])
    assert child["definition"] == "second_line" and child["status"] == "running"
    assert [task["element_id"] for task in child["tasks"]] == ["Task_Fix"]
