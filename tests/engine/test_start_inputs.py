"""What a model reads that nothing in it sets: each such read is a deploy warning at its element, and the
variables whose use says their type are the version's start inputs (a JSON Schema). A case started with
them runs on each branch; one started without them stops where the model reads them, as the warning said."""
from __future__ import annotations

import pytest

from usm_engine.engine import variable_uses
from usm_engine.engine.conformance_run import with_start_inputs
from usm_engine.engine.service import Engine, EngineSettings
from usm_engine.engine.variable_uses import value_reads
from tests.conftest import FIXTURES, fixture_files

INVOICE = "start_inputs/invoice_inputs.bpmn"
COUNTER = "start_inputs/form_and_counter.bpmn"


@pytest.fixture
def engine(database_url):
    engine = Engine(EngineSettings(database_url))
    engine.migrate()
    yield engine
    engine.close()


BOOLEAN, NUMBER = {"type": "boolean"}, {"type": "number"}


@pytest.mark.parametrize("expression, expected", [
    ("approved", {"approved": BOOLEAN}),
    ("not approved", {"approved": BOOLEAN}),
    ("a and not b or c", {"a": BOOLEAN, "b": BOOLEAN, "c": BOOLEAN}),
    ("skip == False", {"skip": BOOLEAN}),
    ("x > 1", {"x": NUMBER}),
    ("y == -2.5", {"y": NUMBER}),
    ("count < limit", {"count": NUMBER, "limit": NUMBER}),
    ("size == 'large'", {"size": {"type": "string", "enum": ["large"]}}),
    ("kind == 'a' or kind == 'b'", {"kind": {"type": "string", "enum": ["a", "b"]}}),
    ("region in ['EU', 'US']", {"region": {"type": "string", "enum": ["EU", "US"]}}),
    ("1 if urgent else 2", {"urgent": BOOLEAN}),
    ("total + 1 > 3", {"total": NUMBER}),                # arithmetic with a number
    ("request['size'] == 'large'",                        # an item of a name: the name holds an object
     {"request": {"type": "object", "properties": {"size": {"type": "string", "enum": ["large"]}},
                  "required": ["size"]}}),
    ("any(level == 'red' for level in levels)",           # iterated: a list, its items typed by their use
     {"levels": {"type": "array", "items": {"type": "string", "enum": ["red"]}, "minItems": 1, "maxItems": 3}}),
    ("(lambda v: v > 1)(limit)", {"limit": None}),        # a lambda's argument is its own
    # A field read as an attribute is a field (the sandbox gives a dict's fields so); what a call goes
    # through is not: a service object, a method.
    ("order.size == 'L'", {"order": {"type": "object", "properties": {"size": {"type": "string", "enum": ["L"]}},
                                     "required": ["size"]}}),
    ("svc.api.get(x) > 1 and name.upper() == 'X'", {"name": None, "svc": None, "x": None}),
    # A use that does not say the type: read, but not typed (a guess would only move the incident).
    ("int(tasks) > 0", {"tasks": None}),
    ("name.upper() == 'X'", {"name": None}),
    # Two uses that disagree: no type.
    ("x > 1 or x == 'a'", {"x": None}),
    # Functions called are not data; a syntax error reads nothing.
    ("len(items) > 0", {"items": None}),
    ("x ==", {}),
])
def test_a_reads_type_comes_from_its_use(expression, expected):
    assert variable_uses.typed_reads(expression) == expected


@pytest.mark.parametrize("script, written", [
    ("x = 1", {"x"}),
    ("x = 1\ny = x", {"x", "y"}),
    ("rounds += 1", set()),                              # needs rounds before it
    ("items = [i + 1 for i in items]", set()),           # reads items before it sets it
    ("import math\narea = math.pi", {"math", "area"}),
    ("del temp", set()),                                 # deleting needs it too
    ("this is not python", set()),
])
def test_a_script_sets_only_what_it_does_not_need_first(script, written):
    assert variable_uses.script_writes(script) == written


@pytest.mark.parametrize("script, read", [
    ("if urgent:\n    level = 1", {"urgent": BOOLEAN}),
    ("total = price * 2", {"price": NUMBER}),
    ("second = payload['first'] + 1", {"payload": {"type": "object", "properties": {"first": NUMBER},
                                                   "required": ["first"]}}),
    ("x = 1\ny = x + 1", {}),                             # set before it is read
    ("rounds += 1", {"rounds": NUMBER}),
    ("print(message)", {"message": None}),
    ("start = datetime.strptime(start_date, '%Y-%m-%d')", {"start_date": {"type": "string", "format": "date"}}),
    ("due = date.fromisoformat(due_on)", {"due_on": {"type": "string", "format": "date"}}),
    ("at = datetime.fromisoformat(when)", {"when": {"type": "string", "format": "date-time"}}),
    ("at = datetime.strptime(when, '%d.%m.%Y')", {"when": None}),  # a format random text would not fit
])
def test_a_script_reads_what_it_needs_before_it_sets_it(script, read):
    assert variable_uses.script_reads(script) == read


def test_a_process_declared_data_inputs_are_start_inputs_without_a_warning(engine):
    declared = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="http://x">
  <bpmn:process id="declared" isExecutable="true">
    <bpmn:ioSpecification>
      <bpmn:dataInput id="amount" name="Amount" /><bpmn:dataInput id="requester" name="Requester" />
      <bpmn:inputSet><bpmn:dataInputRefs>amount</bpmn:dataInputRefs>
        <bpmn:dataInputRefs>requester</bpmn:dataInputRefs></bpmn:inputSet>
      <bpmn:outputSet />
    </bpmn:ioSpecification>
    <bpmn:startEvent id="start" />
    <bpmn:scriptTask id="double" scriptFormat="python"><bpmn:script>doubled = amount * 2</bpmn:script></bpmn:scriptTask>
    <bpmn:endEvent id="end" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="double" />
    <bpmn:sequenceFlow id="f2" sourceRef="double" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>"""
    _, [item] = engine.deploy([("declared.bpmn", declared)], "designer")
    assert not [w for w in item["warnings"] if " reads '" in w["message"]]
    assert engine.get_definition("declared")["start_inputs"] == {
        "type": "object", "properties": {"amount": NUMBER, "requester": {"type": "string"}},
        "required": ["amount", "requester"]}
    case, _ = engine.start_case("declared", "system", data={"amount": 21, "requester": "ann"})
    assert (case["status"], case["data"]["doubled"]) == ("completed", 42)


def test_reads_of_unset_variables_are_warned_at_their_element_and_become_typed_start_inputs(engine):
    _, [item] = engine.deploy(fixture_files(INVOICE), "designer")
    warned = [(w["element_id"], w["line"], w["message"].split(", which")[0]) for w in item["warnings"]]
    assert warned == [("approved_gw", 12, "exclusive gateway 'Approved?' (approved_gw) reads 'approved'"),
                      ("approved_gw", 12, "exclusive gateway 'Approved?' (approved_gw) reads 'region'"),
                      ("size_gw", 15, "exclusive gateway 'Large?' (size_gw) reads 'amount'"),
                      ("review", 18, "script task 'Review' (review) reads 'reviewers'")]
    assert item["warnings"][2]["message"].endswith(
        "which nothing in the upload sets (no script, form field, data output, decision output or event variable; "
        "Camunda variable mappings are not applied): unless the case is started with 'amount' in its data (the "
        "version's start_inputs list it when its use says its type), or a person completing a task without a "
        "form, a message or a worker gives it, a case stops there with an incident; add the form field or "
        "script that sets it")
    # score is set by a script before it is read: no warning, no input.
    assert not any("'score'" in w["message"] for w in item["warnings"])
    assert engine.get_definition("invoice_inputs")["start_inputs"] == {
        "type": "object",
        "properties": {"approved": BOOLEAN, "region": {"type": "string", "enum": ["EU", "US"]}, "amount": NUMBER,
                       "reviewers": {"type": "array", "items": {}, "minItems": 1, "maxItems": 3}},  # no use types them
        "required": ["amount", "approved", "region", "reviewers"]}


@pytest.mark.parametrize("data, end", [
    ({"approved": True, "region": "EU", "amount": 50}, "end_small"),
    ({"approved": True, "region": "US", "amount": 5000}, "end_large"),
    ({"approved": False, "reviewers": ["ann", "bob"]}, "end_review"),
])
def test_a_case_started_with_its_inputs_takes_each_branch(engine, data, end):
    engine.deploy(fixture_files(INVOICE), "designer")
    case, _ = engine.start_case("invoice_inputs", "system", data=data)
    assert case["status"] == "completed"
    assert case["data"]["score"] == 7
    trail = [event.get("element_id") for event in engine.trail(case["id"], {})]
    assert end in trail
    if end == "end_review":
        assert case["data"]["last_reviewer"] == "bob"


def test_a_case_started_without_them_stops_where_the_warning_said(engine):
    engine.deploy(fixture_files(INVOICE), "designer")
    case, _ = engine.start_case("invoice_inputs", "system")
    assert case["status"] == "error"
    assert case["incident"]["element_id"] == "approved_gw"
    assert "name 'approved' is not defined" in case["incident"]["message"]


def test_a_form_field_sets_its_variable_and_a_counter_that_needs_itself_is_an_input(engine):
    _, [item] = engine.deploy(fixture_files(COUNTER), "designer")
    reads = [w for w in item["warnings"] if " reads '" in w["message"]]
    assert [(w["element_id"], "'rounds'" in w["message"]) for w in reads] == [("count", True), ("gw", True)]
    assert engine.get_definition("form_and_counter")["start_inputs"]["properties"] == {"rounds": NUMBER}


def test_a_process_that_calls_one_deployed_before_is_not_analysed(engine):
    engine.deploy(fixture_files(COUNTER), "designer")
    caller = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="http://x">
  <bpmn:process id="caller" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:callActivity id="call" calledElement="form_and_counter" />
    <bpmn:exclusiveGateway id="gw" default="other" />
    <bpmn:endEvent id="done" /><bpmn:endEvent id="other_end" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="call" />
    <bpmn:sequenceFlow id="f2" sourceRef="call" targetRef="gw" />
    <bpmn:sequenceFlow id="yes" sourceRef="gw" targetRef="done">
      <bpmn:conditionExpression>rounds &gt; 3</bpmn:conditionExpression></bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="other" sourceRef="gw" targetRef="other_end" />
  </bpmn:process>
</bpmn:definitions>"""
    _, [item] = engine.deploy([("caller.bpmn", caller)], "designer")
    # What form_and_counter sets is not known from this upload: no claim is made either way.
    assert not [w for w in item["warnings"] if " reads '" in w["message"]]
    assert engine.get_definition("caller")["start_inputs"]["properties"] == {}


def test_the_conformance_run_adds_the_start_inputs_to_the_start_form():
    inputs = {"type": "object", "properties": {"approved": BOOLEAN}, "required": ["approved"]}
    assert with_start_inputs(None, inputs) == {"type": "object", "properties": {"approved": BOOLEAN},
                                               "required": ["approved"]}
    camunda = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    assert with_start_inputs(camunda, inputs) == {
        "type": "object", "properties": {"approved": BOOLEAN, "name": {"type": "string"}},
        "required": ["name", "approved"]}
    assert with_start_inputs(camunda, {"type": "object", "properties": {}, "required": []}) is camunda


def test_a_decision_tables_input_columns_are_reads_typed_by_their_column(engine):
    _, [item] = engine.deploy(fixture_files("start_inputs/priced.bpmn", "start_inputs/price.dmn"), "designer")
    assert [w["message"].split(",")[0] for w in item["warnings"]] == [
        "business rule task 'Price' (price) reads 'size'", "business rule task 'Price' (price) reads 'express'"]
    assert engine.get_definition("priced")["start_inputs"]["properties"] == {
        "size": {"type": "string", "enum": ["Large", "Small"]}, "express": BOOLEAN}
    case, _ = engine.start_case("priced", "system", data={"size": "Large", "express": False})
    assert (case["status"], case["data"]["base_price"]) == ("completed", 14)


def test_a_decision_column_that_reads_a_key_types_the_key_and_a_case_given_it_decides(engine):
    # As spiff-arena's models write it: the column reads order["size"], a field of what a message brought.
    dmn = (FIXTURES / "start_inputs" / "price.dmn").read_text().replace("<text>size</text>",
                                                                         '<text>order["size"]</text>')
    _, [item] = engine.deploy([*fixture_files("start_inputs/priced.bpmn"), ("price.dmn", dmn.encode())],
                              "designer")
    assert [w["message"].split(",")[0] for w in item["warnings"]] == [
        "business rule task 'Price' (price) reads 'order'", "business rule task 'Price' (price) reads 'express'"]
    assert engine.get_definition("priced")["start_inputs"]["properties"] == {
        "order": {"type": "object", "properties": {"size": {"type": "string", "enum": ["Large", "Small"]}},
                  "required": ["size"]},
        "express": BOOLEAN}
    case, _ = engine.start_case("priced", "system", data={"order": {"size": "Small"}, "express": True})
    assert (case["status"], case["data"]["base_price"]) == ("completed", 8)


@pytest.mark.parametrize("expression, schema, reads", [
    ('order["size"]', {"type": "string"}, {"order": {"type": "object", "properties": {"size": {"type": "string"}},
                                                     "required": ["size"]}}),
    ("amount", {"type": "number"}, {"amount": {"type": "number"}}),
    ("a + b", {"type": "number"}, {"a": None, "b": None}),  # a sum's parts are not typed by the sum
    ('order["size"]', None, {"order": {"type": "object", "properties": {"size": {}}, "required": ["size"]}}),
    ("len(", {"type": "number"}, {}),
])
def test_value_reads_type_what_an_expression_reads_by_its_value_not_as_a_truth(expression, schema, reads):
    assert value_reads(expression, schema) == reads


def test_a_collection_whose_items_a_script_uses_as_numbers_is_a_list_of_numbers(engine):
    # The collection alone says nothing of its items; a script summing them says they are numbers (before,
    # the collection's guess of text disagreed with that use and the collection got no type at all).
    text = (FIXTURES / "start_inputs" / "invoice_inputs.bpmn").read_text().replace(
        '<bpmn:script>last_reviewer = reviewer</bpmn:script>',
        '<bpmn:script>last_reviewer = reviewer\nweight = sum([r * 2 for r in reviewers])</bpmn:script>')
    engine.deploy([("invoice_inputs.bpmn", text.encode())], "designer")
    assert engine.get_definition("invoice_inputs")["start_inputs"]["properties"]["reviewers"] == {
        "type": "array", "items": {"type": "number"}, "minItems": 1, "maxItems": 3}


def test_what_a_called_process_reads_that_nothing_sets_is_a_start_input_of_its_caller(engine):
    _, items = engine.deploy(fixture_files("start_inputs/calls.bpmn"), "designer")
    warned = {item["key"]: [w["element_id"] for w in item["warnings"]] for item in items}
    assert warned == {"triage_caller": [], "triage_check": ["urgent_gw"]}  # warned once, where it is read
    for key in ("triage_caller", "triage_check"):
        assert engine.get_definition(key)["start_inputs"] == {
            "type": "object", "properties": {"urgent": BOOLEAN}, "required": ["urgent"]}
    case, _ = engine.start_case("triage_caller", "system", data={"urgent": True})
    assert case["status"] == "completed"
    [child] = [e for e in engine.trail(case["id"], {}) if e["element_id"] == "end_urgent"]
    assert child["type"] == "event_passed"
