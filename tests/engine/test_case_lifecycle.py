"""Suspend, resume and retry: a case can be held, and an incident can be fixed and run again."""
from __future__ import annotations

import pytest

from usm_engine.engine.clock import FixedClock
from usm_engine.engine.errors import Conflict
from usm_engine.engine.service import Engine, EngineSettings
from tests.conftest import APPROVAL, fixture_files

ANYONE = lambda lane: True  # noqa: E731 - authorization is the API's concern, not these tests'


def test_retry_with_data_runs_the_failed_gateway_again(engine):
    engine.deploy(fixture_files("failing_condition.bpmn"), "designer")
    case, _ = engine.start_case("failing_condition", "system")
    assert case["status"] == "error" and case["incident"]["element_id"] == "Gateway_Big"
    retried = engine.retry_case(case["id"], "ops", {"amount": 5000})
    assert retried["status"] == "completed" and "incident" not in retried
    trail = engine.trail(case["id"], {})
    types = [e["type"] for e in trail]
    assert types[types.index("incident") + 1] == "case_retried"
    retry_event = trail[types.index("case_retried")]
    assert retry_event["actor"] == "ops" and retry_event["data_changes"] == {"amount": [None, 5000]}
    gateway = [e for e in trail if e["type"] == "gateway_taken"][0]
    assert gateway["details"]["targets"] == ["End_Yes"]


def test_retry_that_fails_again_keeps_the_incident(engine):
    engine.deploy(fixture_files("script_after_task.bpmn"), "designer")
    case, _ = engine.start_case("script_after_task", "system")
    failed = engine.complete_task(case["tasks"][0]["id"], {}, "alice", ANYONE)
    assert failed["status"] == "error"
    again = engine.retry_case(case["id"], "ops")
    assert again["status"] == "error" and again["incident"]["element_id"] == "Activity_Run"


def test_only_a_case_in_error_can_be_retried(engine):
    engine.deploy(fixture_files(*APPROVAL), "designer")
    case, _ = engine.start_case("approval", "system")
    with pytest.raises(Conflict):
        engine.retry_case(case["id"], "ops")


def test_an_uncaught_bpmn_error_cannot_be_retried(engine):
    engine.deploy(fixture_files("error_end.bpmn"), "designer")
    case, _ = engine.start_case("error_end", "system")
    failed = engine.complete_task(case["tasks"][0]["id"], {}, "alice", ANYONE)
    assert failed["status"] == "error"
    with pytest.raises(Conflict) as raised:
        engine.retry_case(case["id"], "ops")
    assert "cancel" in raised.value.detail


def test_suspended_case_refuses_work_until_resumed(engine):
    engine.deploy(fixture_files(*APPROVAL), "designer")
    case, _ = engine.start_case("approval", "system")
    suspended = engine.suspend_case(case["id"], "ops")
    assert suspended["status"] == "suspended"
    with pytest.raises(Conflict) as raised:
        engine.complete_task(case["tasks"][0]["id"], {"item": "pen", "quantity": 1}, "alice", ANYONE)
    assert "suspended" in raised.value.detail
    with pytest.raises(Conflict):
        engine.suspend_case(case["id"], "ops")
    resumed = engine.resume_case(case["id"], "ops")
    assert resumed["status"] == "running"
    done = engine.complete_task(case["tasks"][0]["id"], {"item": "pen", "quantity": 1}, "alice", ANYONE)
    assert [t["name"] for t in done["tasks"]] == ["Decide"]
    types = [e["type"] for e in engine.trail(case["id"], {})]
    assert types.count("case_suspended") == 1 and types.count("case_resumed") == 1
    assert engine.verify_trails()["ok"]


def test_resuming_a_case_with_an_incident_returns_it_to_error(engine):
    engine.deploy(fixture_files("failing_condition.bpmn"), "designer")
    case, _ = engine.start_case("failing_condition", "system")
    engine.suspend_case(case["id"], "ops")
    assert engine.resume_case(case["id"], "ops")["status"] == "error"


def test_timers_of_a_suspended_case_wait_for_the_resume(database_url):
    clock = FixedClock()
    engine = Engine(EngineSettings(database_url), clock=clock)
    engine.migrate()
    try:
        engine.deploy(fixture_files("timers.bpmn"), "designer")
        case, _ = engine.start_case("timers", "system", data={"resolution_target": "PT8H"})
        engine.suspend_case(case["id"], "ops")
        clock.advance(hours=2)
        assert engine.fire_due_timers() == 0
        engine.resume_case(case["id"], "ops")
        assert engine.fire_due_timers() == 1
    finally:
        engine.close()
