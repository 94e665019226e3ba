"""What other modelers' exports leave unfinished deploys with a located warning saying what the engine does
instead, and cases run as that warning says: black-box pools set aside, processes with nothing to run
complete at once, flows that connect nothing ignored, empty script tasks pass, receive tasks without a
message wait for one named after their id, timers without a time never fire (or start plainly), loop
items sharing an id read as one variable, and BPMN-prefixed references read as local ids. What would
still be a guess stays refused."""
from __future__ import annotations

import pytest

from usm_engine.engine.errors import DefinitionInvalid
from tests.conftest import FIXTURES

ANYONE = lambda lane: True  # noqa: E731 - authorization is the API's concern, not these tests'
FOLDER = FIXTURES / "tolerances"


def upload(name: str, text: str | None = None) -> list[tuple[str, bytes]]:
    return [(name, text.encode() if text is not None else (FOLDER / name).read_bytes())]


def warnings_of(items: list[dict]) -> dict[str, tuple[int, str]]:
    """{element id: (line, message)} of every warning of an upload."""
    return {w["element_id"]: (w["line"], w["message"]) for item in items for w in item["warnings"]}


def test_a_black_box_pool_a_dangling_flow_and_unfinished_tasks_deploy_with_located_warnings(engine):
    _, items = engine.deploy(upload("pools.bpmn"), "designer")
    assert [item["key"] for item in items] == ["tolerant_request"]  # the black-box pool is no definition
    found = warnings_of(items)
    assert set(found) == {"Flow_Orphan", "Process_Supplier", "Task_Prepare", "Task_Answer", "Event_Late"}
    assert found["Flow_Orphan"][0] == 28 and "connects nothing" in found["Flow_Orphan"][1]
    assert found["Process_Supplier"][1].startswith("process 'Process_Supplier' has nothing to run (no flow node), "
                                                   "so it is set aside as documentation")
    assert found["Task_Prepare"] == (12, "script task 'Prepare the question' (Task_Prepare) has no script, so it "
                                         "does nothing: a case passes it at once; write its Python code in the "
                                         "task to have it do something")
    assert found["Task_Answer"][0] == 15
    assert "waits until it is triggered, here by a message named 'Task_Answer' (its id)" in found["Task_Answer"][1]
    assert found["Event_Late"][1].startswith("boundary event 'Too late' (Event_Late) is a timer without a date, "
                                             "duration or cycle, so it never fires: it never interrupts receive task "
                                             "'Wait for the answer' (Task_Answer), which always completes normally, "
                                             "and the path it starts (to 'Chased' (EndEvent_Chased)) never runs")


def test_the_receive_task_without_a_message_waits_for_its_id_and_the_timer_never_fires(clocked_engine):
    engine, clock = clocked_engine
    engine.deploy(upload("pools.bpmn"), "designer")
    case, _ = engine.start_case("tolerant_request", "system")
    assert case["status"] == "running"  # the empty script task passed at once
    assert [(w["type"], w["name"]) for w in case["waiting_for"]] == [("message", "Task_Answer")]
    clock.advance(hours=24 * 400)
    assert engine.fire_due_timers() == 0
    routed, started = engine.route_message("Task_Answer", "supplier", data={"answer": "in stock"})
    assert not started and routed["id"] == case["id"]
    done = engine.get_case(case["id"])
    assert done["status"] == "completed" and done["data"]["Task_Answer"] == {"answer": "in stock"}
    passed = [e["element_id"] for e in engine.trail(case["id"], {})
              if e["type"] in ("event_passed", "message_received")]
    assert passed[-2:] == ["Task_Answer", "EndEvent_Answered"]


def test_a_process_with_only_event_subprocesses_completes_at_once(engine):
    _, [item] = engine.deploy(upload("nothing_to_run.bpmn"), "designer")
    found = warnings_of([item])
    assert found["Sub_Empty"][0] == 15 and "is empty (no start event, nothing inside)" in found["Sub_Empty"][1]
    assert found["tolerant_handlers"] == (6, "process 'Handlers only' (tolerant_handlers) holds nothing but event "
                                             "subprocesses, so a case on it completes as soon as it starts; its event "
                                             "subprocesses 'On cancel' (Sub_Cancel) can only start while a case is in "
                                             "the process, so they never run; model its flow (a start event and what "
                                             "follows) to have it do something")
    case, _ = engine.start_case("tolerant_handlers", "system")
    assert case["status"] == "completed" and case["waiting_for"] == []


def test_an_empty_process_alone_in_its_file_deploys_and_completes_at_once(engine):
    text = (FOLDER / "nothing_to_run.bpmn").read_text()
    start, end = text.index("    <bpmn:subProcess id=\"Sub_Cancel\""), text.index("  </bpmn:process>")
    _, [item] = engine.deploy(upload("empty.bpmn", text[:start] + text[end:]), "designer")
    [warning] = item["warnings"]
    assert warning["message"].startswith("process 'Handlers only' (tolerant_handlers) has nothing to run (no flow "
                                         "node), so a case on it completes as soon as it starts")
    assert engine.start_case("tolerant_handlers", "system")[0]["status"] == "completed"


def test_timers_without_a_time_start_plainly_and_never_fire(clocked_engine):
    engine, clock = clocked_engine
    _, [item] = engine.deploy(upload("timers.bpmn"), "designer")
    found = warnings_of([item])
    assert set(found) == {"StartEvent_Timer", "Event_Timeout", "StartEvent_Remind"}
    assert "is run as a plain start event: a case starts when it is started" in found["StartEvent_Timer"][1]
    assert "so it never fires: the gateway waits only for its other events" in found["Event_Timeout"][1]
    assert "so the event subprocess never starts" in found["StartEvent_Remind"][1]
    case, _ = engine.start_case("tolerant_timers", "system")
    assert case["status"] == "running" and "timer" not in [w["type"] for w in case["waiting_for"]]
    clock.advance(hours=24 * 400)
    assert engine.fire_due_timers() == 0
    case = engine.get_case(case["id"])
    assert case["status"] == "running"  # at the gateway, for the reply: the timeout never comes
    assert "EndEvent_Timeout" not in [e["element_id"] for e in engine.trail(case["id"], {})]


def test_an_intermediate_timer_without_a_time_in_the_flow_stays_refused(engine):
    text = (FOLDER / "timers.bpmn").read_text().replace(
        '<bpmn:outgoing>Flow_2</bpmn:outgoing><bpmn:outgoing>Flow_3</bpmn:outgoing>',
        '<bpmn:outgoing>Flow_3</bpmn:outgoing>').replace(
        '<bpmn:sequenceFlow id="Flow_2" sourceRef="Gateway_Wait" targetRef="Event_Reply" />', "")
    with pytest.raises(DefinitionInvalid) as refused:
        engine.deploy(upload("timers.bpmn", text), "designer")
    assert any(p["element_id"] == "Event_Timeout" and "timer without a date, duration or cycle" in p["message"]
               for p in refused.value.errors)


def test_shared_loop_item_ids_read_as_one_variable_and_other_duplicates_stay_refused(engine):
    _, [item] = engine.deploy(upload("loop_items.bpmn"), "designer")
    [warning] = item["warnings"]
    assert (warning["line"], warning["element_id"]) == (13, "Task_Double")
    assert "gives its input and output data items the same id 'number'" in warning["message"]
    case, _ = engine.start_case("tolerant_loop", "system")
    assert len(case["tasks"]) == 3
    for task in case["tasks"]:
        case = engine.complete_task(task["id"], {"number": "checked"}, "alice", ANYONE)
    assert case["status"] == "completed" and case["data"]["number"] == "checked"
    text = (FOLDER / "loop_items.bpmn").read_text().replace('<bpmn:endEvent id="EndEvent_1">',
                                                            '<bpmn:endEvent id="number">')
    with pytest.raises(DefinitionInvalid) as refused:
        engine.deploy(upload("loop_items.bpmn", text), "designer")
    assert "the id 'number' is used by" in refused.value.errors[0]["message"]


def test_a_flow_with_one_end_stays_refused(engine):
    text = (FOLDER / "pools.bpmn").read_text().replace('<bpmn:sequenceFlow id="Flow_Orphan" />',
                                                       '<bpmn:sequenceFlow id="Flow_Orphan" sourceRef="Task_Answer" />')
    with pytest.raises(DefinitionInvalid) as refused:
        engine.deploy(upload("pools.bpmn", text), "designer")
    assert "'targetRef' is required but missing" in refused.value.errors[0]["message"]


def test_a_script_task_naming_an_external_resource_stays_refused(engine):
    text = (FOLDER / "pools.bpmn").read_text().replace(
        'xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"',
        'xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" xmlns:camunda="http://camunda.org/schema/1.0/bpmn"'
    ).replace('name="Prepare the question"', 'name="Prepare the question" camunda:resource="prepare.py"')
    with pytest.raises(DefinitionInvalid) as refused:
        engine.deploy(upload("pools.bpmn", text), "designer")
    assert [p["element_id"] for p in refused.value.errors] == ["Task_Prepare"]
    assert "external script resources are not supported" in refused.value.errors[0]["message"]


def test_a_message_reference_with_the_bpmn_prefix_finds_the_message_of_the_file(engine):
    _, [item] = engine.deploy(upload("prefixed_message.bpmn"), "designer")
    [warning] = item["warnings"]
    assert (warning["line"], warning["element_id"]) == (7, "StartEvent_Ticket")
    assert "with the prefix of the BPMN namespace itself: read as the id without the prefix" in warning["message"]
    case, started = engine.route_message("ticket_opened", "system", data={"topic": "printer"})
    assert started and case["status"] == "completed" and case["definition"] == "tolerant_prefixed"
