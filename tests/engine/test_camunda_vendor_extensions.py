"""Elements and attributes a modeler adds beyond BPMN 2.0 (bpmn:metaData in a process, a vendor's element
outside extensionElements, an attribute BPMN does not have): the process deploys with a warning naming
each and its line, and runs without them. What the process refers to, and what is malformed, stays
refused; the XML safety checks still come first."""
from __future__ import annotations

import pytest

from usm_engine.engine.errors import DefinitionInvalid
from tests.conftest import FIXTURES, fixture_files

ANYONE = lambda lane: True  # noqa: E731 - authorization is the API's concern, not these tests'
MODEL = "camunda_vendor_extensions.bpmn"


def model_text() -> str:
    return (FIXTURES / MODEL).read_text()

def only_refusal(engine, text: str) -> dict:
    """The one problem a deployment of this text of the model is refused with."""
    with pytest.raises(DefinitionInvalid) as refused:
        engine.deploy([(MODEL, text.encode())], "designer")
    [problem] = refused.value.errors
    return problem



def test_the_process_deploys_with_a_warning_per_kind_of_extension(engine):
    created, [item] = engine.deploy(fixture_files(MODEL), "designer")
    assert created and item["key"] == "vendor_extensions"
    assert [(w["line"], w["element_id"]) for w in item["warnings"]] == [
        (6, "vendor_extensions"), (8, "vendor_extensions"), (9, "StartEvent_1")]
    meta, layout, colour = (w["message"] for w in item["warnings"])
    assert meta.startswith("<bpmn:metaData> is not an element of BPMN 2.0")
    assert "the process runs without it; the same for 2 more <bpmn:metaData> (lines 7, 18)" in meta
    assert layout.startswith("<vendor:layout> is not an element of BPMN 2.0")
    assert colour.startswith("the attribute 'vendorColour' of start event 'StartEvent_1' is not part of BPMN 2.0")
    # extensionElements may hold anything: the checklist inside one is not warned about
    assert not any("checklist" in w["message"] for w in item["warnings"])


def test_a_case_runs_to_the_end_and_the_stored_source_keeps_the_extensions(engine):
    engine.deploy(fixture_files(MODEL), "designer")
    case, _ = engine.start_case("vendor_extensions", "system")
    [task] = case["tasks"]
    assert task["element_id"] == "Activity_Register"
    done = engine.complete_task(task["id"], {"complaint": "late delivery"}, "desk", ANYONE)
    assert done["status"] == "completed" and done["data"]["complaint"] == "late delivery"
    _, source = engine.definition_source("vendor_extensions", 1)
    assert source.count(b"<bpmn:metaData") == 3 and b'vendorColour="blue"' in source


def test_a_vendor_element_the_process_refers_to_is_refused(engine):
    # A vendor's own task type with sequence flows to and from it: without it the process cannot run.
    text = model_text().replace('<bpmn:userTask id="Activity_Register" name="Register the complaint">',
                                '<bpmn:robotTask id="Activity_Register" name="Register the complaint">')
    text = text.replace("</bpmn:userTask>", "</bpmn:robotTask>")
    problem = only_refusal(engine, text)
    assert (problem["line"], problem["element_id"]) == (12, "Activity_Register")
    assert problem["message"].startswith("<bpmn:robotTask> 'Register the complaint' (Activity_Register) is not an "
                                         "element of BPMN 2.0")
    assert "the process refers to it" in problem["message"]


def test_what_is_malformed_stays_refused_with_its_line(engine):
    text = model_text().replace('sourceRef="Activity_Register" targetRef="EndEvent_1" />',
                                'sourceRef="Activity_Register" />')
    problem = only_refusal(engine, text)
    assert problem["line"] == 24 and problem["element_id"] == "Flow_2"
    assert problem["message"] == ("does not conform to the BPMN 2.0 schema: Element 'bpmn:sequenceFlow': The "
                                  "attribute 'targetRef' is required but missing")


def test_an_unknown_attribute_does_not_hide_a_real_problem_beside_it(engine):
    # vendorColour (line 9) would be ignored; a BPMN attribute with a value BPMN does not allow is refused
    text = model_text().replace('<bpmn:endEvent id="EndEvent_1">', '<bpmn:endEvent id="EndEvent_1" '
                                                                    'isInterrupting="sometimes">')
    text = text.replace('name="Register the complaint">', 'name="Register the complaint" startQuantity="many">')
    problem = only_refusal(engine, text)
    assert problem["element_id"] == "Activity_Register" and problem["line"] == 12
    assert "startQuantity" in problem["message"] and "'many' is not a valid value" in problem["message"]


def test_the_xml_safety_checks_come_before_any_tolerance(engine):
    text = model_text().replace('<?xml version="1.0" encoding="UTF-8"?>',
                                '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE x [<!ENTITY e "boom">]>')
    problem = only_refusal(engine, text)
    assert problem["message"].startswith("DOCTYPE and ENTITY declarations are not allowed")
