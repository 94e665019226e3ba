"""Migrating unfinished cases to another version of their definition, at the engine's own interface.

The versions are real changes to a shipped USM definition (definitions/escalation.bpmn: a step added, the
active step removed, the active step renamed) and to smaller fixtures where a case needs timers, an
incident or a finished step the new version drops."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from usm_engine.engine.case_migration import Migration, Selection
from usm_engine.engine.case_reading import blueprint_of, read_case, restore
from usm_engine.engine.errors import Conflict, DefinitionNotFound, InvalidInput
from tests.conftest import APPROVAL, FIXTURES, fixture_files

ANYONE = lambda lane: True  # noqa: E731 - authorization is the API's concern, not these tests'
USM = Path(__file__).resolve().parents[2] / "definitions"
ESCALATION = (USM / "escalation.bpmn").read_text()
ESCALATION_FORM = ("forms/handle-escalation.schema.json", (USM / "forms/handle-escalation.schema.json").read_bytes())
ACTIVE = "Activity_HandleEscalation"
START_DATA = {"escalation": {"call": "INC-000042", "resolution_target": "PT4H"}}


# --- versions of the shipped escalation definition -------------------------------------------------------

def escalation_with_triage() -> str:
    """A 'Triage' step added between the start event and the active step."""
    return (ESCALATION
            .replace(f'targetRef="{ACTIVE}" />', 'targetRef="Activity_Triage" />')
            .replace("<bpmn:incoming>Flow_EscalationRaised_To_HandleEscalation</bpmn:incoming>",
                     "<bpmn:incoming>Flow_Triage_To_Handle</bpmn:incoming>")
            .replace("<bpmn:flowNodeRef>EndEvent_EscalationHandled</bpmn:flowNodeRef>",
                     "<bpmn:flowNodeRef>EndEvent_EscalationHandled</bpmn:flowNodeRef>"
                     "<bpmn:flowNodeRef>Activity_Triage</bpmn:flowNodeRef>")
            .replace('<bpmn:endEvent id="EndEvent_EscalationHandled"',
                     '<bpmn:userTask id="Activity_Triage" name="Triage">'
                     "<bpmn:incoming>Flow_EscalationRaised_To_HandleEscalation</bpmn:incoming>"
                     "<bpmn:outgoing>Flow_Triage_To_Handle</bpmn:outgoing></bpmn:userTask>"
                     '<bpmn:sequenceFlow id="Flow_Triage_To_Handle" sourceRef="Activity_Triage" '
                     f'targetRef="{ACTIVE}" />'
                     '<bpmn:endEvent id="EndEvent_EscalationHandled"'))


def escalation_without_the_active_step() -> str:
    """The active step removed: the start event leads straight to the end."""
    text = re.sub(rf'<bpmn:userTask id="{ACTIVE}".*?</bpmn:userTask>', "", ESCALATION, flags=re.S)
    text = re.sub(r'<bpmn:sequenceFlow id="Flow_HandleEscalation_To_EscalationHandled"[^>]*/>', "", text)
    text = re.sub(r'<bpmndi:BPMN(Shape|Edge) id="(Activity_HandleEscalation|Flow_HandleEscalation_To_EscalationHandled)'
                  r'_di".*?</bpmndi:BPMN(Shape|Edge)>', "", text, flags=re.S)
    return (text.replace(f"<bpmn:flowNodeRef>{ACTIVE}</bpmn:flowNodeRef>", "")
            .replace(f'targetRef="{ACTIVE}" />', 'targetRef="EndEvent_EscalationHandled" />')
            .replace("<bpmn:incoming>Flow_HandleEscalation_To_EscalationHandled</bpmn:incoming>",
                     "<bpmn:incoming>Flow_EscalationRaised_To_HandleEscalation</bpmn:incoming>"))


def escalation_renamed(new_id: str = "Activity_ResolveEscalation") -> str:
    """The active step under a new id (and a new name), as a designer's rename in Camunda Modeler leaves it."""
    return ESCALATION.replace(ACTIVE, new_id).replace('name="Handle escalation"', 'name="Resolve escalation"')


def escalation_files(text: str = ESCALATION) -> list[tuple[str, bytes]]:
    return [("escalation.bpmn", text.encode()), ESCALATION_FORM]


@pytest.fixture
def escalated(engine):
    """An escalation case on version 1, waiting at its one user task."""
    engine.deploy(escalation_files(), "designer")
    case, _ = engine.start_case("usm-escalation", "system", data=START_DATA)
    assert case["version"] == 1 and [t["element_id"] for t in case["tasks"]] == [ACTIVE]
    return case


def new_version(engine, text: str) -> int:
    created, results = engine.deploy(escalation_files(text), "designer")
    assert created
    return results[0]["version"]


# --- the three changes to a USM definition ----------------------------------------------------------------

def test_a_step_added_before_the_active_one_leaves_the_case_at_its_step(engine, escalated):
    assert new_version(engine, escalation_with_triage()) == 2
    report = engine.migrate_cases(escalated["id"], Migration(2), "ops")
    assert report["result"] == "migrated" and report["from_version"] == 1 and report["missing"] == []
    case = report["case"]
    assert case["version"] == 2 and case["status"] == "running"
    assert case["tasks"] == escalated["tasks"]  # the same task, same id: worklists stay valid
    assert case["data"] == escalated["data"]
    done = engine.complete_task(case["tasks"][0]["id"], {"action": "expedite"}, "coordinator", ANYONE)
    assert done["status"] == "completed" and done["data"]["action"] == "expedite"
    trail = engine.trail(escalated["id"], {})
    moved = next(e for e in trail if e["type"] == "case_migrated")
    assert moved["actor"] == "ops" and moved["version"] == 2
    assert moved["details"] == {"from_version": 1, "to_version": 2, "mapping": {}}
    assert all(e["version"] == (1 if e["seq"] < moved["seq"] else 2) for e in trail)
    assert "Activity_Triage" not in {e["element_id"] for e in trail}  # the case was already past it


def test_the_active_step_removed_is_refused_and_a_dry_run_names_it(engine, escalated):
    new_version(engine, escalation_without_the_active_step())
    dry = engine.migrate_cases(escalated["id"], Migration(2, dry_run=True), "ops")
    assert dry["result"] == "refused" and dry["dry_run"] is True
    assert [(m["element_id"], m["element_name"], m["state"]) for m in dry["missing"]] == [
        (ACTIVE, "Handle escalation", "ready")]
    assert "map" in dry["reasons"][0] and ACTIVE in dry["reasons"][0]
    with pytest.raises(Conflict) as refused:
        engine.migrate_cases(escalated["id"], Migration(2), "ops")
    assert "'Handle escalation' (Activity_HandleEscalation)" in refused.value.detail
    assert "version 1" in refused.value.detail  # or let it finish where it is
    assert [error["element_id"] for error in refused.value.errors] == [ACTIVE]
    unchanged = engine.get_case(escalated["id"])
    assert unchanged["version"] == 1 and unchanged["etag"] == escalated["etag"]
    assert "case_migrated" not in {e["type"] for e in engine.trail(escalated["id"], {})}


def test_a_renamed_step_with_a_mapping_migrates_and_completes_on_the_new_version(engine, escalated):
    new_version(engine, escalation_renamed())
    with pytest.raises(Conflict):
        engine.migrate_cases(escalated["id"], Migration(2), "ops")
    mapping = {ACTIVE: "Activity_ResolveEscalation"}
    assert engine.migrate_cases(escalated["id"], Migration(2, mapping, dry_run=True), "ops")["result"] == \
        "would_migrate"
    assert engine.get_case(escalated["id"])["version"] == 1  # a dry run changes nothing
    case = engine.migrate_cases(escalated["id"], Migration(2, mapping), "ops")["case"]
    task = case["tasks"][0]
    assert (task["id"], task["element_id"], task["name"]) == (
        escalated["tasks"][0]["id"], "Activity_ResolveEscalation", "Resolve escalation")
    assert engine.get_task(task["id"])["form"]["required"] == ["action"]  # the form of the new version
    done = engine.complete_task(task["id"], {"action": "reassign"}, "coordinator", ANYONE)
    assert done["status"] == "completed" and done["version"] == 2
    trail = engine.trail(escalated["id"], {})
    assert next(e for e in trail if e["type"] == "case_migrated")["details"]["mapping"] == mapping
    completed = next(e for e in trail if e["type"] == "task_completed")
    assert (completed["element_id"], completed["element_name"], completed["version"]) == (
        "Activity_ResolveEscalation", "Resolve escalation", 2)
    assert engine.verify_trails()["ok"]


# --- what a case is doing when it moves ---------------------------------------------------------------------

def test_a_waiting_timer_keeps_its_due_time_and_fires_on_the_new_version(clocked_engine):
    engine, clock = clocked_engine
    xml = (FIXTURES / "timers.bpmn").read_text()
    engine.deploy([("timers.bpmn", xml.encode())], "designer")
    case, _ = engine.start_case("timers", "system", data={"resolution_target": "PT4H"})
    clock.advance(minutes=30)
    engine.deploy([("timers.bpmn", xml.replace("Activity_Review", "Activity_Check").encode())], "designer")
    moved = engine.migrate_cases(case["id"], Migration(2, {"Activity_Review": "Activity_Check"}), "ops")["case"]
    assert moved["waiting_for"] == case["waiting_for"]  # not restarted by the move
    clock.advance(minutes=31)
    assert engine.fire_due_timers() == 1
    after = engine.get_case(case["id"])
    assert sorted(t["element_id"] for t in after["tasks"]) == ["Activity_Chase", "Activity_Check"]


def test_a_suspended_case_stays_suspended_and_finished_steps_the_new_version_drops_stay_in_the_trail(engine):
    engine.deploy(fixture_files(*APPROVAL), "designer")
    case, _ = engine.start_case("approval", "system")
    engine.complete_task(case["tasks"][0]["id"], {"item": "pen", "quantity": 2}, "alice", ANYONE)
    engine.suspend_case(case["id"], "ops")
    engine.deploy([("approval.bpmn", approval_without_submit_and_record()), *fixture_files(*APPROVAL[1:])],
                  "designer")
    moved = engine.migrate_cases(case["id"], Migration(2), "ops")["case"]
    assert moved["status"] == "suspended" and moved["version"] == 2
    assert [t["element_id"] for t in moved["tasks"]] == ["Activity_Decide"]
    assert moved["data"] == {"item": "pen", "quantity": 2}
    with pytest.raises(Conflict):
        engine.complete_task(moved["tasks"][0]["id"], {"approved": True}, "bob", ANYONE)
    resumed = engine.resume_case(case["id"], "ops")
    done = engine.complete_task(resumed["tasks"][0]["id"], {"approved": True}, "bob", ANYONE)
    assert done["status"] == "completed" and "total" not in done["data"]  # 'Record approval' is gone in v2
    assert "Activity_Submit" in {e["element_id"] for e in engine.trail(case["id"], {})}


def approval_without_submit_and_record() -> bytes:
    """approval.bpmn without its first step (already finished by the case) and its last script."""
    text = (FIXTURES / "approval.bpmn").read_text()
    for element in ("userTask", "scriptTask"):
        text = re.sub(rf'<bpmn:{element} id="Activity_(Submit|Record)".*?</bpmn:{element}>', "", text, flags=re.S)
    text = re.sub(r'<bpmn:sequenceFlow id="Flow_(ToDecide|ToEndApproved)"[^>]*/>', "", text)
    return (text.replace('targetRef="Activity_Submit"', 'targetRef="Activity_Decide"')
            .replace("<bpmn:incoming>Flow_ToDecide</bpmn:incoming>", "<bpmn:incoming>Flow_ToSubmit</bpmn:incoming>")
            .replace('targetRef="Activity_Record"', 'targetRef="EndEvent_Approved"')
            .replace("<bpmn:incoming>Flow_ToEndApproved</bpmn:incoming>", "<bpmn:incoming>Flow_Yes</bpmn:incoming>")
            .replace("<bpmn:flowNodeRef>Activity_Submit</bpmn:flowNodeRef>", "")
            .replace("<bpmn:flowNodeRef>Activity_Record</bpmn:flowNodeRef>", "")).encode()


def test_an_incident_stays_until_retried_and_the_retry_runs_the_corrected_step(engine):
    xml = (FIXTURES / "script_after_task.bpmn").read_text()
    engine.deploy([("script_after_task.bpmn", xml.encode())], "designer")
    case, _ = engine.start_case("script_after_task", "system")
    failed = engine.complete_task(case["tasks"][0]["id"], {}, "alice", ANYONE)
    assert failed["status"] == "error" and failed["incident"]["element_id"] == "Activity_Run"
    fixed = xml.replace("import os\nresult = os.getcwd()", "result = 'corrected'")
    engine.deploy([("script_after_task.bpmn", fixed.encode())], "designer")
    moved = engine.migrate_cases(case["id"], Migration(2), "ops")["case"]
    assert moved["status"] == "error" and moved["version"] == 2
    assert moved["incident"] == failed["incident"]
    assert [e["type"] for e in engine.trail(case["id"], {})].count("incident") == 1
    retried = engine.retry_case(case["id"], "ops")
    assert retried["status"] == "completed" and retried["data"]["result"] == "corrected"


def test_a_case_inside_a_called_definition_moves_and_what_follows_the_call_comes_from_the_new_version(engine):
    files = [(str(p.relative_to(USM)), p.read_bytes()) for p in sorted(USM.rglob("*"))
             if p.is_file() and p.suffix in (".bpmn", ".dmn", ".json", ".toml")]
    engine.deploy(files, "designer")
    case, _ = engine.start_case("usm-operate", "system", data={"request": {"summary": "printer toner"}})
    assert [t["element_id"] for t in case["tasks"]] == ["Activity_AcceptCall"]  # inside the intake frame
    changed = [(name, content.replace(b"Gateway_ServiceRequestAccepted", b"Gateway_Accepted"))
               if name == "processes/operate.bpmn" else (name, content) for name, content in files]
    engine.deploy(changed, "designer")
    moved = engine.migrate_cases(case["id"], Migration(2), "ops")["case"]
    assert moved["version"] == 2 and moved["tasks"] == case["tasks"]
    row = read_case(engine.db, case["id"])
    assert restore(row, blueprint_of(engine.specs, row), engine.script_engine) is not None
    after = engine.complete_task(case["tasks"][0]["id"], {"intake_decision": "accept"}, "desk", ANYONE)
    assert after["status"] == "running" and [t["element_id"] for t in after["tasks"]] == ["Activity_Classify"]
    taken = [e["element_id"] for e in engine.trail(case["id"], {}) if e["type"] == "gateway_taken"]
    assert "Gateway_Accepted" in taken and "Gateway_ServiceRequestAccepted" not in taken


# --- refusals -----------------------------------------------------------------------------------------------

def test_what_cannot_be_migrated_is_refused_with_a_reason(engine, escalated):
    with pytest.raises(Conflict, match="already runs on version 1"):
        engine.migrate_cases(escalated["id"], Migration(1), "ops")
    with pytest.raises(DefinitionNotFound):
        engine.migrate_cases(escalated["id"], Migration(7), "ops")
    new_version(engine, escalation_renamed())
    with pytest.raises(InvalidInput) as bad:
        engine.migrate_cases(escalated["id"], Migration(2, {ACTIVE: "Activity_Nowhere"}), "ops")
    assert bad.value.errors[0]["field"] == f"mapping.{ACTIVE}"
    with pytest.raises(InvalidInput, match="version 1 of 'usm-escalation' has no element 'Activity_Typo'"):
        engine.migrate_cases(escalated["id"], Migration(2, {"Activity_Typo": "Activity_ResolveEscalation"}), "ops")
    with pytest.raises(InvalidInput, match="map to an element of the same kind"):
        engine.migrate_cases(escalated["id"], Migration(2, {ACTIVE: "EndEvent_EscalationHandled"}), "ops")
    engine.cancel_case(escalated["id"], "ops")
    with pytest.raises(Conflict, match="already cancelled"):
        engine.migrate_cases(escalated["id"], Migration(2, {ACTIVE: "Activity_ResolveEscalation"}), "ops")


def test_a_selection_migrates_what_can_move_and_refuses_the_rest_case_by_case(engine):
    engine.deploy(fixture_files(*APPROVAL), "designer")
    at_submit, _ = engine.start_case("approval", "system")
    at_decide, _ = engine.start_case("approval", "system")
    engine.complete_task(at_decide["tasks"][0]["id"], {"item": "pen", "quantity": 1}, "alice", ANYONE)
    engine.deploy([("approval.bpmn", approval_without_submit_and_record()), *fixture_files(*APPROVAL[1:])],
                  "designer")
    dry = engine.migrate_cases(Selection("approval", version=1), Migration(2, dry_run=True), "ops")
    assert {i["case_id"]: i["result"] for i in dry["items"]} == {at_submit["id"]: "refused",
                                                               at_decide["id"]: "would_migrate"}
    only = engine.migrate_cases(Selection("approval", waiting_at="Activity_Decide"), Migration(2), "ops")
    assert [i["case_id"] for i in only["items"]] == [at_decide["id"]] and only["migrated"] == 1
    rest = engine.migrate_cases(Selection("approval", version=1), Migration(2), "ops")
    assert rest["migrated"] == 0 and rest["refused"] == 1
    assert rest["items"][0]["missing"][0]["element_id"] == "Activity_Submit"
    assert engine.get_case(at_submit["id"])["version"] == 1


def test_a_failed_gateway_moves_and_its_retry_decides_by_the_new_version(engine):
    xml = (FIXTURES / "failing_condition.bpmn").read_text()
    engine.deploy([("failing_condition.bpmn", xml.encode())], "designer")
    case, _ = engine.start_case("failing_condition", "system")
    assert case["status"] == "error" and case["incident"]["element_id"] == "Gateway_Big"
    engine.deploy([("failing_condition.bpmn", xml.replace("amount &gt; 1000", "amount &gt; 10").encode())],
                  "designer")
    assert engine.migrate_cases(case["id"], Migration(2), "ops")["case"]["status"] == "error"
    retried = engine.retry_case(case["id"], "ops", {"amount": 50})
    assert retried["status"] == "completed"
    gateway = next(e for e in engine.trail(case["id"], {}) if e["type"] == "gateway_taken")
    assert gateway["details"]["targets"] == ["End_Yes"] and gateway["version"] == 2


# --- a join some branches have reached ---------------------------------------------------------------------

JOINS = FIXTURES / "joins"


def joins_files(text: str) -> list[tuple[str, bytes]]:
    return [("joins_parallel.bpmn", text.encode()), ("again.schema.json", (JOINS / "again.schema.json").read_bytes())]


def joins_with_a_fourth_branch() -> str:
    """Version 2: a branch D from the split into the join, as a designer adds one in the modeler."""
    text = (JOINS / "joins_parallel.bpmn").read_text()
    text = text.replace('<bpmn:outgoing>Flow_C</bpmn:outgoing></bpmn:parallelGateway>',
                        '<bpmn:outgoing>Flow_C</bpmn:outgoing><bpmn:outgoing>Flow_D</bpmn:outgoing></bpmn:parallelGateway>')
    text = text.replace('<bpmn:incoming>Flow_CToJoin</bpmn:incoming>',
                        '<bpmn:incoming>Flow_CToJoin</bpmn:incoming><bpmn:incoming>Flow_DToJoin</bpmn:incoming>')
    return text.replace('  </bpmn:process>', '''    <bpmn:userTask id="Activity_D" name="Branch D">
      <bpmn:incoming>Flow_D</bpmn:incoming><bpmn:outgoing>Flow_DToJoin</bpmn:outgoing></bpmn:userTask>
    <bpmn:sequenceFlow id="Flow_D" sourceRef="Gateway_Split" targetRef="Activity_D" />
    <bpmn:sequenceFlow id="Flow_DToJoin" sourceRef="Activity_D" targetRef="Gateway_Join" />
  </bpmn:process>''')


def ready(case: dict) -> dict[str, str]:
    return {task["element_id"]: task["id"] for task in case["tasks"]}


def test_a_join_waiting_for_branches_the_new_version_changed_is_refused_and_one_with_the_same_branches_moves(engine):
    text = (JOINS / "joins_parallel.bpmn").read_text()
    engine.deploy(joins_files(text), "designer")
    case, _ = engine.start_case("joins-parallel", "system")
    case = engine.complete_task(ready(case)["Activity_A"], {}, "alice", ANYONE)  # A has reached the join
    assert sorted(ready(case)) == ["Activity_B", "Activity_C"]

    assert new_version_of(engine, joins_files(joins_with_a_fourth_branch())) == 2
    # Moved, the join would wait for D, which no token will ever reach: the case would never finish.
    dry = engine.migrate_cases(case["id"], Migration(2, dry_run=True), "ops")
    assert dry["result"] == "refused" and [m["element_id"] for m in dry["missing"]] == ["Gateway_Join"]
    with pytest.raises(Conflict, match="join waiting for its branches") as refused:
        engine.migrate_cases(case["id"], Migration(2), "ops")
    assert refused.value.errors[0]["element_id"] == "Gateway_Join"
    assert read_case(engine.parts.db, case["id"]).definition_version == 1  # nothing written

    # A version that changes the branches' names only keeps the join's branches: the case moves, and the
    # join fires once, after the two branches still open.
    assert new_version_of(engine, joins_files(text.replace('name="Branch B"', 'name="Branch B, checked"'))) == 3
    moved = engine.migrate_cases(case["id"], Migration(3), "ops")
    assert moved["result"] == "migrated"
    case = engine.complete_task(ready(moved["case"])["Activity_B"], {}, "bob", ANYONE)
    assert sorted(ready(case)) == ["Activity_C"]
    case = engine.complete_task(ready(case)["Activity_C"], {}, "carol", ANYONE)
    assert sorted(ready(case)) == ["Activity_After"]
    case = engine.complete_task(ready(case)["Activity_After"], {"again": False}, "dave", ANYONE)
    assert case["status"] == "completed"


def new_version_of(engine, files: list[tuple[str, bytes]]) -> int:
    created, results = engine.deploy(files, "designer")
    assert created
    return results[0]["version"]
