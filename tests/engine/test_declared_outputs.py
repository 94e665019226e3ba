"""A user task's declared outputs are its form (engine/task_outputs.py): the dataOutputs of its
ioSpecification and the data objects it writes are required fields of the form the engine shows, so
completing the task without them is refused as invalid input and the task stays open; with them the case
goes on, and a data object fed by a dataOutput (or feeding a dataInput) gets the value."""
from __future__ import annotations

import random

import pytest

from tests.conftest import FIXTURES
from usm_engine.engine.conformance_forms import form_data
from usm_engine.engine.errors import InvalidInput

ANYONE = lambda lane: True  # noqa: E731 - authorization is the API's concern, not these tests'


def deployed(engine, name: str) -> None:
    engine.deploy([(name, (FIXTURES / "declared_outputs" / name).read_bytes())], "designer")


def ready_task(engine, case: dict) -> dict:
    return engine.get_task(case["tasks"][0]["id"])


def test_an_io_specification_output_is_a_required_field(engine):
    deployed(engine, "io_spec_user_task.bpmn")
    case, _ = engine.start_case("assign", "alice")
    task = ready_task(engine, case)
    assert task["form"]["required"] == ["approver"]
    assert task["form"]["properties"]["approver"]["title"] == "Approver"
    [shown] = engine.get_definition("assign")["user_tasks"]
    assert shown["form"]["required"] == ["approver"]

    with pytest.raises(InvalidInput, match="approver: this field is required"):
        engine.complete_task(task["id"], {"note": "no approver"}, "alice", ANYONE)
    again = engine.get_case(case["id"])
    assert again["status"] == "running" and not again.get("incident")
    assert [t["element_id"] for t in again["tasks"]] == ["assign_approver"]

    done = engine.complete_task(task["id"], {"approver": "bob"}, "alice", ANYONE)
    assert done["status"] == "completed" and done["data"] == {"approver": "bob"}


def test_a_data_object_the_task_writes_is_a_required_field(engine):
    deployed(engine, "data_object_user_task.bpmn")
    case, _ = engine.start_case("collect", "alice")
    task = ready_task(engine, case)
    assert task["form"]["required"] == ["order"]
    with pytest.raises(InvalidInput, match="order: this field is required"):
        engine.complete_task(task["id"], {}, "alice", ANYONE)
    assert engine.get_case(case["id"])["status"] == "running"

    done = engine.complete_task(task["id"], {"order": {"item": "laptop"}}, "alice", ANYONE)
    assert done["status"] == "completed" and done["data"]["checked"] == {"item": "laptop"}


def test_a_data_output_feeds_the_data_object_that_feeds_the_next_input(engine):
    deployed(engine, "linked_outputs.bpmn")
    case, _ = engine.start_case("identity", "alice")
    task = ready_task(engine, case)
    # The data object gets the dataOutput's value: a person is asked for it once.
    assert task["form"]["required"] == ["provided_document"]
    case = engine.complete_task(task["id"], {"provided_document": "passport 123"}, "alice", ANYONE)
    assert case["status"] == "running" and not case.get("incident")
    analyse = ready_task(engine, case)
    assert analyse["element_id"] == "analyse"
    done = engine.complete_task(analyse["id"], {}, "alice", ANYONE)
    assert done["status"] == "completed", done.get("incident")


def test_the_conformance_driver_fills_declared_outputs(engine):
    deployed(engine, "io_spec_user_task.bpmn")
    case, _ = engine.start_case("assign", "alice")
    task = ready_task(engine, case)
    data = form_data(task["form"], random.Random(1))
    assert "approver" in data
    assert engine.complete_task(task["id"], data, "alice", ANYONE)["status"] == "completed"
