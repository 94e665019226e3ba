"""`usm diff`'s engine half: two deployed versions of a small model (tests/fixtures/diff/v1 and v2) and every
kind of change between them, listed once, by id; identical versions list nothing."""
from __future__ import annotations

import pytest

from usm_engine.engine.definition_diff import StoredFiles, as_text, compare
from usm_engine.engine.errors import DefinitionNotFound
from tests.conftest import FIXTURES

DIFF = FIXTURES / "diff"


def version_files(folder: str) -> list[tuple[str, bytes]]:
    return [(path.name, path.read_bytes()) for path in sorted((DIFF / folder).iterdir())]


@pytest.fixture
def order(engine):
    """The engine with versions 1 and 2 of `order` deployed."""
    for folder in ("v1", "v2"):
        created, items = engine.deploy(version_files(folder), "designer")
        assert created and [(i["key"], i["created"]) for i in items] == [("order", True)]
    return engine


def test_added_removed_and_changed_elements_are_listed_by_id_with_type_and_name(order):
    elements = order.diff_definition("order", 1, 2)["elements"]
    assert elements["added"] == [{"id": "Activity_Check", "type": "scriptTask", "name": "Check stock"},
                                 {"id": "EndEvent_Declined", "type": "endEvent", "name": "Declined"}]
    assert elements["removed"] == [{"id": "EndEvent_Rejected", "type": "endEvent", "name": "Rejected"}]
    changed = {e["id"]: e for e in elements["changed"]}
    assert set(changed) == {"Activity_Submit", "Activity_Record", "Event_Reminder"}
    assert changed["Activity_Submit"]["changes"] == [
        {"what": "name", "before": "Submit order", "after": "Submit the order"}]
    assert [c["what"] for c in changed["Activity_Record"]["changes"]] == ["script"]
    assert [c["what"] for c in changed["Event_Reminder"]["changes"]] == ["timer duration"]
    # Activity_Decide's incoming flow was replaced: that is a flow change, not one of the task
    assert "Activity_Decide" not in changed


def test_sequence_flows_name_source_and_target_and_what_changed(order):
    flows = order.diff_definition("order", 1, 2)["flows"]
    assert [(f["id"], f["source"], f["target"]) for f in flows["added"]] == [
        ("Flow_CheckToDecide", "Activity_Check", "Activity_Decide"),
        ("Flow_ToCheck", "Activity_Submit", "Activity_Check")]
    assert [(f["id"], f["source"], f["target"]) for f in flows["removed"]] == [
        ("Flow_ToDecide", "Activity_Submit", "Activity_Decide")]
    changed = {f["id"]: f["changes"] for f in flows["changed"]}
    assert changed == {
        "Flow_No": [{"what": "target", "before": "EndEvent_Rejected", "after": "EndEvent_Declined"}],
        "Flow_Yes": [{"what": "condition", "before": "approved == True", "after": "approved == True and in_stock"}]}


def test_forms_list_fields_added_removed_and_changed(order):
    forms = order.diff_definition("order", 1, 2)["forms"]
    assert forms["added"] == [] and forms["removed"] == []  # decide.schema.json is the same file in both
    [form] = forms["changed"]
    assert form["file"] == "order.schema.json" and form["used_by"] == ["Activity_Submit"]
    assert form["fields"] == {
        "added": [{"field": "delivery_date", "type": "string", "required": True}],
        "removed": [{"field": "note", "type": "string", "required": False}],
        "changed": [{"field": "quantity", "changes": [{"what": "maximum", "before": 100, "after": 50}]}]}
    assert form["keywords"] == []


def test_conditions_timers_and_scripts_with_their_text(order):
    conditions = {(c["element_id"], c["kind"]): (c["before"], c["after"])
                  for c in order.diff_definition("order", 1, 2)["conditions"]}
    assert conditions == {
        ("Flow_Yes", "condition"): ("approved == True", "approved == True and in_stock"),
        ("Event_Reminder", "timer duration"): ('"PT1H"', '"PT2H"'),
        ("Activity_Record", "script"): ("total = quantity * 10", 'total = quantity * 12\noutcome = "approved"'),
        ("Activity_Check", "script"): (None, "in_stock = quantity <= 50")}


def test_the_other_way_round_swaps_added_and_removed(order):
    forward, backward = order.diff_definition("order", 1, 2), order.diff_definition("order", 2, 1)
    assert backward["elements"]["added"] == forward["elements"]["removed"]
    assert backward["flows"]["removed"] == forward["flows"]["added"]
    assert backward["forms"]["changed"][0]["fields"]["added"][0]["field"] == "note"


@pytest.mark.parametrize("version", [1, 2])
def test_identical_versions_give_an_empty_diff(order, version):
    diff = order.diff_definition("order", version, version)
    assert diff == {"key": "order", "from": version, "to": version,
                    "files": {"added": [], "removed": [], "changed": []},
                    "elements": {"added": [], "removed": [], "changed": []},
                    "flows": {"added": [], "removed": [], "changed": []},
                    "forms": {"added": [], "removed": [], "changed": []},
                    "decisions": {"added": [], "removed": [], "changed": []},
                    "conditions": []}
    assert as_text(diff).splitlines()[1] == "no differences: both versions are built from the same files"


def test_a_version_that_differs_only_in_layout_names_the_file_and_nothing_else(order):
    files = dict(version_files("v2"))
    files["order.bpmn"] = files["order.bpmn"].replace(b"<bpmn:process ", b"<!-- moved a shape -->\n  <bpmn:process ")
    _, items = order.deploy(list(files.items()), "designer")
    assert items[0]["version"] == 3
    diff = order.diff_definition("order", 2, 3)
    assert diff["files"]["changed"] == ["order.bpmn"]
    assert not any(any(diff[section].values()) for section in ("elements", "flows", "forms", "decisions"))
    assert diff["conditions"] == []
    assert "the files differ only in layout, formatting or parts outside the process (order.bpmn)" in as_text(diff)


def test_unknown_key_or_version_says_which(order):
    with pytest.raises(DefinitionNotFound, match="no definition with key 'nope' is deployed"):
        order.diff_definition("nope", 1, 2)
    with pytest.raises(DefinitionNotFound, match=r"definition 'order' has no version 7 \(it has versions 1 to 2\)"):
        order.diff_definition("order", 1, 7)
    with pytest.raises(DefinitionNotFound, match="has no version 0"):
        order.diff_definition("order", 0, 2)


def test_the_text_marks_added_removed_and_changed(order):
    text = as_text(order.diff_definition("order", 1, 2))
    assert text.splitlines()[0] == "order: version 1 → 2"
    for line in ("  + script task Activity_Check 'Check stock'",
                 "  - end event EndEvent_Rejected 'Rejected'",
                 "  ~ user task Activity_Submit 'Submit the order': name 'Submit order' → 'Submit the order'",
                 "  - Flow_ToDecide: Activity_Submit → Activity_Decide",
                 "  ~ Flow_No: Gateway_Approved → EndEvent_Declined: target 'EndEvent_Rejected' → 'EndEvent_Declined'",
                 "  ~ form order.schema.json (used by Activity_Submit)",
                 "      + field delivery_date (string, required)",
                 "      - field note (string)",
                 "      ~ field quantity: maximum 100 → 50",
                 "  ~ boundary event Event_Reminder 'Reminder' timer duration: '\"PT1H\"' → '\"PT2H\"'",
                 "      + outcome = \"approved\""):
        assert line in text.splitlines(), line


def test_lanes_attributes_documentation_and_event_definitions_count_as_changes():
    before = (DIFF / "v1" / "order.bpmn").read_bytes()
    after = (before
             .replace(b"<bpmn:flowNodeRef>Activity_Decide</bpmn:flowNodeRef>", b"")
             .replace(b"<bpmn:flowNodeRef>Activity_Submit</bpmn:flowNodeRef>",
                      b"<bpmn:flowNodeRef>Activity_Submit</bpmn:flowNodeRef><bpmn:flowNodeRef>Activity_Decide"
                      b"</bpmn:flowNodeRef>")
             .replace(b'camunda:formKey="decide.schema.json"', b'camunda:formKey="approve.schema.json"')
             .replace(b"Approve or reject the order.", b"Approve or reject.")
             .replace(b'name="Order" isExecutable="true"', b'name="Orders" isExecutable="true" '
                                                        b'camunda:isStartableInTasklist="false"')
             .replace(b'<bpmn:endEvent id="EndEvent_Done" name="Done">',
                      b'<bpmn:endEvent id="EndEvent_Done" name="Done"><bpmn:terminateEventDefinition id="T1" />'))
    diff = compare("order", StoredFiles("order.bpmn", {"order.bpmn": before}),
                   StoredFiles("order.bpmn", {"order.bpmn": after}))
    changed = {e["id"]: e["changes"] for e in diff["elements"]["changed"]}
    assert changed == {
        "Activity_Decide": [
            {"what": "documentation", "before": "Approve or reject the order.", "after": "Approve or reject."},
            {"what": "lane", "before": "Service manager", "after": "Requester"},
            {"what": "camunda:formKey", "before": "decide.schema.json", "after": "approve.schema.json"}],
        "EndEvent_Done": [{"what": "terminateEventDefinition", "before": None, "after": None}],
        "order": [{"what": "name", "before": "Order", "after": "Orders"},
                  {"what": "camunda:isStartableInTasklist", "before": None, "after": "false"}]}
    assert diff["flows"] == {"added": [], "removed": [], "changed": []} and diff["conditions"] == []


def test_only_the_definitions_own_pool_is_compared():
    """A file may hold the pools of other definitions; their changes are theirs."""
    pool = b'<bpmn:process id="%s" isExecutable="true"><bpmn:task id="Task_%s" name="%s" /></bpmn:process>'
    document = (b'<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="D">%s%s'
                b'</bpmn:definitions>')
    before = document % (pool % (b"mine", b"1", b"One"), pool % (b"theirs", b"2", b"Two"))
    after = document % (pool % (b"mine", b"1", b"One"), pool % (b"theirs", b"2", b"Three"))
    assert compare("mine", StoredFiles("x.bpmn", {"x.bpmn": before}),
                   StoredFiles("x.bpmn", {"x.bpmn": after}))["elements"]["changed"] == []
    assert compare("theirs", StoredFiles("x.bpmn", {"x.bpmn": before}),
                   StoredFiles("x.bpmn", {"x.bpmn": after}))["elements"]["changed"][0]["id"] == "Task_2"
