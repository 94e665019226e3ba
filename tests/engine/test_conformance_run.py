"""`usm conformance` drives the cases of every deployed file: each outcome (completed, waiting on an event,
a model's incident, an engine's incident, a limit, a crash) is told apart, and a crash fails the command.
The folders under fixtures/conformance_run hold one small model per outcome."""
from __future__ import annotations

import json
import random

import pytest
from click.testing import CliRunner

from usm_engine.api.cli import main
from usm_engine.engine import conformance, conformance_cases, conformance_run, incidents
from usm_engine.engine.conformance_forms import form_data
from usm_engine.engine.conformance_incidents import classify
from usm_engine.engine.forms import Form
from usm_engine.engine.incidents import Place
from usm_engine.engine.service import Engine
from tests.conftest import FIXTURES

FOLDER = FIXTURES / "conformance_run"


def cases_of(report: conformance.Report) -> dict[str, conformance_run.CaseResult]:
    return {case.file: case for case in report.cases or []}


@pytest.fixture(scope="module")
def report() -> conformance.Report:
    return conformance.run(FOLDER)


def test_a_form_a_timer_and_a_gateway_are_driven_to_the_end(report):
    order = cases_of(report)["forms/order.bpmn"]
    # The order task, then the two-hour timer (fired by moving the clock), then Approve on the large path.
    assert (order.outcome, order.definition, order.detail) == ("completed", "order", "")
    assert order.steps in (2, 3)


def test_an_external_task_is_completed_by_the_stub_worker(report):
    ship = cases_of(report)["worker/ship.bpmn"]
    assert (ship.outcome, ship.steps) == ("completed", 1)


def test_a_case_waiting_for_a_message_is_waiting_on_that_event(report):
    payment = cases_of(report)["waiting/payment.bpmn"]
    assert (payment.outcome, payment.detail, payment.steps) == ("waiting", "message 'payment_received'", 0)


def test_a_failing_script_is_an_incident_of_the_model(report):
    total = cases_of(report)["failing/total.bpmn"]
    assert (total.outcome, total.element, total.owner, total.cause) == (
        "incident", "Script_Total", "model", "a step failed: NameError")
    assert "name 'price_of' is not defined" in total.detail  # a function nobody gives: no start input


def test_what_a_model_reads_and_nothing_sets_is_given_at_start(report):
    gate = cases_of(report)["inputs/gate.bpmn"]
    assert (gate.outcome, gate.start_inputs) == ("completed", ["approved"])


def test_a_task_whose_declared_output_is_part_of_its_form_gets_it_from_the_driver(report):
    # The task's dataOutput is a required field of its form (task_outputs.py), which the driver fills in;
    # completing it without the output was an incident of the model.
    record = cases_of(report)["failing/record.bpmn"]
    assert (record.outcome, record.element, record.owner) == ("completed", None, None)


def test_the_report_counts_per_folder_and_lists_incidents(report):
    found = report.as_dict()["cases"]
    assert {key: found[key] for key in ("started", "completed", "waiting", "incident", "limit", "crashed")} == {
        "started": 6, "completed": 4, "waiting": 1, "incident": 1, "limit": 0, "crashed": 0}
    assert found["by_folder"]["failing"]["model_incidents"] == 1
    assert found["completed_or_waiting_percent"] == 83.3
    assert {(i["file"], i["element"]) for i in found["incidents"]} == {("failing/total.bpmn", "Script_Total")}
    text = report.markdown()
    assert "| forms | 1 | 1 | 0 | 0 (0 / 0) | 0 | 0 | 0 |" in text
    assert "| **all** | 6 | 4 | 1 | 1 (1 / 0) | 0 | 0 | 0 |" in text


def test_the_engines_own_incidents_are_told_from_the_models():
    place = Place("Task_1", "Task", "main")
    assert classify(incidents.engine_fault(place, TypeError("'NoneType' object is not iterable")).message) == (
        "engine", "the engine could not go on")
    assert classify(incidents.timer_failed(place, "boom").message)[0] == "engine"
    assert classify(incidents.uncaught_error(place, "E1").message) == ("model", "uncaught BPMN error")
    assert classify(incidents.not_implemented(place).message) == ("model", "service task without implementation")


def test_a_step_limit_is_reported_as_such(monkeypatch):
    monkeypatch.setattr(conformance_run, "MAX_STEPS", 1)
    order = cases_of(conformance.run(FOLDER))["forms/order.bpmn"]
    assert (order.outcome, order.steps, order.detail) == ("limit", 1, "not finished after 1 steps")


def test_an_exception_escaping_the_engine_is_a_crash_and_fails_the_command(monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("serializer lost its way")

    monkeypatch.setattr(Engine, "lock_external_tasks", explode)
    result = CliRunner().invoke(main, ["conformance", str(FOLDER), "--format", "json"])
    assert result.exit_code == 1
    found = json.loads(result.output.split("\n1 faults")[0])
    assert found["cases"]["crashed"] == 1
    assert found["faults"] == ["worker/ship.bpmn: a case of 'ship' crashed: RuntimeError: serializer lost its way"]


def test_the_command_drives_cases_unless_told_not_to():
    result = CliRunner().invoke(main, ["conformance", str(FOLDER), "--min-deployed", "5"])
    assert result.exit_code == 0, result.output
    assert "## Cases" in result.output and "waiting/payment.bpmn` (payment): for message 'payment_received'" in (
        result.output)
    deploy_only = CliRunner().invoke(main, ["conformance", str(FOLDER), "--no-run", "--format", "json"])
    assert deploy_only.exit_code == 0 and "cases" not in json.loads(deploy_only.output)
    too_few = CliRunner().invoke(main, ["conformance", str(FOLDER), "--no-run", "--min-deployed", "7"])
    assert too_few.exit_code == 1


def test_the_command_fails_below_the_share_of_cases_it_is_told_to_expect():
    report = conformance.run(FOLDER)
    settled = conformance_cases.counts(report.cases)["completed_or_waiting_percent"]
    assert 0 < settled < 100  # the fixtures hold a model's incident, so not every case settles
    enough = CliRunner().invoke(main, ["conformance", str(FOLDER), "--min-settled", str(settled)])
    assert enough.exit_code == 0, enough.output
    short = CliRunner().invoke(main, ["conformance", str(FOLDER), "--min-settled", str(settled + 0.1)])
    assert short.exit_code == 1
    assert f"{settled} % of the cases completed or waiting (at least {settled + 0.1} expected)" in short.output


def test_an_incident_of_the_engines_own_is_a_fault():
    case = conformance_run.CaseResult("a.bpmn", "a", "incident", detail="the engine could not go on at 'X'",
                                      owner="engine", cause="the engine could not go on")
    models = conformance_run.CaseResult("b.bpmn", "b", "incident", detail="name 'x' is not defined", owner="model")
    assert conformance_cases.case_faults([case, models]) == [
        "a.bpmn: a case of 'a' met an incident of the engine: the engine could not go on at 'X'"]


def test_random_form_data_is_accepted_by_the_form_and_an_impossible_form_is_said_so():
    schema = json.loads((FOLDER / "forms" / "order.schema.json").read_text())
    rng = random.Random(7)
    for _ in range(20):
        assert Form(schema).problems(form_data(schema, rng)) == []
    with pytest.raises(ValueError, match="could not make data"):
        form_data({"type": "object", "properties": {"code": {"type": "string", "pattern": "^[0-9]{6}$"}},
                   "required": ["code"]}, rng)
