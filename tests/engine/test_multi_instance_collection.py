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
