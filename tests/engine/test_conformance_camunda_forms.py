"""The conformance run fills in Camunda 7's generated forms (camunda:formData), which the engine does not
show but which say what a person enters: a start event's form when it starts a case, a user task's when it
has no JSON Schema form of its own. It turns on the Java-as-external-task setting, so its stub worker does
the Java service tasks; and a command of the engine that does not return is stopped and reported as a crash."""
from __future__ import annotations

import random
import time

import pytest

from usm_engine.engine import conformance_run
from usm_engine.engine.conformance_forms import camunda_forms, form_data, form_of
from usm_engine.engine.conformance_run import CommandHung, command_deadline, drive_file, template_database
from usm_engine.engine.forms import Form
from tests.conftest import FIXTURES

FOLDER = FIXTURES / "conformance_camunda"


def bundle(name: str) -> list[tuple[str, bytes]]:
    return [(name, (FOLDER / name).read_bytes())]


def test_a_camunda_form_becomes_the_json_schema_of_what_a_person_enters():
    forms = camunda_forms(bundle("start_form.bpmn") + bundle("task_form.bpmn"))
    # The message start event's form is left out: nobody fills it in to start the case.
    assert sorted(forms, key=str) == sorted([("request", None), ("review", "decide")], key=str)
    assert forms[("request", None)] == {  # the read-only field is shown, not filled in
        "type": "object", "required": ["amount"],
        "properties": {"amount": {"type": "integer", "minimum": 1, "maximum": 100}}}
    assert forms[("review", "decide")]["properties"] == {
        "verdict": {"enum": ["accept", "reject"]}, "urgent": {"type": "boolean", "default": False}}


def test_random_data_of_a_camunda_form_is_what_the_form_allows():
    schema = camunda_forms(bundle("start_form.bpmn"))[("request", None)]
    rng = random.Random(7)
    amounts = {form_data(schema, rng)["amount"] for _ in range(30)}
    assert amounts <= set(range(1, 101)) and len(amounts) > 5
    assert not Form(schema).problems({"amount": 5}) and Form(schema).problems({})


def test_a_defaults_value_is_typed_and_an_expression_is_no_default():
    from lxml import etree
    field = ('<bpmn:userTask xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
             'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="t"><bpmn:extensionElements><camunda:formData>'
             '<camunda:formField id="n" type="long" defaultValue="12" />'
             '<camunda:formField id="who" type="string" defaultValue="${initiator}" />'
             '<camunda:formField id="when" type="date" />'
             '</camunda:formData></bpmn:extensionElements></bpmn:userTask>')
    assert form_of(etree.fromstring(field))["properties"] == {
        "n": {"type": "integer", "default": 12}, "who": {"type": "string"},
        "when": {"type": "string", "format": "date"}}


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return template_database(tmp_path_factory.mktemp("conformance"))


def test_a_case_is_started_with_its_start_forms_data(template):
    [case] = drive_file(bundle("start_form.bpmn"), "start_form.bpmn", template).cases
    assert (case.outcome, case.detail) == ("completed", "")


def test_without_the_forms_the_same_case_stops_at_the_gateway(template, monkeypatch):
    monkeypatch.setattr(conformance_run, "camunda_forms", lambda _bundle: {})
    [case] = drive_file(bundle("start_form.bpmn"), "start_form.bpmn", template).cases
    assert case.outcome == "incident" and "name 'amount' is not defined" in case.detail


def test_a_user_tasks_camunda_form_is_filled_and_the_java_task_done_by_the_stub_worker(template):
    [case] = drive_file(bundle("task_form.bpmn"), "task_form.bpmn", template).cases
    assert (case.outcome, case.steps) == ("completed", 2)


def test_a_command_that_does_not_return_is_stopped():
    started = time.perf_counter()
    with pytest.raises(CommandHung, match="did not return within 0.2 s"):
        with command_deadline(0.2):
            while True:
                pass
    assert time.perf_counter() - started < 5
    with command_deadline(0.2):
        pass
    time.sleep(0.3)  # the timer was cancelled: nothing is raised after the block


def test_a_case_whose_command_hangs_is_reported_as_crashed(template, monkeypatch):
    class Hanging:
        def get_definition(self, _key):
            return {"start_inputs": {"type": "object", "properties": {}, "required": []}}

        def start_case(self, *_args, **_kwargs):
            time.sleep(10)

    monkeypatch.setattr(conformance_run, "COMMAND_SECONDS", 0.2)
    result = conformance_run.drive_case(Hanging(), None, "hang.bpmn", "hang")  # type: ignore[arg-type]
    assert (result.outcome, result.detail) == ("crashed", "CommandHung: a command of the engine did not return "
                                                          "within 0.2 s")
    assert result.seconds < 5


def test_a_start_form_file_that_is_not_json_leaves_the_start_without_a_form():
    model = (b'<?xml version="1.0"?><bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
             b'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d"><bpmn:process id="p" isExecutable="true">'
             b'<bpmn:startEvent id="s" camunda:formKey="start.json"/></bpmn:process></bpmn:definitions>')
    assert camunda_forms([("p.bpmn", model), ("start.json", b"{not json")]) == {}
    assert camunda_forms([("p.bpmn", model), ("start.json", b'{"type": "object"}')]) == {("p", None): {
        "type": "object"}}


def test_a_definition_that_starts_on_a_correlated_message_is_started_with_the_keys_its_correlation_reads(tmp_path):
    """The second line starts on a handover message keyed on `ticket` (a formalExpression, as SpiffWorkflow's
    modeler writes it); the run fills in the key as a sender would, and the case starts and waits for work."""
    files = [(name, (FIXTURES / "handoff" / name).read_bytes()) for name in ("second_line.bpmn",)]
    assert camunda_forms(files)[("second_line", None)] == {
        "type": "object", "properties": {"ticket": {"type": "string"}}, "required": ["ticket"]}
    driven = drive_file(files, "second_line.bpmn", template_database(tmp_path))
    [case] = driven.cases
    assert case.outcome == "completed", case.detail  # its user task filled in with any data, then the end


def test_bpmns_message_path_is_read_as_well_and_paths_that_are_no_name_are_left_out():
    text = (FIXTURES / "handoff" / "second_line.bpmn").read_text()
    text = text.replace("<bpmn:formalExpression>ticket</bpmn:formalExpression>",
                        "<bpmn:messagePath>ticket</bpmn:messagePath>")
    assert camunda_forms([("a.bpmn", text.encode())])[("second_line", None)]["required"] == ["ticket"]
    odd = text.replace("<bpmn:messagePath>ticket</bpmn:messagePath>", "<bpmn:messagePath>order.id</bpmn:messagePath>")
    assert ("second_line", None) not in camunda_forms([("a.bpmn", odd.encode())])
