"""A multi-instance activity over a collection (camunda:collection) that the case data does not hold, or
holds as something other than a collection, is the model's incident, in a sentence naming the variable;
SpiffWorkflow's parallel kind raised a TypeError of its own ("'NoneType' object is not iterable"), which
read as a fault of the engine. A retry with the collection begins the activity."""
from __future__ import annotations

import pytest

from usm_engine.engine.conformance_incidents import classify
from usm_engine.engine.service import Engine
from tests.engine.test_multi_instance_limits import loop, review, start


@pytest.mark.parametrize("sequential", [False, True], ids=["parallel", "sequential"])
def test_a_missing_collection_is_the_models_incident_naming_it(engine: Engine, sequential: bool):
    case = start(engine, "items", review("items", loop(collection="items", sequential=sequential)), {})
    assert case["status"] == "error"
    incident = case["incident"]
    assert incident["element_id"] == "mi"
    assert "its collection 'items' is not set" in incident["message"]
    assert "TypeError" not in incident["message"]
    assert classify(incident["message"])[0] == "model"


@pytest.mark.parametrize("sequential", [False, True], ids=["parallel", "sequential"])
def test_a_collection_that_is_no_collection_names_what_it_holds(engine: Engine, sequential: bool):
    case = start(engine, "number", review("number", loop(collection="items", sequential=sequential)),
                 {"items": 42})
    message = case["incident"]["message"]
    assert "its collection 'items' is int 42, not a list or map" in message
    assert classify(message) == ("model", "a multi-instance collection the model never sets (or that holds no items)")


@pytest.mark.parametrize("sequential", [False, True], ids=["parallel", "sequential"])
def test_a_retry_with_the_collection_begins_the_activity(engine: Engine, sequential: bool):
    case = start(engine, "later", review("later", loop(collection="items", sequential=sequential)), {})
    retried = engine.retry_case(case["id"], "ops", {"items": ["a", "b"]})
    assert retried["status"] == "running" and "incident" not in retried
    assert [task["element_id"] for task in retried["tasks"]] == ["mi"] * (1 if sequential else 2)


def _gathering(task: str, sequential: bool) -> bytes:
    """A multi-instance `task` in BPMN's standard form, over `items`, gathering `result` into `results`."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="http://x">
  <bpmn:process id="gather" isExecutable="true">
    <bpmn:startEvent id="start" />
    {task.replace("LOOP", f'''<bpmn:multiInstanceLoopCharacteristics isSequential="{str(sequential).lower()}">
        <bpmn:loopDataInputRef>items</bpmn:loopDataInputRef><bpmn:loopDataOutputRef>results</bpmn:loopDataOutputRef>
        <bpmn:inputDataItem id="item" /><bpmn:outputDataItem id="result" />
      </bpmn:multiInstanceLoopCharacteristics>''')}
    <bpmn:endEvent id="end" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="mi" />
    <bpmn:sequenceFlow id="f2" sourceRef="mi" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>""".encode()


@pytest.mark.parametrize("sequential", [False, True], ids=["parallel", "sequential"])
def test_an_instance_that_sets_no_output_item_adds_null_to_the_output_collection(engine: Engine, sequential: bool):
    # A person completes each instance of a plain task without giving the item (Camunda 8 gathers null).
    engine.deploy([("plain.bpmn", _gathering('<bpmn:task id="mi">LOOP</bpmn:task>', sequential))], "designer")
    case, _ = engine.start_case("gather", "system", data={"items": ["a", "b"], "results": []})
    while case["status"] == "running" and case["tasks"]:
        engine.complete_task(case["tasks"][0]["id"], {}, "someone", lambda lane: True)
        case = engine.get_case(case["id"])
    assert (case["status"], case["data"]["results"]) == ("completed", [None, None])
    # A script that sets it for some items only: those give their value, the others null.
    script = ('<bpmn:scriptTask id="mi" scriptFormat="python">LOOP<bpmn:script>if item == "b":\n'
              '    result = item.upper()</bpmn:script></bpmn:scriptTask>')
    engine.deploy([("script.bpmn", _gathering(script, sequential))], "designer")
    case, _ = engine.start_case("gather", "system", data={"items": ["a", "b"], "results": []})
    assert (case["status"], case["data"]["results"]) == ("completed", [None, "B"])
