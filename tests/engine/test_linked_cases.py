"""Hand-offs: a message thrown by one case starts another definition as a linked case."""
from __future__ import annotations

from tests.conftest import FIXTURES, fixture_files

ANYONE = lambda lane: True  # noqa: E731 - authorization is the API's concern, not these tests'


def test_thrown_message_starts_a_linked_case_in_the_same_command(engine):
    engine.deploy(fixture_files("handoff_parent.bpmn", "handoff_risk.bpmn"), "designer")
    parent, _ = engine.start_case("handoff_parent", "system", data={"number": "INC-000001"})
    closed = engine.complete_task(parent["tasks"][0]["id"], {"risk_summary": "disk nearly full"}, "alice", ANYONE)
    assert closed["status"] == "completed"
    parent = engine.get_case(parent["id"])
    assert len(parent["child_cases"]) == 1
    child = engine.get_case(parent["child_cases"][0])
    assert child["definition"] == "handoff_risk" and child["parent_case"] == parent["id"]
    assert child["status"] == "running" and [t["name"] for t in child["tasks"]] == ["Assess risk"]
    assert child["data"]["risk"] == "disk nearly full" and child["data"]["raised_by"] == "INC-000001"
    assert child["data"]["call"] == {"number": "RSK-000001", "type": "risk", "status": "registered"}
    parent_links = [e["details"] for e in engine.trail(parent["id"], {}) if e["type"] == "case_linked"]
    assert parent_links == [{"child_case": child["id"], "message": "risk_submitted", "definition": "handoff_risk"}]
    child_links = [e["details"] for e in engine.trail(child["id"], {}) if e["type"] == "case_linked"]
    assert child_links == [{"parent_case": parent["id"], "message": "risk_submitted"}]
    assert engine.verify_trails()["ok"] is True


def test_call_numbers_count_up_per_prefix(engine):
    assert [engine.next_call_number("INC") for _ in range(3)] == ["INC-000001", "INC-000002", "INC-000003"]
    assert engine.next_call_number("RFC") == "RFC-000001"


def test_a_thrown_message_nobody_starts_on_goes_nowhere(engine):
    engine.deploy(fixture_files("handoff_parent.bpmn"), "designer")
    parent, _ = engine.start_case("handoff_parent", "system", data={"number": "INC-1"})
    closed = engine.complete_task(parent["tasks"][0]["id"], {"risk_summary": "x"}, "alice", ANYONE)
    assert closed["status"] == "completed"
    assert engine.get_case(parent["id"])["child_cases"] == []


def test_route_message_delivers_to_the_one_waiting_case_or_starts_one(engine):
    import pytest

    from usm_engine.engine.errors import Conflict, NotFound

    engine.deploy(fixture_files("messages.bpmn", "handoff_risk.bpmn"), "designer")
    first, _ = engine.start_case("messages", "system", business_key="A")
    second, _ = engine.start_case("messages", "system", business_key="B")
    with pytest.raises(Conflict) as raised:
        engine.route_message("approved", "crm", data={"by": "x"})
    assert "2 cases wait" in raised.value.detail
    delivered, started = engine.route_message("approved", "crm", business_key="B", data={"by": "bob"})
    assert not started and delivered["id"] == second["id"]
    assert [t["name"] for t in delivered["tasks"]] == ["Close"]
    only, started = engine.route_message("approved", "crm", data={"by": "ann"})  # one waits now
    assert not started and only["id"] == first["id"]
    with pytest.raises(NotFound):
        engine.route_message("approved", "crm")
    new, started = engine.route_message("risk_submitted", "crm", business_key="RSK-9", data={"risk": "flood"})
    assert started and new["definition"] == "handoff_risk" and new["data"]["risk"] == "flood"
    assert new["business_key"] == "RSK-9" and new["parent_case"] is None


def test_a_message_named_after_a_definition_starts_it_at_its_plain_start_event(engine):
    """A process that call activities also start has a plain start event; a hand-off reaches it by its key."""
    engine.deploy(fixture_files("handoff_to_key.bpmn", "child.bpmn"), "designer")
    child_xml = (FIXTURES / "child.bpmn").read_bytes().replace(b'id="child"', b'id="handoff_risk"')
    engine.deploy([("handoff_risk.bpmn", child_xml)], "designer")
    parent, _ = engine.start_case("handoff_to_key", "system", data={"number": "INC-7"})
    engine.complete_task(parent["tasks"][0]["id"], {"risk_summary": "flood"}, "alice", ANYONE)
    [child_id] = engine.get_case(parent["id"])["child_cases"]
    child = engine.get_case(child_id)
    assert child["definition"] == "handoff_risk" and child["parent_case"] == parent["id"]
    assert [t["name"] for t in child["tasks"]] == ["Child work"]  # began at its plain start event
    assert child["data"]["risk"] == "flood" and child["data"]["raised_by"] == "INC-7"
    links = [e["details"] for e in engine.trail(child_id, {}) if e["type"] == "case_linked"]
    assert links == [{"parent_case": parent["id"], "message": "handoff_risk"}]
    # the same through POST /api/v1/messages: a message named after a key starts that definition
    started, created = engine.route_message("handoff_risk", "crm", data={"risk": "fire"})
    assert created and started["definition"] == "handoff_risk" and started["data"]["risk"] == "fire"
