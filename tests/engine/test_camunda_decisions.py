"""A business rule task that names its decision the way SpiffWorkflow's own modeler does
(spiffworkflow:calledDecisionId) calls that DMN decision as camunda:decisionRef would; one that names
no decision at all deploys with a warning, as a task with nothing to run."""
from __future__ import annotations

import pytest

from usm_engine.engine.errors import DefinitionInvalid
from tests.conftest import FIXTURES, fixture_files
from tests.engine.test_deployment import DMN  # the risk table: amount > 1000 is high

ANYONE = lambda lane: True  # noqa: E731 - authorization is the API's concern, not these tests'
MODEL = "camunda_spiff_decision.bpmn"


@pytest.mark.parametrize("amount, risk", [(5000, "high"), (200, "low")])
def test_the_decision_named_by_spiffworkflow_runs_and_the_case_ends(engine, amount, risk):
    created, [item] = engine.deploy([*fixture_files(MODEL), ("risk.dmn", DMN)], "designer")
    # The only warning: the table reads `amount`, which the start data gives (start_inputs.py).
    assert created and [(w["element_id"], w["message"].split(", which")[0]) for w in item["warnings"]] == [
        ("Activity_Assess", "business rule task 'Assess risk' (Activity_Assess) reads 'amount'")]
    case, _ = engine.start_case("spiff_decision", "system", data={"amount": amount})
    [task] = case["tasks"]
    assert task["element_id"] == "Activity_Review" and case["data"]["risk"] == risk
    assert engine.complete_task(task["id"], {}, "alice", ANYONE)["status"] == "completed"
    _, source = engine.definition_source("spiff_decision", 1)
    assert b"decisionRef=" not in source  # the stored source is the file as uploaded


def test_without_the_dmn_file_the_decision_is_missing_where_it_is_called(engine):
    with pytest.raises(DefinitionInvalid) as refused:
        engine.deploy(fixture_files(MODEL), "designer")
    [problem] = refused.value.errors
    assert problem["element_id"] == "Activity_Assess" and "calls decision 'risk_level'" in problem["message"]


def test_a_business_rule_task_that_names_no_decision_deploys_with_a_warning(engine):
    # It has nothing to run: a case reaching it is an incident (test_deploy_open_models.py).
    text = (FIXTURES / MODEL).read_text().replace(
        "<spiffworkflow:calledDecisionId>risk_level</spiffworkflow:calledDecisionId>", "")
    _, [item] = engine.deploy([(MODEL, text.encode()), ("risk.dmn", DMN)], "designer")
    [warning] = item["warnings"]
    assert (warning["line"], warning["element_id"]) == (7, "Activity_Assess")
    assert warning["message"].startswith("business rule task 'Assess risk' (Activity_Assess) names no decision")
