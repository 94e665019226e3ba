"""Send and receive tasks run as message throw and catch. A send task sends what its camunda:expression
gives (JUEL translated like conditions), and without one its message's name only, never the case data,
with a warning at deploy. A receive task waits for its message, and a boundary event on it can end the
wait. A receive task that names no message waits, as in Camunda 7, here for a message named after its id."""
from __future__ import annotations

import pytest

from usm_engine.engine.errors import DefinitionInvalid
from tests.conftest import FIXTURES, fixture_files

ANYONE = lambda lane: True  # noqa: E731 - authorization is the API's concern, not these tests'
FILES = ("camunda_send_receive.bpmn", "camunda_send_targets.bpmn")
ORDER = {"item": "laptop", "qty": 2}


def ordered(engine) -> dict:
    """A case that placed its order: both send tasks ran, and the receive task waits."""
    engine.deploy(fixture_files(*FILES), "designer")
    case, _ = engine.start_case("camunda_order", "system")
    return engine.complete_task(case["tasks"][0]["id"], {"order": ORDER, "budget_code": "secret-42"}, "alice", ANYONE)


def test_the_send_task_without_a_payload_expression_is_warned_about(engine):
    _, items = engine.deploy(fixture_files(*FILES), "designer")
    warnings = {item["key"]: item["warnings"] for item in items}
    # The other warning: what Activity_Ship sends (${order}) is read from a variable nothing in the upload sets.
    ship, warning = sorted(warnings["camunda_order"], key=lambda w: w["element_id"] != "Activity_Ship")
    assert ship["element_id"] == "Activity_Ship"
    assert "reads 'order', which nothing in the upload sets" in ship["message"]
    assert (warning["file"], warning["line"], warning["element_id"]) == ("camunda_send_receive.bpmn", 17,
                                                                          "Activity_Notice")
    assert warning["message"].startswith("send task 'Tell the team' (Activity_Notice) sends message 'order_noticed' "
                                         "with its name only, no data: to send data, set camunda:expression")
    assert warnings["camunda_warehouse"] == warnings["camunda_notice_board"] == []


def test_send_tasks_start_the_processes_of_their_messages_with_what_they_send(engine):
    case = ordered(engine)
    assert case["status"] == "running"
    assert sorted(w["type"] for w in case["waiting_for"]) == ["message", "timer"]
    linked = engine.get_case(case["id"])["child_cases"]
    children = {child["definition"]: child for child in map(engine.get_case, linked)}
    assert set(children) == {"camunda_warehouse", "camunda_notice_board"}
    warehouse, notice = children["camunda_warehouse"], children["camunda_notice_board"]
    assert warehouse["data"] == {**ORDER, "order_placed": ORDER}  # ${order}, translated from JUEL
    assert notice["data"] == {"order_noticed": {}}  # the message's name only: no budget code, no order
    assert [t["name"] for t in warehouse["tasks"]] == ["Pick and ship"]
    sent = [(e["element_id"], e["details"]) for e in engine.trail(case["id"], {}) if e["type"] == "message_sent"]
    assert sent == [("Activity_Ship", {"message": "order_placed"}), ("Activity_Notice", {"message": "order_noticed"})]


def test_the_receive_task_takes_its_message_and_the_case_ends(engine):
    case = ordered(engine)
    done = engine.send_message(case["id"], "delivered", {"signed_by": "ann"}, "courier")
    assert done["status"] == "completed" and done["data"]["delivered"] == {"signed_by": "ann"}
    trail = engine.trail(case["id"], {})
    assert [(e["type"], e["element_id"]) for e in trail if e["type"] in ("message_received", "event_passed")] == [
        ("event_passed", "StartEvent_1"), ("message_received", "Activity_Wait"), ("event_passed", "EndEvent_Delivered")]


def test_the_boundary_timer_of_the_receive_task_ends_the_wait(clocked_engine):
    engine, clock = clocked_engine
    case = ordered(engine)
    clock.advance(hours=48, minutes=1)
    assert engine.fire_due_timers() == 1
    case = engine.get_case(case["id"])
    assert case["status"] == "completed" and case["waiting_for"] == []
    trail = engine.trail(case["id"], {})
    assert [e["element_id"] for e in trail if e["type"] == "timer_fired"] == ["Event_Overdue"]
    assert [e["element_id"] for e in trail if e["type"] == "event_passed"][-1] == "EndEvent_Overdue"
    assert not any(e["type"] == "message_received" for e in trail)


def test_a_payload_expression_outside_the_translated_subset_is_refused_where_it_is(engine):
    text = (FIXTURES / FILES[0]).read_text().replace('camunda:expression="${order}"',
                                                      'camunda:expression="${orderService.current()}"')
    with pytest.raises(DefinitionInvalid) as refused:
        engine.deploy([(FILES[0], text.encode())], "designer")
    [problem] = refused.value.errors
    assert (problem["line"], problem["element_id"]) == (14, "Activity_Ship")
    assert problem["message"].startswith("send task 'Ask the warehouse to ship' (Activity_Ship): the message payload "
                                         "(camunda:expression) '${orderService.current()}' is JUEL")


def test_a_receive_task_that_names_no_message_waits_for_a_message_named_after_its_id(engine):
    text = (FIXTURES / FILES[0]).read_text().replace(' messageRef="Message_Delivered"', "")
    _, [item] = engine.deploy([(FILES[0], text.encode())], "designer")
    warning = next(w for w in item["warnings"] if w["element_id"] == "Activity_Wait")
    assert warning["line"] == 20
    assert warning["message"].startswith("receive task 'Wait for delivery' (Activity_Wait) names no message: as in "
                                         "Camunda 7 it waits until it is triggered, here by a message named "
                                         "'Activity_Wait' (its id)")
    case, _ = engine.start_case("camunda_order", "system")
    case = engine.complete_task(case["tasks"][0]["id"], {"order": ORDER}, "alice", ANYONE)
    assert "Activity_Wait" in [w["name"] for w in case["waiting_for"] if w["type"] == "message"]
    assert engine.send_message(case["id"], "Activity_Wait", {}, "courier")["status"] == "completed"


def test_a_send_task_that_names_no_message_deploys_with_a_warning_and_sends_nothing(engine):
    text = (FIXTURES / FILES[0]).read_text().replace(' messageRef="Message_Notice"', "")
    _, [item] = engine.deploy([(FILES[0], text.encode())], "designer")
    [warning] = [w for w in item["warnings"] if w["element_id"] != "Activity_Ship"]  # Ship's: see the first test
    assert warning["element_id"] == "Activity_Notice" and "names no message, so it sends nothing" in warning["message"]
    case, _ = engine.start_case("camunda_order", "system")
    case = engine.complete_task(case["tasks"][0]["id"], {"order": ORDER}, "alice", ANYONE)
    sent = [e["details"] for e in engine.trail(case["id"], {}) if e["type"] == "message_sent"]
    assert sent == [{"message": "order_placed"}, {}]  # a message_sent without a message
    assert case["status"] == "running" and engine.get_case(case["id"])["child_cases"] == []  # nothing started on them


def test_an_external_send_task_is_a_job_for_a_worker_as_in_camunda_7(engine):
    text = (FIXTURES / FILES[0]).read_text().replace(
        '<bpmn:sendTask id="Activity_Notice" name="Tell the team" messageRef="Message_Notice">',
        '<bpmn:sendTask id="Activity_Notice" name="Tell the team" camunda:type="external" camunda:topic="notices">')
    _, [item] = engine.deploy([(FILES[0], text.encode())], "designer")
    assert [w["element_id"] for w in item["warnings"]] == ["Activity_Ship"]  # its payload's read: the first test
    case, _ = engine.start_case("camunda_order", "system")
    case = engine.complete_task(case["tasks"][0]["id"], {"order": ORDER}, "alice", ANYONE)
    assert [(t["element_id"], t["topic"]) for t in case["tasks"]] == [("Activity_Notice", "notices")]
    [job] = engine.lock_external_tasks("notifier", ["notices"], 1, 60)
    case = engine.complete_task(job["id"], {"notified": "team"}, "robot", ANYONE, worker="notifier")
    assert case["tasks"] == [] and [w["name"] for w in case["waiting_for"] if w["type"] == "message"] == ["delivered"]
    assert engine.send_message(case["id"], "delivered", {}, "courier")["status"] == "completed"
