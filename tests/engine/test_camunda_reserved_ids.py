"""Element ids that SpiffWorkflow uses for steps of its own (Start, End, Root, StartEventSplit,
StartEventJoin, <process>.EndJoin, <id>.BoundaryEventSplit): a designer may use them all. The engine
maps them internally, and the tasks, trail, incidents, diagram and compliance show the designer's ids."""
from __future__ import annotations

import io

from tests.conftest import bearer, fixture_files

ANYONE = lambda lane: True  # noqa: E731 - authorization is the API's concern, not these tests'
MODEL = "camunda_reserved_ids.bpmn"


def test_the_model_deploys_without_problems_or_warnings_about_its_ids(engine):
    created, [item] = engine.deploy(fixture_files(MODEL), "designer")
    # The only warnings: what the task's open form and the start data give (start_inputs.py), at the
    # designer's ids.
    assert created and item["key"] == "reserved_ids"
    assert [(w["element_id"], w["message"].split(", which")[0]) for w in item["warnings"]] == [
        ("StartEventSplit", "exclusive gateway 'Approved?' (StartEventSplit) reads 'approved'"),
        ("StartEventJoin", "script task 'Count rework' (StartEventJoin) reads 'rework_count'")]


def test_a_case_runs_to_the_end_and_shows_the_designers_ids(engine):
    engine.deploy(fixture_files(MODEL), "designer")
    case, _ = engine.start_case("reserved_ids", "system")
    [task] = case["tasks"]
    assert (task["element_id"], task["name"], task["lane"]) == ("Root", "Check request", "Requester")
    assert [w["name"] for w in case["waiting_for"]] == ["Late"]  # the boundary timer on 'Root' waits too

    done = engine.complete_task(task["id"], {"approved": True}, "alice", ANYONE)
    assert done["status"] == "completed"
    trail = engine.trail(case["id"], {})
    assert [(e["type"], e["element_id"]) for e in trail] == [
        ("case_started", None), ("event_passed", "Start"), ("task_ready", "Root"), ("task_completed", "Root"),
        ("gateway_taken", "StartEventSplit"), ("event_passed", "End"), ("case_completed", None)]
    gateway = next(e for e in trail if e["type"] == "gateway_taken")
    assert gateway["details"] == {"flows": ["Flow_Yes"], "targets": ["End"]}

    [diagram] = engine.case_diagram(case["id"])["diagrams"]
    assert diagram["executed"] == ["Start", "Root", "StartEventSplit", "End"]
    assert diagram["flows"] == ["Flow_1", "Flow_2", "Flow_Yes"]
    assert 'id="StartEventSplit"' in diagram["bpmn"]  # the source as uploaded


def test_an_incident_names_the_element_by_the_designers_id_and_the_retry_reaches_the_end(engine):
    engine.deploy(fixture_files(MODEL), "designer")
    case, _ = engine.start_case("reserved_ids", "system")
    failed = engine.complete_task(case["tasks"][0]["id"], {"approved": False}, "alice", ANYONE)
    assert failed["status"] == "error"
    incident = failed["incident"]
    assert (incident["element_id"], incident["element_name"]) == ("StartEventJoin", "Count rework")
    assert "rework_count" in incident["message"]

    retried = engine.retry_case(case["id"], "operator", {"rework_count": 0})
    [task] = retried["tasks"]
    assert (task["element_id"], task["name"]) == ("reserved_ids.EndJoin", "Rework")
    done = engine.complete_task(task["id"], {}, "alice", ANYONE)
    assert done["status"] == "completed" and done["data"]["rework_count"] == 1
    ran = [e["element_id"] for e in engine.trail(case["id"], {}) if e["type"] == "event_passed"]
    assert ran == ["Start", "End_Rework"]


def test_a_boundary_event_on_an_element_with_a_reserved_id_fires(clocked_engine):
    engine, clock = clocked_engine
    engine.deploy(fixture_files(MODEL), "designer")
    case, _ = engine.start_case("reserved_ids", "system")
    clock.advance(hours=1, minutes=1)
    assert engine.fire_due_timers() == 1
    case = engine.get_case(case["id"])
    assert case["status"] == "completed"
    trail = engine.trail(case["id"], {})
    assert [e["element_id"] for e in trail if e["type"] == "timer_fired"] == ["Root.BoundaryEventSplit"]
    assert [e["element_id"] for e in trail if e["type"] == "task_cancelled"] == ["Root"]


def test_compliance_names_an_activity_by_its_reserved_id(client):
    requirement = ('standard = "ISO/IEC 20000-1:2018"\n[[requirement]]\nid = "8.1"\ntitle = "Requests are checked"\n'
                   'activities = ["reserved_ids/Root"]\n')
    files = [(io.BytesIO(content), name) for name, content in fixture_files(MODEL)]
    files.append((io.BytesIO(requirement.encode()), "iso20000.toml"))
    deployed = client.post("/api/v1/definitions", data={"files": files}, content_type="multipart/form-data",
                           headers=bearer("designer"))
    assert deployed.status_code == 201, deployed.get_json()
    case = client.post("/api/v1/cases", json={"definition": "reserved_ids"}, headers=bearer("system")).get_json()
    client.post(f"/api/v1/tasks/{case['tasks'][0]['id']}/complete", json={"data": {"approved": True}},
                headers=bearer("system"))
    [listed] = client.get("/api/v1/compliance", headers=bearer("auditor")).get_json()["items"]
    assert [(a["element_id"], a["name"]) for a in listed["activities"]] == [("Root", "Check request")]
    evidence = client.get(f"/api/v1/compliance/{listed['ref']}/cases", headers=bearer("auditor")).get_json()
    assert [(item["case_id"], item["executed"]) for item in evidence["items"]] == [(case["id"], ["Root"])]
