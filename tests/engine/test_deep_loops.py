"""A loop that goes round hundreds of times without waiting. SpiffWorkflow keeps each round's steps one level
deeper in the case's task tree and its task iterator looks no deeper than 1000 levels, so past that the steps
left to do are invisible and the case would seem completed. The engine finds them in the task dict instead and
stops the case with an incident: it never reports a case completed that is not."""
from __future__ import annotations

import pytest

from tests.conftest import fixture_files

FILE = "loops/tight_loop.bpmn"


@pytest.mark.parametrize("rounds", [3, 200])
def test_a_loop_that_ends_in_time_completes_with_every_round_counted(engine, rounds):
    engine.deploy(fixture_files(FILE), "designer")
    case, _ = engine.start_case("tight_loop", "system", data={"rounds": rounds, "counter": 0})
    assert case["status"] == "completed"
    assert engine.get_case(case["id"])["data"]["counter"] == rounds


def test_a_loop_past_the_libraries_depth_is_an_incident_not_a_completed_case(engine):
    engine.deploy(fixture_files(FILE), "designer")
    case, _ = engine.start_case("tight_loop", "system", data={"rounds": 1000, "counter": 0})
    assert case["status"] == "error"
    incident = engine.get_case(case["id"])["incident"]
    assert incident["element_id"] in {"Gateway_Merge", "Task_Count", "Gateway_More"}
    assert "went deeper than SpiffWorkflow's limit of 1000 steps" in incident["message"]
    types = [event["type"] for event in engine.trail(case["id"], {})]
    assert "case_completed" not in types
    assert types.count("activity_completed") < 1000  # it stopped on the way, as the incident says
