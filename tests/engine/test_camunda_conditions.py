"""Diagrams from Camunda Modeler with JUEL (Camunda 7) or FEEL (Camunda 8) expressions: translated at deploy
and run as drawn, or refused at deploy with file, line and element (engine/expression_translation.py)."""
from __future__ import annotations

import pytest

from usm_engine.engine.errors import DefinitionInvalid
from tests.conftest import FIXTURES, fixture_files

ANYONE = lambda lane: True  # noqa: E731 - authorization is the API's concern, not these tests'


def gateway_targets(engine, case_id: str) -> list[list[str]]:
    return [e["details"]["targets"] for e in engine.trail(case_id, {}) if e["type"] == "gateway_taken"]


def line_of(path: str, text: str) -> int:
    lines = (FIXTURES / path).read_text().splitlines()
    return next(number for number, line in enumerate(lines, start=1) if text in line)


@pytest.mark.parametrize(("approved", "end"), [(True, "End_Paid"), (False, "End_Rejected")])
def test_juel_branches_deploy_and_the_case_takes_the_one_its_data_selects(engine, approved, end):
    _, [deployed] = engine.deploy(fixture_files("camunda/invoice_approval.bpmn"), "designer")
    assert deployed["key"] == "invoice_approval"
    case, _ = engine.start_case("invoice_approval", "system")
    [task] = case["tasks"]
    done = engine.complete_task(task["id"], {"approved": approved}, "alice", ANYONE)
    assert done["status"] == "completed"
    assert gateway_targets(engine, case["id"]) == [[end]]


def test_a_juel_condition_on_a_missing_variable_is_an_incident_as_a_python_one_is(engine):
    engine.deploy(fixture_files("camunda/invoice_approval.bpmn"), "designer")
    case, _ = engine.start_case("invoice_approval", "system")
    failed = engine.complete_task(case["tasks"][0]["id"], {}, "alice", ANYONE)
    assert failed["status"] == "error"
    assert failed["incident"]["element_id"] == "Gateway_Approved"
    assert "approved" in failed["incident"]["message"]
    retried = engine.retry_case(case["id"], "ops", {"approved": True})
    assert retried["status"] == "completed" and gateway_targets(engine, case["id"])[-1] == ["End_Paid"]


def test_the_execution_object_is_refused_at_deploy_with_file_line_and_element(engine):
    with pytest.raises(DefinitionInvalid) as raised:
        engine.deploy(fixture_files("camunda/execution_variable.bpmn"), "designer")
    [problem] = raised.value.errors
    assert problem["file"] == "camunda/execution_variable.bpmn"
    assert problem["line"] == line_of("camunda/execution_variable.bpmn", "execution.getVariable")
    assert problem["element_id"] == "Flow_Yes"
    message = problem["message"]
    assert message.startswith("sequence flow 'yes' (Flow_Yes): the condition "
                              "'${execution.getVariable('approved')}' is JUEL (Camunda 7)")
    assert "'execution' object" in message and "${approved}" in message  # what is wrong, what to write
    assert "camunda/execution_variable.bpmn:" in raised.value.detail


@pytest.mark.parametrize(("data", "end"), [
    ({"order": {"amount": 5000, "urgent": False}, "status": "open"}, "End_Large"),
    ({"order": {"amount": 200, "urgent": False}, "status": "open"}, "End_Open"),
    ({"order": {"amount": 5000, "urgent": True}, "status": "open"}, "End_Other"),
    ({"order": {"amount": 200, "urgent": False}, "status": "closed"}, "End_Other"),
])
def test_feel_conditions_deploy_and_route_the_case(engine, data, end):
    engine.deploy(fixture_files("camunda/review_feel.bpmn"), "designer")
    case, _ = engine.start_case("order_review", "system", data=data)
    assert case["status"] == "completed"
    assert gateway_targets(engine, case["id"]) == [[end]]


def test_feel_outside_the_subset_is_refused_at_deploy(engine):
    xml = (FIXTURES / "camunda/review_feel.bpmn").read_bytes().replace(
        b'=order.amount &lt;= 1000 and status = "open"', b'= if order.rush then true else status = "open"')
    with pytest.raises(DefinitionInvalid) as raised:
        engine.deploy([("review.bpmn", xml)], "designer")
    [problem] = raised.value.errors
    assert problem["element_id"] == "Flow_Open" and problem["file"] == "review.bpmn"
    assert problem["line"] == line_of("camunda/review_feel.bpmn", 'status = "open"')
    assert "is FEEL (Camunda 8)" in problem["message"] and "FEEL's 'if'" in problem["message"]


def test_a_juel_timer_expression_reads_its_duration_from_the_case(clocked_engine):
    engine, clock = clocked_engine
    xml = (FIXTURES / "timers.bpmn").read_bytes().replace(b'"PT1H"', b"${reminder}")
    engine.deploy([("timers.bpmn", xml)], "designer")
    case, _ = engine.start_case("timers", "system", data={"reminder": "PT2H", "resolution_target": "PT8H"})
    assert ("Remind after 1 hour", "2026-01-01T02:00:00Z") in [(w["name"], w["due_at"]) for w in case["waiting_for"]]
    clock.advance(minutes=121)
    assert engine.fire_due_timers() == 1


def test_a_juel_loop_cardinality_counts_instances_and_a_literal_one_is_checked_at_deploy(engine):
    xml = (FIXTURES / "multi_instance.bpmn").read_bytes()
    engine.deploy([("multi_instance.bpmn", xml.replace(b">count<", b">${count}<"))], "designer")
    case, _ = engine.start_case("multi_instance", "system", data={"count": 3})
    assert [t["name"] for t in case["tasks"]] == ["Review"] * 3
    with pytest.raises(DefinitionInvalid) as raised:
        engine.deploy([("multi_instance.bpmn", xml.replace(b">count<", b">${5000}<"))], "designer")
    assert "asks for 5000 instances" in raised.value.errors[0]["message"]


def test_expressions_of_a_process_that_never_runs_are_left_alone(engine):
    idle = ('<bpmn:process id="idle" isExecutable="false"><bpmn:startEvent id="S"/><bpmn:endEvent id="E"/>'
            '<bpmn:sequenceFlow id="F" sourceRef="S" targetRef="E"><bpmn:conditionExpression '
            'xsi:type="bpmn:tFormalExpression">${execution.getVariable(\'x\')}</bpmn:conditionExpression>'
            '</bpmn:sequenceFlow></bpmn:process>\n</bpmn:definitions>')
    xml = (FIXTURES / "camunda/invoice_approval.bpmn").read_text().replace("</bpmn:definitions>", idle)
    _, [deployed] = engine.deploy([("two_processes.bpmn", xml.encode())], "designer")
    assert deployed["key"] == "invoice_approval"
