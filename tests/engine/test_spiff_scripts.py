"""Pre- and post-scripts as the SpiffWorkflow modeler writes them: spiffworkflow:preScript runs as its task
is reached (a user task's before it is shown, a multi-instance activity's before its instances are made),
spiffworkflow:postScript as its task completes; what they set is read further on, and a failing one is the
case's incident at its task, from which a retry goes on. Before, both were silently skipped."""
from __future__ import annotations

from usm_engine.engine.spiff_scripts import task_scripts
from tests.conftest import FIXTURES

ANYONE = lambda lane: True  # noqa: E731 - authorization is the API's concern, not these tests'


def upload(name: str = "prepost.bpmn", text: str | None = None) -> list[tuple[str, bytes]]:
    return [(name, (text or (FIXTURES / "spiff_scripts" / name).read_text()).encode())]


def ordered(engine, qty: int, price: int | None, items=("cup", "mug")) -> dict:
    engine.deploy(upload(), "designer")
    case, _ = engine.start_case("spiff_prepost", "system", data={"customer": "Ann", "items": list(items)})
    assert case["data"]["greeting"] == "Hello Ann"  # the pre-script ran as the task was reached
    data = {"qty": qty} if price is None else {"qty": qty, "price": price}
    return engine.complete_task(case["tasks"][0]["id"], data, "alice", ANYONE)


def packed(engine, case: dict) -> dict:
    """Complete each packing instance (a plain task is one for a person)."""
    while case["tasks"]:
        assert {t["name"] for t in case["tasks"]} == {"Pack each item"}
        case = engine.complete_task(case["tasks"][0]["id"], {}, "packer", ANYONE)
    return case


def test_the_post_script_sets_what_the_gateway_reads_and_the_multi_instance_scripts_run_around_it(engine):
    small = ordered(engine, qty=2, price=10)
    # The total took the small branch; the pre-script upper-cased the collection before its 2 instances were made.
    assert small["data"]["total"] == 20 and small["data"]["items"] == ["CUP", "MUG"] and len(small["tasks"]) == 2
    small = packed(engine, small)
    assert small["status"] == "completed" and small["data"]["packed"] == 2
    large = ordered(engine, qty=20, price=10, items=("plate",))
    assert large["data"]["total"] == 200 and [t["name"] for t in large["tasks"]] == ["Approve the order"]
    done = packed(engine, engine.complete_task(large["tasks"][0]["id"], {}, "bob", ANYONE))
    assert done["status"] == "completed" and done["data"]["items"] == ["PLATE"] and done["data"]["packed"] == 1


def test_a_failing_post_script_is_the_cases_incident_at_its_task_and_a_retry_with_the_data_goes_on(engine):
    failed = ordered(engine, qty=2, price=None)
    assert failed["status"] == "error" and failed["incident"]["element_id"] == "Activity_Order"
    assert "NameError: name 'price' is not defined" in failed["incident"]["message"]
    retried = engine.retry_case(failed["id"], "ops", {"price": 5})
    assert retried["status"] == "running" and retried["data"]["total"] == 10
    assert [t["name"] for t in retried["tasks"]] == ["Pack each item"] * 2


def test_a_failing_pre_script_stops_the_case_before_its_task_is_shown(engine):
    engine.deploy(upload(), "designer")
    case, _ = engine.start_case("spiff_prepost", "system", data={"items": []})  # no customer to greet
    assert case["status"] == "error" and case["tasks"] == []
    assert case["incident"]["element_id"] == "Activity_Order" and "'customer'" in case["incident"]["message"]
    retried = engine.retry_case(case["id"], "ops", {"customer": "Bo"})
    assert retried["status"] == "running" and retried["data"]["greeting"] == "Hello Bo"
    assert [t["name"] for t in retried["tasks"]] == ["Take the order"]


def test_the_scripts_of_a_multi_instance_activity_go_around_it_or_with_scripts_on_instances_into_each(engine):
    def scripts_of(text: str) -> dict[str, tuple]:
        engine.deploy(upload(text=text), "designer")
        version = engine.get_definition("spiff_prepost")["version"]
        spec = engine.parts.specs.blueprint("spiff_prepost", version, {}).spec
        return {name: task_scripts(spec_of)
                for name, spec_of in spec.task_specs.items() if name.startswith("Activity_Pack")}
    text = (FIXTURES / "spiff_scripts" / "prepost.bpmn").read_text()
    around = scripts_of(text)
    assert around["Activity_Pack"][0].startswith("items = ") and around["Activity_Pack [child]"] == (None, None)
    each = scripts_of(text.replace('camunda:elementVariable="item" />',
                                   'camunda:elementVariable="item" spiffworkflow:scriptsOnInstances="true" />'))
    assert each["Activity_Pack"] == (None, None) and each["Activity_Pack [child]"][1] == "packed = len(items)"
