"""Element ids are unique only within one file: Camunda Modeler names the first start event of every new
diagram StartEvent_1. A case that calls another definition must still name, place, draw and cite each
element of the definition it belongs to."""
from __future__ import annotations

from tests.conftest import fixture_files

ANYONE = lambda lane: True  # noqa: E731 - authorization is the API's concern, not these tests'
FILES = ("ids_main.bpmn", "ids_sub.bpmn")
COMPLIANCE = b'''standard = "ISO/IEC 20000-1:2018"

[[requirement]]
id = "8.5.1"
title = "Stock is counted"
activities = ["ids_sub/Task_1"]
'''


def start_big_order(engine):
    engine.deploy(fixture_files(*FILES), "designer")
    case, _ = engine.start_case("ids_main", "crm")
    return engine.complete_task(case["tasks"][0]["id"], {"quantity": 20}, "sam", ANYONE)


def placed(trail, type_, element_id, definition):
    [event] = [e for e in trail if e["type"] == type_ and e["element_id"] == element_id
               and e.get("element_definition") == definition]
    return event


def test_each_event_names_the_element_of_its_own_definition(engine):
    case = start_big_order(engine)
    assert [(t["element_id"], t["name"], t["lane"]) for t in case["tasks"]] == [("Task_1", "Count stock", "Warehouse")]
    done = engine.complete_task(case["tasks"][0]["id"], {"in_stock": False}, "wes", ANYONE)
    assert done["status"] == "completed"
    trail = engine.trail(case["id"], {})
    assert [(e["element_name"], e["lane"]) for e in (placed(trail, "event_passed", "StartEvent_1", "ids_main"),
                                                     placed(trail, "event_passed", "StartEvent_1", "ids_sub"))] == [
        ("Order received", "Sales"), ("Check requested", "Warehouse")]
    assert placed(trail, "task_completed", "Task_1", "ids_main")["element_name"] == "Enter order"
    assert placed(trail, "task_completed", "Task_1", "ids_sub")["element_name"] == "Count stock"
    # the same gateway id chose a different flow in each definition, and each is named by its own file
    main_gateway = placed(trail, "gateway_taken", "Gateway_1", "ids_main")
    sub_gateway = placed(trail, "gateway_taken", "Gateway_1", "ids_sub")
    assert (main_gateway["element_name"], main_gateway["details"]["flows"]) == ("Big order?", ["Flow_3"])
    assert (sub_gateway["element_name"], sub_gateway["details"]["flows"]) == ("In stock?", ["Flow_4"])
    assert placed(trail, "activity_completed", "Task_2", "ids_sub")["data_changes"] == {"reordered": [None, True]}
    # events about no element carry no element definition; the chain covers the new field
    assert all("element_definition" not in e for e in trail if e["element_id"] is None)
    assert engine.verify_trails()["ok"] is True


def test_an_incident_in_a_called_definition_is_placed_there(engine):
    case = start_big_order(engine)
    failed = engine.complete_task(case["tasks"][0]["id"], {}, "wes", ANYONE)  # the gateway needs in_stock
    assert failed["status"] == "error"
    assert failed["incident"]["element_id"] == "Gateway_1" and failed["incident"]["process_id"] == "ids_sub"
    incident = [e for e in engine.trail(case["id"], {}) if e["type"] == "incident"][0]
    assert (incident["element_definition"], incident["element_name"], incident["lane"]) == (
        "ids_sub", "In stock?", "Warehouse")
    retried = engine.retry_case(case["id"], "wes", {"in_stock": True})
    assert retried["status"] == "completed"
    assert placed(engine.trail(case["id"], {}), "case_retried", "Gateway_1", "ids_sub")["lane"] == "Warehouse"


def test_the_picture_has_one_diagram_per_definition_with_its_own_path(engine):
    case = start_big_order(engine)
    running = engine.case_diagram(case["id"])
    assert [(d["definition"], d["version"]) for d in running["diagrams"]] == [("ids_main", 1), ("ids_sub", 1)]
    main, sub = running["diagrams"]
    assert 'id="ids_main"' in main["bpmn"] and 'id="ids_sub"' in sub["bpmn"]
    assert (main["current"], sub["current"]) == (["Call_1"], ["Task_1"])  # the caller waits in its call activity
    assert set(main["executed"]) == {"StartEvent_1", "Task_1", "Gateway_1"}
    assert set(sub["executed"]) == {"StartEvent_1"} and sub["flows"] == ["Flow_1"]
    engine.complete_task(case["tasks"][0]["id"], {"in_stock": True}, "wes", ANYONE)
    main, sub = engine.case_diagram(case["id"])["diagrams"]
    assert set(main["executed"]) == {"StartEvent_1", "Task_1", "Gateway_1", "Call_1", "Gateway_2", "EndEvent_1"}
    assert set(main["flows"]) == {"Flow_1", "Flow_2", "Flow_3", "Flow_5", "Flow_6"}
    assert set(sub["executed"]) == {"StartEvent_1", "Task_1", "Gateway_1", "Gateway_2", "EndEvent_1"}
    assert set(sub["flows"]) == {"Flow_1", "Flow_2", "Flow_3", "Flow_6"}


def test_a_small_order_is_drawn_on_its_own_diagram_only(engine):
    engine.deploy(fixture_files(*FILES), "designer")
    case, _ = engine.start_case("ids_main", "crm")
    engine.complete_task(case["tasks"][0]["id"], {"quantity": 2}, "sam", ANYONE)
    [main] = engine.case_diagram(case["id"])["diagrams"]
    assert set(main["flows"]) == {"Flow_1", "Flow_2", "Flow_4", "Flow_6"}


def test_compliance_cites_the_element_of_the_named_definition_only(engine):
    engine.deploy([*fixture_files(*FILES), ("compliance/iso20000.toml", COMPLIANCE)], "designer")
    small, _ = engine.start_case("ids_main", "crm")
    engine.complete_task(small["tasks"][0]["id"], {"quantity": 2}, "sam", ANYONE)   # runs ids_main's Task_1
    big, _ = engine.start_case("ids_main", "crm")
    big = engine.complete_task(big["tasks"][0]["id"], {"quantity": 20}, "sam", ANYONE)
    engine.complete_task(big["tasks"][0]["id"], {"in_stock": True}, "wes", ANYONE)  # runs ids_sub's Task_1
    requirement, items, _ = engine.requirement_cases("8.5.1", None, 50)
    assert [(a["definition"], a["element_id"], a["name"]) for a in requirement["activities"]] == [
        ("ids_sub", "Task_1", "Count stock")]
    assert [item["case_id"] for item in items] == [big["id"]]
