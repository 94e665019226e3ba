"""Camunda 7 extensions that change what a step sees or does, which this engine does not apply (variable
mappings, listeners): the deployment names each where it is, and the case runs without them."""
from __future__ import annotations

from tests.conftest import FIXTURES

ANYONE = lambda lane: True  # noqa: E731 - authorization is the API's concern, not these tests'
MODEL = "camunda_assignment.bpmn"
EXTENSIONS = """      <bpmn:extensionElements>
        <camunda:inputOutput>
          <camunda:inputParameter name="total">${amount * 2}</camunda:inputParameter>
        </camunda:inputOutput>
        <camunda:taskListener class="org.example.Notify" event="create" />
        <camunda:taskListener class="org.example.Audit" event="complete" />
      </bpmn:extensionElements>
"""


def test_mappings_and_listeners_are_named_and_the_case_runs_without_them(engine):
    text = (FIXTURES / MODEL).read_text().replace(
        '                   camunda:candidateGroups="Service manager, accounting">\n',
        '                   camunda:candidateGroups="Service manager, accounting">\n' + EXTENSIONS)
    _, [item] = engine.deploy([(MODEL, text.encode())], "designer")
    applied = [w for w in item["warnings"] if "does not apply" in w["message"] or "does not run" in w["message"]]
    assert [(w["line"], w["element_id"]) for w in applied] == [(23, "Activity_Approve"), (23, "Activity_Approve")]
    mapping, listener = (w["message"] for w in applied)
    assert mapping.startswith("user task 'Approve purchase' (Activity_Approve) maps variables with "
                              "camunda:inputOutput, which this engine does not apply")
    assert listener.startswith("user task 'Approve purchase' (Activity_Approve) has a camunda:taskListener")

    case, _ = engine.start_case("camunda_assignment", "system", data={"amount": 10})
    for _ in range(3):
        case = engine.complete_task(case["tasks"][0]["id"], {}, "alice", ANYONE)
    assert case["status"] == "completed" and "total" not in case["data"]
