"""Timers fire on the engine's clock, through fire_due_timers (what `usm worker` runs)."""
from __future__ import annotations

import pytest

from usm_engine.engine.clock import FixedClock
from usm_engine.engine.service import Engine, EngineSettings
from tests.conftest import fixture_files

ANYONE = lambda lane: True  # noqa: E731 - authorization is the API's concern, not these tests'


@pytest.fixture
def timed(clocked_engine):
    engine, clock = clocked_engine
    engine.deploy(fixture_files("timers.bpmn"), "designer")
    return engine, clock


def test_waiting_timers_are_shown_with_their_due_times(timed):
    engine, _ = timed
    case, _ = engine.start_case("timers", "system", data={"resolution_target": "PT8H"})
    assert sorted((w["name"], w["due_at"]) for w in case["waiting_for"]) == [
        ("Deadline after the service level", "2026-01-01T08:00:00Z"),
        ("Remind after 1 hour", "2026-01-01T01:00:00Z")]


def test_non_interrupting_reminder_then_interrupting_deadline(timed):
    engine, clock = timed
    case, _ = engine.start_case("timers", "system", data={"resolution_target": "PT8H"})
    assert engine.fire_due_timers() == 0  # nothing is due yet
    clock.advance(minutes=59)
    assert engine.fire_due_timers() == 0
    clock.advance(minutes=2)
    assert engine.fire_due_timers() == 1
    case = engine.get_case(case["id"])
    assert sorted(t["name"] for t in case["tasks"]) == ["Chase the reviewer", "Review"]  # review goes on
    assert engine.fire_due_timers() == 0  # fired once only
    clock.advance(hours=8)
    assert engine.fire_due_timers() == 1
    case = engine.get_case(case["id"])
    assert sorted(t["name"] for t in case["tasks"]) == ["Chase the reviewer", "Escalate"]  # review cancelled
    trail = engine.trail(case["id"], {})
    fired = [(e["element_id"], e["actor"], e["at"]) for e in trail if e["type"] == "timer_fired"]
    assert fired == [("Event_Remind", "timer", "2026-01-01T01:01:00Z"),
                     ("Event_Deadline", "timer", "2026-01-01T09:01:00Z")]
    assert [e["element_id"] for e in trail if e["type"] == "task_cancelled"] == ["Activity_Review"]


def test_completing_before_the_timers_cancels_them(timed):
    engine, clock = timed
    case, _ = engine.start_case("timers", "system", data={"resolution_target": "PT8H"})
    review = case["tasks"][0]["id"]
    case = engine.complete_task(review, {}, "alice", ANYONE)
    assert case["status"] == "completed" and case["waiting_for"] == []
    clock.advance(days=2)
    assert engine.fire_due_timers() == 0


def test_a_bad_timer_expression_is_an_incident(timed):
    engine, _ = timed
    case, _ = engine.start_case("timers", "system", data={"resolution_target": "eight hours"})
    assert case["status"] == "error"
    assert case["incident"]["element_id"] == "Event_Deadline"


def test_unquoted_iso_durations_from_camunda_modeler_work(database_url):
    from tests.conftest import FIXTURES

    clock = FixedClock()
    engine = Engine(EngineSettings(database_url), clock=clock)
    engine.migrate()
    try:
        xml = (FIXTURES / "timers.bpmn").read_bytes().replace(b'"PT1H"', b"PT1H")
        engine.deploy([("timers.bpmn", xml)], "designer")
        case, _ = engine.start_case("timers", "system", data={"resolution_target": "PT8H"})
        assert case["status"] == "running"
        clock.advance(minutes=61)
        assert engine.fire_due_timers() == 1
    finally:
        engine.close()


def test_juel_timer_expressions_outside_the_translated_subset_are_refused_at_deploy(engine):
    import pytest

    from usm_engine.engine.errors import DefinitionInvalid
    from tests.conftest import FIXTURES

    xml = (FIXTURES / "timers.bpmn").read_bytes().replace(b'"PT1H"', b"${dateTime().plusHours(1)}")
    with pytest.raises(DefinitionInvalid) as raised:
        engine.deploy([("timers.bpmn", xml)], "designer")
    problem = raised.value.errors[0]
    assert problem["element_id"] == "Event_Remind" and "JUEL" in problem["message"] and problem["line"]


def test_a_time_date_timer_fires_at_its_date(clocked_engine):
    """A timeDate (a moment, not a duration) is due at that moment: it must reach the case's due time,
    or no worker would ever fire it."""
    engine, clock = clocked_engine
    engine.deploy(fixture_files("wait_until.bpmn"), "designer")
    case, _ = engine.start_case("wait_until", "system", data={"due": "2026-01-01T10:00:00+02:00"})
    assert case["waiting_for"] == [{"type": "timer", "name": "Wait until due", "due_at": "2026-01-01T08:00:00Z"}]
    clock.advance(hours=7, minutes=59)
    assert engine.fire_due_timers() == 0
    clock.advance(minutes=1, seconds=1)  # SpiffWorkflow fires a timer once its moment has passed
    assert engine.fire_due_timers() == 1
    assert engine.get_case(case["id"])["status"] == "completed"
    assert [e["at"] for e in engine.trail(case["id"], {}) if e["type"] == "timer_fired"] == ["2026-01-01T08:00:01Z"]


def test_a_worker_sleeps_until_the_next_timer_falls_due(timed):
    """`usm worker` waits for the next due time, at most its interval: a timer is late by the time it takes
    to fire, not by up to a whole interval."""
    engine, clock = timed
    assert engine.seconds_to_next_timer(5.0) == 5.0  # nothing waits: the interval
    engine.start_case("timers", "system", data={"resolution_target": "PT8H"})  # reminder due in 1 h
    assert engine.seconds_to_next_timer(5.0) == 5.0
    clock.advance(minutes=59, seconds=58)
    assert engine.seconds_to_next_timer(5.0) == pytest.approx(2.005)
    clock.advance(seconds=2)
    assert engine.seconds_to_next_timer(5.0) == 5.0  # the reminder is due now: the next is hours away
    assert engine.fire_due_timers() == 0  # due at this very moment, fired just after it
    clock.advance(seconds=1)
    assert engine.fire_due_timers() == 1
