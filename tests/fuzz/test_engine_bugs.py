"""Engine bugs found by fuzzing, each shown at the engine's own interface (and one over HTTP). All are
fixed; each test stays as a regression test stating the behaviour we want."""
from __future__ import annotations

from pathlib import Path

import pytest

from usm_engine.engine.errors import DefinitionInvalid, DefinitionNotFound, InvalidInput
from usm_engine.engine.forms import Form
from tests.conftest import fixture_files

OPEN_FORM = [("open_form.bpmn", (Path(__file__).parent / "open_form.bpmn").read_bytes())]


# Case data holding an object with a "typename" key was stored, but SpiffWorkflow's serializer
# (DictionaryConverter.restore) took such a dict for a serialized object when the case is restored: an
# unknown typename gives TypeError ('NoneType' object is not callable), "UUID"/"datetime" give objects that
# json.dumps then refuses. Every later command on the case was a 500, for good. Fixed: the engine now
# refuses such data (InvalidInput, 422).
@pytest.mark.parametrize("value", [{"typename": "anything"},
                                   {"typename": "UUID", "value": "0f8fad5b-d9cb-469f-a165-70867728950e"},
                                   {"typename": "datetime", "value": "2026-01-01T00:00:00"}],
                         ids=["unknown", "UUID", "datetime"])
@pytest.mark.parametrize("entry", ["start data", "task completion"])
def test_data_with_a_typename_key_round_trips_or_is_refused(engine, value, entry):
    engine.deploy(OPEN_FORM, "designer")
    data = {"x": value, "list": [value]}
    try:
        if entry == "start data":
            case, _ = engine.start_case("open_form", "system", data=data)
        else:
            case, _ = engine.start_case("open_form", "system")
            case = engine.complete_task(case["tasks"][0]["id"], data, "system", lambda lane: True)
    except InvalidInput:
        return  # refusing such data up front is an acceptable fix
    # Accepted, so the case must go on: every later command restores it first.
    after = engine.complete_task(case["tasks"][0]["id"], {}, "system", lambda lane: True)
    assert after["data"]["x"] == value and after["data"]["list"] == [value]


# engine/forms.py Form.problems takes the missing field's name from jsonschema's message
# ("'name' is a required property") by splitting at single quotes; a name holding a quote (repr then uses
# double quotes) or a backslash or control character (repr escapes it) came out wrong.
@pytest.mark.parametrize("name", ["it's", "back\\slash", "new\nline", "both'\""])
def test_a_missing_required_field_is_named_exactly(name):
    # Two fields missing from the same object: each problem must name its own field.
    schema = {"type": "object", "properties": {"outer": {"type": "object", "required": [name, "plain"]}},
              "required": ["outer"]}
    fields = sorted(problem["field"] for problem in Form(schema).problems({"outer": {}}))
    assert fields == sorted([f"outer.{name}", "outer.plain"])


# engine/store.py find_definition bound any Python int as the version; one that does not fit the column
# raised OverflowError (SQLite, >= 2**63) or DataError "integer out of range" (PostgreSQL, >= 2**31)
# instead of DefinitionNotFound. The HTTP API refuses such versions itself (api/routes/definitions.py); the
# engine was fixed as well.
@pytest.mark.parametrize("version", [2**31, 2**64])
@pytest.mark.parametrize("call", ["definition_source", "start_case"])
def test_a_version_beyond_the_integer_column_is_not_found(engine, call, version):
    engine.deploy(fixture_files("approval.bpmn", "submit.schema.json", "decide.schema.json"), "designer")
    with pytest.raises(DefinitionNotFound):
        if call == "definition_source":
            engine.definition_source("approval", version)
        else:
            engine.start_case("approval", "system", version=version)


def test_over_http_typename_data_is_refused_or_the_case_keeps_working(client):
    from tests.conftest import bearer

    system = bearer("system")
    deployed = client.post("/api/v1/definitions?filename=open_form.bpmn", data=OPEN_FORM[0][1],
                           content_type="application/xml", headers=bearer("designer"))
    assert deployed.status_code == 201, deployed.get_data(as_text=True)
    case = client.post("/api/v1/cases", json={"definition": "open_form"}, headers=system).get_json()
    completed = client.post(f"/api/v1/tasks/{case['tasks'][0]['id']}/complete",
                            json={"data": {"x": {"typename": "anything"}}}, headers=system)
    assert completed.status_code in (200, 422), completed.get_data(as_text=True)
    cancelled = client.post(f"/api/v1/cases/{case['id']}/cancel", headers=system)
    assert cancelled.status_code == 200, (cancelled.status_code, cancelled.get_data(as_text=True))


LONG = "n" * 300
ONE_TASK = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="Defs" targetNamespace="http://example.com/f">
  <bpmn:process id="{process_id}" name="{process_name}" isExecutable="true">
    <bpmn:laneSet id="LaneSet_1"><bpmn:lane id="Lane_1" name="{lane}"><bpmn:flowNodeRef>StartEvent_1</bpmn:flowNodeRef>
      <bpmn:flowNodeRef>{task_id}</bpmn:flowNodeRef><bpmn:flowNodeRef>EndEvent_1</bpmn:flowNodeRef></bpmn:lane></bpmn:laneSet>
    <bpmn:startEvent id="StartEvent_1"><bpmn:outgoing>F1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="{task_id}" name="{task_name}"><bpmn:incoming>F1</bpmn:incoming>
      <bpmn:outgoing>F2</bpmn:outgoing></bpmn:userTask>
    <bpmn:endEvent id="EndEvent_1"><bpmn:incoming>F2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="F1" sourceRef="StartEvent_1" targetRef="{task_id}" />
    <bpmn:sequenceFlow id="F2" sourceRef="{task_id}" targetRef="EndEvent_1" />
  </bpmn:process>
</bpmn:definitions>"""


# The engine stored process ids and names, element ids and names and lane names in VARCHAR(255) columns
# but never checked their length at deployment. SQLite ignores the limit; PostgreSQL refuses the row, so a
# process id or name over 255 characters was a 500 at deployment, and an element id, element name or lane
# name over 255 deployed fine and then made every start of the definition a 500. Fixed in the engine.
@pytest.mark.parametrize("field", ["process_id", "process_name", "task_id", "task_name", "lane"])
def test_a_name_longer_than_its_column_is_refused_at_deployment_or_works(engine, field):
    names = {"process_id": "long_names", "process_name": "Long names", "task_id": "Activity_1",
             "task_name": "Do it", "lane": "Desk"}
    names[field] = ("p" if field.endswith("_id") else "") + LONG
    try:
        engine.deploy([("long.bpmn", ONE_TASK.format(**names).encode())], "designer")
    except DefinitionInvalid:
        return  # refused with a problem the designer can act on: the fix we would like
    case, _ = engine.start_case(names["process_id"], "system")
    assert case["tasks"][0]["name"] == names["task_name"] and case["tasks"][0]["lane"] == names["lane"]


# engine/store.py decode_cursor caught ValueError, TypeError and UnicodeDecodeError but not RecursionError,
# which json.loads raises for a cursor that decodes to deeply nested JSON: ?cursor=<base64 of "[" * 1500>
# (2000 characters, well within a request line) was a 500 on GET /api/v1/cases and GET /api/v1/tasks. Fixed.
@pytest.mark.parametrize("listing", ["cases", "tasks"])
def test_a_forged_deeply_nested_cursor_is_invalid_input(engine, listing):
    import base64

    cursor = base64.urlsafe_b64encode(b"[" * 1500).decode().rstrip("=")
    with pytest.raises(InvalidInput):
        if listing == "cases":
            engine.list_cases({"status": None, "definition": None, "business_key": None, "created_after": None,
                               "created_before": None}, cursor, 10)
        else:
            engine.list_tasks({"state": "ready", "case": None, "lane": None, "definition": None}, None, cursor, 10)
