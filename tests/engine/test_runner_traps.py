"""SpiffWorkflow's traps and how the engine defuses them."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import insert, select

from usm_engine.engine.case_reading import blueprint_of, read_case, restore
from usm_engine.engine.errors import Conflict, TaskNotReady
from usm_engine.engine.schema import cases, tasks
from usm_engine.engine.sandbox import RestrictedEnvironment
from tests.conftest import fixture_files

ANYONE = lambda lane: True  # noqa: E731 - authorization is the API's concern, not these tests'


def start(engine, key, *files, data=None):
    engine.deploy(fixture_files(*files), "designer")
    case, created = engine.start_case(key, "system", data=data or {})
    assert created
    return case


def stored_state(engine, case_id) -> dict:
    with engine.db.reader.connect() as conn:
        return json.loads(conn.execute(select(cases.c.state).where(cases.c.id == case_id)).scalar_one())


def test_sandbox_is_attached_at_start_and_after_every_restore(engine):
    case = start(engine, "script_after_task", "script_after_task.bpmn")
    # The script before the user task ran at start, under the sandbox (it needs nothing forbidden).
    assert case["status"] == "running" and case["data"]["prepared"] is True
    row = read_case(engine.db, case["id"])
    restored = restore(row, blueprint_of(engine.specs, row), engine.script_engine)
    assert isinstance(restored.script_engine.environment, RestrictedEnvironment)
    # After the restore, the next script tries `import os`: the sandbox refuses it, which is an incident.
    after = engine.complete_task(case["tasks"][0]["id"], {}, "alice", ANYONE)
    assert after["status"] == "error"
    assert after["incident"]["element_id"] == "Activity_Run"
    assert after["incident"]["element_name"] == "Run command"
    assert "import" in after["incident"]["message"].lower() or "__import__" in after["incident"]["message"]
    assert "result" not in after["data"]


def test_only_ready_tasks_can_be_completed(engine):
    """task.run() completes FUTURE tasks. A stale projection row for a FUTURE task must not
    let anyone complete it."""
    case = start(engine, "approval", "approval.bpmn", "submit.schema.json", "decide.schema.json")
    row = read_case(engine.db, case["id"])
    workflow = restore(row, blueprint_of(engine.specs, row), engine.script_engine)
    future = workflow.get_next_task(spec_name="Activity_Decide")
    assert future is not None and not future.has_state(16)  # not READY
    with engine.db.writer.begin() as conn:  # a projection row that lies: says "ready"
        conn.execute(insert(tasks).values(
            id=str(future.id), case_id=case["id"], definition_key="approval", process_id="approval",
            element_id="Activity_Decide", name="Decide", lane="Service manager", lane_role="service-manager",
            state="ready", created_at=row.created_at))
    with pytest.raises(TaskNotReady):
        engine.complete_task(str(future.id), {"approved": True}, "mallory", ANYONE)
    assert engine.get_case(case["id"])["etag"] == case["etag"]  # nothing was written


def test_completed_task_cannot_be_completed_again(engine):
    case = start(engine, "approval", "approval.bpmn", "submit.schema.json", "decide.schema.json")
    task_id = case["tasks"][0]["id"]
    after = engine.complete_task(task_id, {"item": "pen", "quantity": 1}, "alice", ANYONE)
    with pytest.raises(TaskNotReady) as raised:
        engine.complete_task(task_id, {"item": "pen", "quantity": 1}, "alice", ANYONE)
    assert "completed" in raised.value.detail
    assert engine.get_case(case["id"])["etag"] == after["etag"]


def test_plain_service_task_is_an_incident_not_a_hang(engine):
    """a plain serviceTask stays STARTED forever."""
    case = start(engine, "service_task", "service_task.bpmn")
    assert case["status"] == "error"
    assert case["incident"]["element_id"] == "Activity_CallCrm"
    assert "no implementation" in case["incident"]["message"]


def test_message_for_nobody_is_refused_not_queued(engine):
    """catch() queues an unmatched event silently; delivery must refuse it instead."""
    case = start(engine, "messages", "messages.bpmn")
    assert case["waiting_for"] == [{"type": "message", "name": "approved"}]
    with pytest.raises(Conflict) as raised:
        engine.send_message(case["id"], "cancelled", {}, "crm")
    assert "approved" in raised.value.detail  # says what the case does wait for
    assert stored_state(engine, case["id"])["bpmn_events"] == []
    assert engine.get_case(case["id"])["etag"] == case["etag"]


def test_thrown_events_are_drained_before_saving(engine):
    """events left in the outbox are stored and come back after every load."""
    case = start(engine, "messages", "messages.bpmn")
    after = engine.send_message(case["id"], "approved", {"by": "bob"}, "crm")
    assert after["status"] == "running"
    assert [t["element_id"] for t in after["tasks"]] == ["Activity_Close"]
    assert after["data"]["approved"] == {"by": "bob"}  # message data lands under the message's name
    assert stored_state(engine, case["id"])["bpmn_events"] == []
    # Loading and acting again must not re-emit the old event (it would be sent twice).
    row = read_case(engine.db, case["id"])
    workflow = restore(row, blueprint_of(engine.specs, row), engine.script_engine)
    assert workflow.get_events() == []


def test_uncaught_error_end_event_is_an_incident(engine):
    """an uncaught BPMN error completes the process as if all went well."""
    case = start(engine, "error_end", "error_end.bpmn")
    after = engine.complete_task(case["tasks"][0]["id"], {}, "alice", ANYONE)
    assert after["status"] == "error"
    assert after["incident"]["element_id"] == "EndEvent_Rejected"
    assert "REJECTED" in after["incident"]["message"]


def test_deadlocked_join_is_an_incident(engine):
    """a parallel join after an exclusive split waits forever, silently."""
    case = start(engine, "deadlock", "deadlock.bpmn")
    after = engine.complete_task(case["tasks"][0]["id"], {"choice": "a"}, "alice", ANYONE)
    assert after["status"] == "error"
    assert after["incident"]["element_id"] == "Gateway_Join"
    assert "stuck" in after["incident"]["message"]


def test_failing_condition_is_an_incident_with_the_element(engine):
    case = start(engine, "failing_condition", "failing_condition.bpmn")
    assert case["status"] == "error"
    incident = case["incident"]
    assert (incident["element_id"], incident["element_name"], incident["definition"]) == (
        "Gateway_Big", "Big order?", "failing_condition")
    # what happened, in the words Python uses, where, and what to do about it
    assert incident["message"] == ("'Big order?' (Gateway_Big) in 'failing_condition' failed evaluating "
                                   "'amount > 1000': NameError: name 'amount' is not defined")
    assert incident["action"].startswith("Retry the case, giving the data the step needs")


def test_every_incident_names_its_element_and_definition_and_what_to_do(engine):
    incidents = []
    for key, fixture, data in (("service_task", "service_task.bpmn", None),
                                ("error_end", "error_end.bpmn", {}), ("deadlock", "deadlock.bpmn", {"choice": "a"}),
                                ("script_after_task", "script_after_task.bpmn", {})):
        case = start(engine, key, fixture)
        if data is not None:
            case = engine.complete_task(case["tasks"][0]["id"], data, "alice", ANYONE)
        incidents.append(case["incident"])
    for incident in incidents:
        assert incident["element_id"] and incident["definition"], incident
        assert incident["message"] and incident["action"].endswith("."), incident
        assert "Traceback" not in incident["message"] and "NoneType" not in incident["message"]
    assert [i["definition"] for i in incidents] == ["service_task", "error_end", "deadlock", "script_after_task"]


def test_case_in_error_refuses_completion_and_can_be_cancelled(engine):
    case = start(engine, "script_after_task", "script_after_task.bpmn")
    errored = engine.complete_task(case["tasks"][0]["id"], {}, "alice", ANYONE)
    assert errored["status"] == "error"
    cancelled = engine.cancel_case(case["id"], "ops")
    assert cancelled["status"] == "cancelled"
    with pytest.raises(Conflict):
        engine.cancel_case(case["id"], "ops")


def test_call_activity_runs_the_pinned_child_version(engine):
    engine.deploy(fixture_files("parent_calls_child.bpmn", "child.bpmn"), "designer")
    first, _ = engine.start_case("parent", "system")
    assert [t["name"] for t in first["tasks"]] == ["Child work"]
    engine.deploy(fixture_files("child_v2.bpmn"), "designer")  # child becomes version 2
    second, _ = engine.start_case("parent", "system")
    assert [t["name"] for t in second["tasks"]] == ["Child work, revised"]
    # The first case keeps the child version it started with, and finishes on it.
    after = engine.complete_task(first["tasks"][0]["id"], {}, "alice", ANYONE)
    assert [t["name"] for t in after["tasks"]] == ["Finish"]
    done = engine.complete_task(after["tasks"][0]["id"], {}, "alice", ANYONE)
    assert done["status"] == "completed"


def test_instance_state_is_stored_without_its_spec(engine):
    case = start(engine, "approval", "approval.bpmn", "submit.schema.json", "decide.schema.json")
    state = stored_state(engine, case["id"])
    assert "spec" not in state and "subprocess_specs" not in state
    assert state["tasks"]  # but the instance itself is there


def test_the_specless_state_is_the_full_serialization_less_its_specs(engine, monkeypatch):
    """The state is built without serializing the specs at all; it must be exactly what SpiffWorkflow's own
    serialization gives once the specs are taken out, through a call activity and back."""
    from SpiffWorkflow.bpmn import BpmnWorkflow
    from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter

    from usm_engine.engine import case_state, spiff_setup

    registry = spiff_setup.SERIALIZER.registry
    converter = registry.convert_to_dict[registry.typenames[BpmnWorkflow]].args[1].__self__
    compared = []

    def checked(workflow):
        ours = spiff_setup.workflow_to_dict(workflow)
        theirs = BpmnWorkflowConverter.to_dict(converter, workflow)
        assert theirs.pop("spec") and "subprocess_specs" in theirs
        theirs.pop("subprocess_specs")
        theirs["typename"] = "BpmnWorkflow"  # what the registry adds around the converter (ours came through it)
        assert json.dumps(ours) == json.dumps(theirs)  # the same keys in the same order: the same stored text
        compared.append(bool(workflow.subprocesses))
        return ours

    monkeypatch.setattr(case_state, "workflow_to_dict", checked)
    engine.deploy(fixture_files("parent_calls_child.bpmn", "child.bpmn"), "designer")
    case, _ = engine.start_case("parent", "system")
    while case["tasks"]:
        case = engine.complete_task(case["tasks"][0]["id"], {}, "alice", ANYONE)
    assert case["status"] == "completed"
    assert any(compared)  # a state with the child's subprocess in it was among them


def test_message_throw_without_payload_expression_sends_no_payload(engine):
    from tests.conftest import FIXTURES

    xml = (FIXTURES / "messages.bpmn").read_bytes().replace(
        b""" camunda:expression="{'approved_by': approved['by']}\"""", b"")
    assert b"camunda:expression" not in xml
    engine.deploy([("messages.bpmn", xml)], "designer")
    case, _ = engine.start_case("messages", "system")
    after = engine.send_message(case["id"], "approved", {"by": "bob"}, "crm")
    assert after["status"] == "running" and [t["element_id"] for t in after["tasks"]] == ["Activity_Close"]


def test_data_that_cannot_be_stored_becomes_an_incident_not_a_failed_save(engine, monkeypatch):
    """The sandbox drops non-JSON values a script leaves; should anything else put one in task data (a
    library step, a future helper), the case records an incident naming the field instead of failing."""
    import usm_engine.engine.runner as runner_module

    engine.deploy(fixture_files("approval.bpmn", "submit.schema.json", "decide.schema.json"), "designer")
    case, _ = engine.start_case("approval", "system")
    original = runner_module.advance

    def advance_leaving_an_object(workflow, blueprint, recorder=None):
        outcome = original(workflow, blueprint, recorder)
        workflow.get_tasks(state=16, manual=True)[0].data["connection"] = object()
        return outcome

    monkeypatch.setattr("usm_engine.engine.case_work.advance", advance_leaving_an_object)
    after = engine.complete_task(case["tasks"][0]["id"], {"item": "pen", "quantity": 1}, "alice", ANYONE)
    assert after["status"] == "error"
    assert "'connection' holds a Python object" in after["incident"]["message"]
    assert after["incident"]["element_id"] == "Activity_Decide"
    assert "incident" in [e["type"] for e in engine.trail(case["id"], {})]
