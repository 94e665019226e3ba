"""Constructs SpiffWorkflow alone does not run as BPMN says, run as drawn: an ad-hoc subprocess without a
completion condition (it ends when its activities have, also when they end apart), and a throw event
with several messages."""
from __future__ import annotations

import pytest

from usm_engine.engine.service import Engine, EngineSettings
from tests.conftest import fixture_files


@pytest.fixture
def engine(database_url):
    engine = Engine(EngineSettings(database_url))
    engine.migrate()
    yield engine
    engine.close()


def test_an_ad_hoc_subprocess_without_a_completion_condition_ends_when_its_activities_have(engine):
    engine.deploy(fixture_files("run_gaps/adhoc_without_condition.bpmn"), "designer")
    case, _ = engine.start_case("adhoc_without_condition", "system")
    assert (case["status"], case.get("incident")) == ("completed", None)
    assert case["data"] == {"answered": True, "logged": True}


def test_two_paths_of_an_ad_hoc_subprocess_that_end_apart_both_run(engine):
    # SpiffWorkflow failed when one path ended while the other still ran (a KeyError of its own).
    engine.deploy(fixture_files("run_gaps/adhoc_two_paths.bpmn"), "designer")
    case, _ = engine.start_case("adhoc_two_paths", "system")
    assert (case["status"], case.get("incident")) == ("completed", None)
    assert case["data"] == {"answered": True, "logged": True}
    assert "data_objects" not in case["data"]


def test_a_throw_of_two_messages_at_once_sends_both(engine):
    engine.deploy(fixture_files("run_gaps/two_messages_at_once.bpmn"), "designer")
    case, _ = engine.start_case("two_messages_at_once", "system")
    assert (case["status"], case.get("incident")) == ("completed", None)
    started = sorted(engine.get_case(child)["definition"] for child in case["child_cases"])
    assert started == ["billing", "shipping"]
