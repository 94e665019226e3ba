"""Models other tools leave open deploy with a warning and run as the warning says: a business rule task
naming no decision (an incident when reached), a gateway flow without a condition (Camunda 7's reading,
in file order), a process or subprocess without start or end events (BPMN 2.0's implicit start and end),
and, for `usm conformance`, a called process in another folder of the tree."""
from __future__ import annotations

import pytest

from usm_engine.engine import conformance
from usm_engine.engine.deployment import compile_bundle
from usm_engine.engine.errors import DefinitionInvalid
from tests.conftest import FIXTURES, fixture_files

ANYONE = lambda lane: True  # noqa: E731 - authorization is the API's concern, not these tests'
OPEN_FLOW = "deploy_open_flow.bpmn"


def test_a_business_rule_task_without_a_decision_warns_and_is_an_incident_when_reached(engine):
    created, [item] = engine.deploy(fixture_files("deploy_rule_without_decision.bpmn"), "designer")
    [warning] = item["warnings"]
    assert (warning["line"], warning["element_id"]) == (5, "Activity_Assess")
    assert warning["message"].startswith("business rule task 'Assess risk' (Activity_Assess) names no decision")
    assert "stops with an incident" in warning["message"]
    case, _ = engine.start_case("rule_without_decision", "system", data={})
    assert case["status"] == "error" and case["incident"]["element_id"] == "Activity_Assess"
    assert "has no implementation" in case["incident"]["message"]


def test_a_business_rule_task_that_names_a_missing_decision_is_still_refused():
    text = (FIXTURES / "deploy_rule_without_decision.bpmn").read_text().replace(
        '<bpmn:businessRuleTask id="Activity_Assess"',
        '<bpmn:businessRuleTask xmlns:camunda="http://camunda.org/schema/1.0/bpmn" camunda:decisionRef="risk" '
        'id="Activity_Assess"')
    with pytest.raises(DefinitionInvalid) as refused:
        compile_bundle([("rule.bpmn", text.encode())], set())
    [problem] = refused.value.errors
    assert problem["element_id"] == "Activity_Assess" and "calls decision 'risk'" in problem["message"]


def start_open_flow(engine, approved: bool, files=None) -> list[str]:
    engine.deploy(files or fixture_files(OPEN_FLOW), "designer")
    case, _ = engine.start_case("open_flow", "system", data={"approved": approved})
    return [task["element_id"] for task in case["tasks"]]


@pytest.mark.parametrize("approved, taken", [(True, "Activity_Ship"), (False, "Activity_Return")])
def test_a_flow_without_a_condition_is_taken_when_no_flow_before_it_holds(engine, approved, taken):
    # 'Return' is drawn above 'Ship': SpiffWorkflow alone would try its flow first and always take it.
    assert start_open_flow(engine, approved) == [taken]


def test_the_warning_names_the_flow_and_what_it_does(engine):
    _, [item] = engine.deploy(fixture_files(OPEN_FLOW), "designer")
    # The other warning: the gateway reads `approved`, which only the start data gives (start_inputs.py).
    [warning, read] = sorted(item["warnings"], key=lambda w: w["element_id"] != "Flow_Other")
    assert read["message"].startswith("exclusive gateway 'Approved?' (Gateway_Approved) reads 'approved', which "
                                      "nothing in the upload sets")
    assert (warning["element_id"], warning["line"]) == ("Flow_Other", 13)
    assert warning["message"].startswith("sequence flow 'otherwise' (Flow_Other) leaves exclusive gateway "
                                         "'Approved?' (Gateway_Approved) without a condition")
    assert "taken whenever none before it holds" in warning["message"]


def test_written_first_a_flow_without_a_condition_is_always_taken(engine):
    text = (FIXTURES / OPEN_FLOW).read_text()
    unconditioned = ('    <bpmn:sequenceFlow id="Flow_Other" name="otherwise" sourceRef="Gateway_Approved" '
                     'targetRef="Activity_Return" />\n')
    moved = text.replace(unconditioned, "").replace('    <bpmn:sequenceFlow id="Flow_Yes"',
                                                     unconditioned + '    <bpmn:sequenceFlow id="Flow_Yes"')
    assert moved != text
    _, [item] = engine.deploy([(OPEN_FLOW, moved.encode())], "designer")
    assert "the flow 'yes' (Flow_Yes) is never taken" in item["warnings"][0]["message"]
    case, _ = engine.start_case("open_flow", "system", data={"approved": True})
    assert [task["element_id"] for task in case["tasks"]] == ["Activity_Return"]


def test_conditions_that_overlap_are_tried_in_file_order_not_drawn_order(engine):
    text = (FIXTURES / OPEN_FLOW).read_text().replace(
        'targetRef="Activity_Return" />', 'targetRef="Activity_Return"><bpmn:conditionExpression>True'
                                          '</bpmn:conditionExpression></bpmn:sequenceFlow>')
    _, [item] = engine.deploy([(OPEN_FLOW, text.encode())], "designer")
    # No warning about the flows; only that `approved` comes with the start data (start_inputs.py).
    assert [w["message"].split(",")[0] for w in item["warnings"]] == [
        "exclusive gateway 'Approved?' (Gateway_Approved) reads 'approved'"]
    case, _ = engine.start_case("open_flow", "system", data={"approved": True})
    assert [task["element_id"] for task in case["tasks"]] == ["Activity_Ship"]


def test_without_start_events_what_nothing_leads_to_starts_and_an_empty_subprocess_completes(engine):
    _, [item] = engine.deploy(fixture_files("deploy_no_start_event.bpmn"), "designer")
    said = {(w["element_id"], w["message"].split(":")[0]) for w in item["warnings"]}
    assert said == {("no_start_event", "process 'Drawn without start events' (no_start_event) has no start event"),
                    ("Activity_Prepare", "subprocess 'Prepare' (Activity_Prepare) has no start event"),
                    ("Activity_Prepare", "subprocess 'Prepare' (Activity_Prepare) has no end event"),
                    ("Activity_Check", "subprocess 'Check' (Activity_Check) is empty (drawn collapsed, without "
                                       "its inside), so it completes as soon as it starts")}
    case, _ = engine.start_case("no_start_event", "system", data={})
    ready = {task["element_id"]: task["id"] for task in case["tasks"]}
    assert set(ready) == {"Activity_Notify", "Activity_Pack"}
    case = engine.complete_task(ready["Activity_Pack"], {}, "alice", ANYONE)
    ready = {task["element_id"]: task["id"] for task in case["tasks"]}
    assert set(ready) == {"Activity_Notify", "Activity_Ship"}  # 'Check' was passed at once
    engine.complete_task(ready["Activity_Ship"], {}, "alice", ANYONE)
    assert engine.complete_task(ready["Activity_Notify"], {}, "alice", ANYONE)["status"] == "completed"


def test_a_process_where_every_node_has_an_incoming_flow_is_still_refused():
    doc = (FIXTURES / "deploy_no_start_event.bpmn").read_text().replace(
        '<bpmn:sequenceFlow id="Flow_2"', '<bpmn:sequenceFlow id="Flow_3" sourceRef="Activity_Ship" '
        'targetRef="Activity_Prepare" /><bpmn:sequenceFlow id="Flow_4" sourceRef="Activity_Ship" '
        'targetRef="Activity_Notify" /><bpmn:sequenceFlow id="Flow_2"')
    with pytest.raises(DefinitionInvalid) as refused:
        compile_bundle([("cycle.bpmn", doc.encode())], set())
    assert any("no start event" in p["message"] and p["element_id"] == "no_start_event"
               for p in refused.value.errors)


def test_conformance_finds_a_called_process_in_another_folder_of_the_tree():
    tree = FIXTURES / "deploy_tree"
    alone = conformance.bundle_for(tree / "callers" / "caller.bpmn")
    assert [name for name, _ in alone] == ["caller.bpmn"]  # without the run's index: siblings only
    report = conformance.run(tree, drive=False)
    outcomes = {result.file: result.outcome for result in report.results}
    assert outcomes == {"callers/caller.bpmn": "deployed", "library/library.bpmn": "deployed"}
    assert not report.faults


def test_a_process_that_calls_itself_is_refused_where_it_calls():
    # SpiffWorkflow would not find the process run alone, and nest it without end when called from another.
    doc = (FIXTURES / "deploy_tree" / "callers" / "caller.bpmn").read_bytes().replace(
        b'calledElement="tree_library"', b'calledElement="tree_caller"')
    with pytest.raises(DefinitionInvalid) as refused:
        compile_bundle([("caller.bpmn", doc)], set())
    [problem] = refused.value.errors
    assert (problem["element_id"], problem["line"]) == ("Activity_CallLibrary", 5)
    assert problem["message"].startswith("process 'tree_caller' calls itself (through call activity")
