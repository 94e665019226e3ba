"""A multi-instance activity may ask for at most EngineSettings.max_instances instances (USM_MAX_INSTANCES).

A literal loop cardinality above it is refused at deploy; an expression or a collection above it makes an
incident as the activity begins, before SpiffWorkflow creates a single instance (100,000 of them took
16 s and 408 MB of database); a retry with smaller data begins the activity again.
"""
from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from usm_engine.engine import multi_instance
from usm_engine.engine.deployment import compile_bundle
from usm_engine.engine.errors import DefinitionInvalid
from usm_engine.engine.schema import cases, tasks
from usm_engine.engine.service import Engine, EngineSettings
from usm_engine.engine.spiff_setup import spec_from_dict
from tests.conftest import fixture_files

ANYONE = lambda lane: True  # noqa: E731 - authorization is the API's concern, not these tests'
HEADER = ('<?xml version="1.0" encoding="UTF-8"?>\n'
          '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
          'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="Definitions_1" '
          'targetNamespace="http://example.com/bpmn">\n')


def loop(cardinality: str | None = None, collection: str | None = None, sequential: bool = False) -> str:
    attributes = ' isSequential="true"' if sequential else ""
    if collection:
        attributes += f' camunda:collection="{collection}" camunda:elementVariable="item"'
    inner = f"\n        <bpmn:loopCardinality>{cardinality}</bpmn:loopCardinality>\n      " if cardinality else ""
    return f"      <bpmn:multiInstanceLoopCharacteristics{attributes}>{inner}</bpmn:multiInstanceLoopCharacteristics>\n"


def review(pid: str, characteristics: str) -> bytes:
    """start -> a multi-instance user task 'Review' (id mi) -> end. Line 5 is the task, 7 its cardinality."""
    return (HEADER + f'  <bpmn:process id="{pid}" isExecutable="true">\n'
            '    <bpmn:startEvent id="start" />\n'
            f'    <bpmn:userTask id="mi" name="Review">\n{characteristics}    </bpmn:userTask>\n'
            '    <bpmn:endEvent id="end" />\n'
            '    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="mi" />\n'
            '    <bpmn:sequenceFlow id="f2" sourceRef="mi" targetRef="end" />\n'
            '  </bpmn:process>\n</bpmn:definitions>\n').encode()


def beside(pid: str, gateway: str) -> bytes:
    """A split (parallel, or inclusive with both flows taken) into a multi-instance 'Review' (mi) and an
    event that passes at once, joined again before a user task 'After'."""
    condition = "<bpmn:conditionExpression>True</bpmn:conditionExpression>" if gateway == "inclusiveGateway" else ""
    return (HEADER + f'  <bpmn:process id="{pid}" isExecutable="true">\n'
            '    <bpmn:startEvent id="start" />\n'
            f'    <bpmn:{gateway} id="split" />\n'
            f'    <bpmn:userTask id="mi" name="Review">\n{loop("count")}    </bpmn:userTask>\n'
            '    <bpmn:intermediateThrowEvent id="note" name="Noted" />\n'
            f'    <bpmn:{gateway} id="join" />\n'
            '    <bpmn:userTask id="after" name="After" />\n'
            '    <bpmn:endEvent id="end" />\n'
            '    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="split" />\n'
            f'    <bpmn:sequenceFlow id="f2" sourceRef="split" targetRef="mi">{condition}</bpmn:sequenceFlow>\n'
            f'    <bpmn:sequenceFlow id="f3" sourceRef="split" targetRef="note">{condition}</bpmn:sequenceFlow>\n'
            '    <bpmn:sequenceFlow id="f4" sourceRef="mi" targetRef="join" />\n'
            '    <bpmn:sequenceFlow id="f5" sourceRef="note" targetRef="join" />\n'
            '    <bpmn:sequenceFlow id="f6" sourceRef="join" targetRef="after" />\n'
            '    <bpmn:sequenceFlow id="f7" sourceRef="after" targetRef="end" />\n'
            '  </bpmn:process>\n</bpmn:definitions>\n').encode()


@pytest.fixture
def small(database_url):
    """An engine whose ceiling is 5 instances, so that going over it is cheap."""
    instance = Engine(EngineSettings(database_url, max_instances=5))
    instance.migrate()
    yield instance
    instance.close()


def start(engine: Engine, pid: str, document: bytes, data: dict) -> dict:
    engine.deploy([(f"{pid}.bpmn", document)], "designer")
    case, _ = engine.start_case(pid, "system", data=data)
    return case


def stored(engine: Engine, case_id: str) -> tuple[int, int]:
    """(task rows of the case, characters of its stored state)."""
    with engine.db.reader.connect() as conn:
        rows = conn.execute(select(func.count()).select_from(tasks).where(tasks.c.case_id == case_id)).scalar_one()
        state = conn.execute(select(cases.c.state).where(cases.c.id == case_id)).scalar_one()
    return rows, len(state)


def complete_all(engine: Engine, case: dict) -> dict:
    while case["status"] == "running" and case["tasks"]:
        case = engine.complete_task(case["tasks"][0]["id"], {}, "alice", ANYONE)
    return case


# --- deploy time ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("literal", ["100000", " 100_000 ", "1001"])
def test_a_literal_cardinality_over_the_ceiling_is_refused_at_deploy(literal):
    with pytest.raises(DefinitionInvalid) as refused:
        compile_bundle([("many.bpmn", review("many", loop(literal)))], set())
    [problem] = refused.value.errors
    asked = int(literal.strip().replace("_", ""))
    assert (problem["file"], problem["line"], problem["element_id"]) == ("many.bpmn", 7, "mi")
    assert problem["message"].startswith(f"user task 'Review' (mi) asks for {asked} instances")
    assert "the limit is 1000" in problem["message"] and "USM_MAX_INSTANCES" in problem["message"]
    assert "many.bpmn:7 (mi)" in refused.value.detail


def test_the_deploy_ceiling_is_the_engines_setting(small):
    with pytest.raises(DefinitionInvalid) as refused:
        small.deploy([("six.bpmn", review("six", loop("6", sequential=True)))], "designer")
    assert "asks for 6 instances" in refused.value.errors[0]["message"]
    assert "the limit is 5" in refused.value.errors[0]["message"]
    small.deploy([("five.bpmn", review("five", loop("5")))], "designer")  # at the ceiling: deployed
    assert complete_all(small, small.start_case("five", "system")[0])["status"] == "completed"


def test_expressions_and_collections_are_not_judged_at_deploy():
    for document in (review("expr", loop("count * 1000")), review("coll", loop(collection="items"))):
        [definition] = compile_bundle([("d.bpmn", document)], set(), max_instances=5)
        assert definition.key in ("expr", "coll")


# --- run time ------------------------------------------------------------------------------------------

def test_an_expression_asking_for_100000_is_an_incident_before_any_instance_exists(engine):
    case = start(engine, "many", review("many", loop("count")), {"count": 100_000})
    assert case["status"] == "error" and case["tasks"] == []
    incident = case["incident"]
    assert (incident["element_id"], incident["element_name"], incident["definition"]) == ("mi", "Review", "many")
    assert incident["message"] == ("'Review' (mi) in 'many' asks for 100000 instances (its loop cardinality "
                                   "'count'), more than the limit of 1000 (setting USM_MAX_INSTANCES); no instance "
                                   "was started")
    assert "at most 1000" in incident["action"] and "USM_MAX_INSTANCES" in incident["action"]
    rows, state_size = stored(engine, case["id"])
    assert rows == 0 and state_size < 20_000  # no instance was created, let alone stored


@pytest.mark.parametrize("sequential", [False, True], ids=["parallel", "sequential"])
def test_a_cardinality_over_the_ceiling_is_an_incident(small, sequential):
    case = start(small, "six", review("six", loop("count", sequential=sequential)), {"count": 6})
    assert case["status"] == "error" and case["tasks"] == []
    assert "asks for 6 instances" in case["incident"]["message"]
    assert "the limit of 5" in case["incident"]["message"]
    assert stored(small, case["id"])[0] == 0


@pytest.mark.parametrize("sequential", [False, True], ids=["parallel", "sequential"])
def test_a_collection_over_the_ceiling_is_an_incident(small, sequential):
    case = start(small, "items", review("items", loop(collection="items", sequential=sequential)),
                 {"items": [f"item {n}" for n in range(6)]})
    assert case["status"] == "error" and case["tasks"] == []
    assert case["incident"]["message"] == (
        "'Review' (mi) in 'items' asks for one instance per item of 'items', which holds 6 items, more than the "
        "limit of 5 (setting USM_MAX_INSTANCES); no instance was started")
    assert stored(small, case["id"])[0] == 0


@pytest.mark.parametrize("characteristics, data", [
    (loop("count"), {"count": 5}),
    (loop("count", sequential=True), {"count": 5}),
    (loop(collection="items"), {"items": [1, 2, 3, 4, 5]}),
], ids=["parallel", "sequential", "collection"])
def test_at_the_ceiling_it_runs(small, characteristics, data):
    case = start(small, "five", review("five", characteristics), data)
    assert case["status"] == "running" and "incident" not in case
    assert len(case["tasks"]) == (1 if "isSequential" in characteristics else 5)
    finished = complete_all(small, case)
    assert finished["status"] == "completed"


def test_retry_with_a_smaller_count_begins_the_activity_again(small):
    case = start(small, "six", review("six", loop("count")), {"count": 6})
    again = small.retry_case(case["id"], "ops", {"count": 7})
    assert again["status"] == "error" and "asks for 7 instances" in again["incident"]["message"]
    retried = small.retry_case(case["id"], "ops", {"count": 2})
    assert retried["status"] == "running" and "incident" not in retried
    assert [task["element_id"] for task in retried["tasks"]] == ["mi", "mi"]
    assert complete_all(small, retried)["status"] == "completed"
    types = [event["type"] for event in small.trail(case["id"], {})]
    assert types.count("incident") == 2 and types.count("case_retried") == 2


def test_retry_after_a_cardinality_that_did_not_evaluate_begins_the_activity(small):
    """SpiffWorkflow alone leaves the activity stuck after this failure: a retry found nothing to run."""
    case = start(small, "nothing", review("nothing", loop("count")), {})
    assert case["status"] == "error" and "NameError" in case["incident"]["message"]
    retried = small.retry_case(case["id"], "ops", {"count": 3})
    assert retried["status"] == "running" and len(retried["tasks"]) == 3


def test_the_other_branches_go_on_and_the_join_waits(small):
    """The refusal is not raised inside the split's completion: the other branch is started too, and
    the join after them fires once, when the retried activity is done."""
    case = start(small, "parallel", beside("parallel", "parallelGateway"), {"count": 6})
    assert case["status"] == "error" and case["incident"]["element_id"] == "mi"
    passed = [event["element_id"] for event in small.trail(case["id"], {}) if event["type"] == "event_passed"]
    assert passed == ["start", "note"]
    retried = small.retry_case(case["id"], "ops", {"count": 1})
    assert [task["element_id"] for task in retried["tasks"]] == ["mi"]
    after = small.complete_task(retried["tasks"][0]["id"], {}, "alice", ANYONE)
    assert [task["element_id"] for task in after["tasks"]] == ["after"]
    assert complete_all(small, after)["status"] == "completed"


def test_an_inclusive_join_waits_for_the_refused_branch(small):
    """A task in error may still reach the join once retried, so the join does not fire without it."""
    case = start(small, "inclusive", beside("inclusive", "inclusiveGateway"), {"count": 6})
    assert case["status"] == "error" and case["tasks"] == []
    retried = small.retry_case(case["id"], "ops", {"count": 1})
    after = small.complete_task(retried["tasks"][0]["id"], {}, "alice", ANYONE)
    assert [task["element_id"] for task in after["tasks"]] == ["after"]
    assert complete_all(small, after)["status"] == "completed"


def test_the_ceiling_applies_to_definitions_deployed_before_it_changed(engine, database_url):
    """The ceiling is the engine's setting, not part of the stored definition."""
    engine.deploy(fixture_files("multi_instance.bpmn"), "designer")
    assert engine.start_case("multi_instance", "system", data={"count": 6})[0]["status"] == "running"
    lowered = Engine(EngineSettings(database_url, max_instances=5))
    try:
        case, _ = lowered.start_case("multi_instance", "system", data={"count": 6})
        assert case["status"] == "error" and case["incident"]["element_id"] == "Activity_Review"
    finally:
        lowered.close()


def test_stored_multi_instance_specs_restore_into_the_bounded_classes():
    [parallel] = compile_bundle([("p.bpmn", review("p", loop("count")))], set())
    [sequential] = compile_bundle([("s.bpmn", review("s", loop("count", sequential=True)))], set())
    for definition, kind in ((parallel, multi_instance.ParallelMultiInstanceTask),
                             (sequential, multi_instance.SequentialMultiInstanceTask)):
        # Stored under the Camunda flavour's type name, as definitions deployed before the ceiling were.
        assert definition.spec["task_specs"]["mi"]["typename"] == kind.__name__
        restored = spec_from_dict(json.loads(json.dumps(definition.spec)))
        assert type(restored.task_specs["mi"]) is kind
