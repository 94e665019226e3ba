"""Constructs of BPMN written by others that deploy and run as BPMN says, or with a located warning where the
engine does otherwise: implicit splits after an activity (engine/implicit_splits.py), multi-instance in the
standard form (engine/standard_loops.py), and data associations to what is not a data object
(engine/data_associations.py)."""
from __future__ import annotations

import pytest

from usm_engine.engine.errors import DefinitionInvalid
from tests.conftest import FIXTURES, fixture_files

ANYONE = lambda lane: True  # noqa: E731 - authorization is the API's concern, not these tests'
SPLIT = "data_and_splits/implicit_split.bpmn"
CONDITIONAL = "data_and_splits/conditional_split.bpmn"
LOOP = "data_and_splits/standard_loop.bpmn"
DATA = "data_and_splits/process_data.bpmn"


def line_of(path: str, text: str) -> int:
    lines = (FIXTURES / path).read_text().splitlines()
    return next(number for number, line in enumerate(lines, start=1) if text in line)


def ready(case: dict) -> list[str]:
    return sorted(task["element_id"] for task in case["tasks"])


def complete(engine, case: dict, element_id: str, data: dict | None = None) -> dict:
    task = next(task for task in case["tasks"] if task["element_id"] == element_id)
    return engine.complete_task(task["id"], data or {}, "alice", ANYONE)


def completed_steps(engine, case_id: str) -> list[str]:
    return [e["element_id"] for e in engine.trail(case_id, {}) if e["type"] == "task_completed"]


@pytest.mark.parametrize("first", ["Task_A", "Task_B"])
def test_unconditional_flows_out_of_an_activity_all_get_a_token_and_each_passes_the_merge(engine, first):
    _, [item] = engine.deploy(fixture_files(SPLIT), "designer")
    assert item["warnings"] == []  # an implicit split is BPMN's own meaning: nothing to warn of
    case, _ = engine.start_case("implicit_split", "system")
    assert ready(case) == ["Task_A", "Task_B"]
    case = complete(engine, case, first)
    assert ready(case) == sorted([{"Task_A": "Task_B", "Task_B": "Task_A"}[first], "Task_After"])  # no join
    case = complete(engine, case, "Task_After")
    case = complete(engine, case, {"Task_A": "Task_B", "Task_B": "Task_A"}[first])
    assert ready(case) == ["Task_After"]  # the second token passes the implicit merge on its own
    case = complete(engine, case, "Task_After")
    assert case["status"] == "completed" and case["data"]["prepared"] is True
    assert sorted(completed_steps(engine, case["id"])).count("Task_After") == 2


@pytest.mark.parametrize(("data", "taken"), [
    ({"amount": 5000, "urgent": True}, ["Task_Large", "Task_Urgent"]),
    ({"amount": 5000, "urgent": False}, ["Task_Large"]),
    ({"amount": 10, "urgent": True}, ["Task_Urgent"]),
    ({"amount": 10, "urgent": False}, ["Task_Routine"]),  # the activity's default flow: no condition held
])
def test_conditional_flows_out_of_an_activity_get_a_token_where_their_condition_holds(engine, data, taken):
    _, [item] = engine.deploy(fixture_files(CONDITIONAL), "designer")
    # Not the split (BPMN's own meaning), only that the review's open form is what gives amount and urgent
    # (start_inputs.py), said at the review the designer drew, not at the gateway the engine added.
    assert [(w["element_id"], w["message"].split(", which")[0]) for w in item["warnings"]] == [
        ("Task_Review", f"the conditional flows leaving user task 'Review' (Task_Review) read '{name}'")
        for name in ("amount", "urgent")]
    case, _ = engine.start_case("conditional_split", "system")
    case = complete(engine, case, "Task_Review", data)
    assert ready(case) == taken
    for element_id in taken:
        case = complete(engine, case, element_id)
    assert case["status"] == "completed"


def test_a_conditional_flow_with_an_empty_condition_is_taken_always_with_a_located_warning(engine):
    xml = (FIXTURES / SPLIT).read_text().replace(
        '<bpmn:sequenceFlow id="Flow_to_b" sourceRef="Task_Prepare" targetRef="Task_B" />',
        '<bpmn:sequenceFlow id="Flow_to_b" sourceRef="Task_Prepare" targetRef="Task_B">'
        "<bpmn:conditionExpression /></bpmn:sequenceFlow>")
    _, [item] = engine.deploy([("split.bpmn", xml.encode())], "designer")
    [warning] = item["warnings"]
    assert (warning["file"], warning["line"], warning["element_id"]) == ("split.bpmn", line_of(SPLIT, "Flow_to_b"),
                                                                       "Flow_to_b")
    assert warning["message"] == (
        "sequence flow 'Flow_to_b' leaves script task 'Prepare' (Task_Prepare) as a conditional flow whose "
        "condition is empty: it is taken as if it had no condition (always); write its condition, or draw it as "
        "a plain sequence flow")
    case, _ = engine.start_case("implicit_split", "system")
    assert ready(case) == ["Task_A", "Task_B"]


def test_a_standard_multi_instance_runs_over_its_collection_and_gathers_its_outputs(engine):
    _, [item] = engine.deploy(fixture_files(LOOP), "designer")
    # Only that the collection comes with the start data (start_inputs.py).
    assert [(w["element_id"], w["message"].split(", which")[0]) for w in item["warnings"]] == [
        ("Task_Collect", "script task 'Keep the names' (Task_Collect) reads 'names'"),
        ("Task_Each", "script task 'Greet each' (Task_Each) reads 'names'")]
    assert engine.get_definition("standard_loop")["start_inputs"]["properties"]["names"]["type"] == "array"
    case, _ = engine.start_case("standard_loop", "system", data={"names": ["ann", "bob"]})
    # the parallel script instances ran, each with its item, their outputs in their own collection
    assert case["data"]["greetings"] == ["hello ann", "hello bob"]
    assert case["data"]["names"] == ["ann", "bob"]  # the input collection is not written back
    # the sequential user task reads its collection from a data object, through a data object reference
    assert ready(case) == ["Task_Approve"]
    case = complete(engine, case, "Task_Approve")
    assert ready(case) == ["Task_Approve"]  # one instance after the other
    case = complete(engine, case, "Task_Approve")
    assert case["status"] == "completed"
    assert completed_steps(engine, case["id"]).count("Task_Approve") == 2


def test_a_standard_multi_instance_without_its_collection_is_the_models_incident(engine):
    xml = (FIXTURES / LOOP).read_text().replace("<bpmn:loopDataInputRef>names</bpmn:loopDataInputRef>",
                                                "<bpmn:loopDataInputRef>absent</bpmn:loopDataInputRef>")
    engine.deploy([("loop.bpmn", xml.encode())], "designer")
    case, _ = engine.start_case("standard_loop", "system", data={"names": ["ann"]})
    assert case["status"] == "error" and case["incident"]["element_id"] == "Task_Each"
    assert "its collection 'absent' is not set" in case["incident"]["message"]


def test_a_multi_instance_that_names_neither_cardinality_nor_collection_stays_refused(engine):
    xml = (FIXTURES / LOOP).read_text().replace("<bpmn:loopDataInputRef>names</bpmn:loopDataInputRef>", "")
    with pytest.raises(DefinitionInvalid) as raised:
        engine.deploy([("loop.bpmn", xml.encode())], "designer")
    [problem] = raised.value.errors
    assert problem["element_id"] == "Task_Each"
    assert "says neither how many instances nor over what" in problem["message"]
    assert "loopDataInputRef (with inputDataItem)" in problem["message"]


def test_associations_to_process_data_are_set_aside_with_located_warnings_and_the_case_runs(engine):
    _, [item] = engine.deploy(fixture_files(DATA), "designer")
    located = [(w["line"], w["element_id"]) for w in item["warnings"]]
    assert located == [(line_of(DATA, 'id="Request"'), "Request"), (line_of(DATA, 'id="Itinerary"'), "Itinerary"),
                       (line_of(DATA, 'id="Budget"'), "Budget"), (line_of(DATA, 'id="Start_Channel"'),
                                                                  "Start_Channel")]
    by_id = {w["element_id"]: w["message"] for w in item["warnings"]}
    assert by_id["Request"] == (
        "data input 'Travel request' (Request) of process 'process_data' is read by 'Book' (Task_Book) through 1 "
        "data association, which the engine does not apply: a process's own data inputs, outputs and properties "
        "are its case data, which every step reads and writes directly (this one as the variable 'Request'); "
        "kept as documentation only")
    assert by_id["Start_Channel"].startswith("property 'Channel' (Start_Channel) of start event 'Start' is written "
                                             "by 'Start' through 1 data association, but it is not a data object")
    assert "kept as documentation only, and the steps run without it" in by_id["Start_Channel"]
    # a data object named directly (not through a reference) is passed as drawn: no warning for 'Notes'
    case, _ = engine.start_case("process_data", "system", data={"Request": "Oslo"})
    assert case["status"] == "completed"
    assert case["data"]["Itinerary"] == "flight to Oslo"
    assert case["data"]["confirmation"] == "booked: flight to Oslo"


def test_a_data_object_named_directly_but_out_of_sight_is_still_refused(engine):
    xml = (FIXTURES / DATA).read_text().replace('<bpmn:dataObject id="Notes" name="Notes" />', "").replace(
        "</bpmn:process>", '</bpmn:process><bpmn:process id="other" isExecutable="false">'
                           '<bpmn:dataObject id="Notes" name="Notes" /></bpmn:process>')
    with pytest.raises(DefinitionInvalid) as raised:
        engine.deploy([("data.bpmn", xml.encode())], "designer")
    assert {problem["element_id"] for problem in raised.value.errors} == {"Task_Book", "Task_Confirm"}
    assert all("defined too far out" in problem["message"] for problem in raised.value.errors)
