"""Service tasks whose model says a worker does them (engine/worker_tasks.py): a Camunda 8 job
(zeebe:taskDefinition type) is an external task on its type, as drawn, without a warning; a SpiffWorkflow
connector call (spiffworkflow:serviceTaskOperator) is an external task on its operator id, with a warning
naming the topic, and its literal parameters go with the job. A type that is an expression names no topic:
that task keeps no implementation, and a case reaching it stops with the model's incident."""
from __future__ import annotations

from tests.conftest import FIXTURES
from usm_engine.engine.conformance_incidents import classify

ANYONE = lambda lane: True  # noqa: E731 - authorization is the API's concern, not these tests'


def deployed(engine, name: str) -> list[dict]:
    """The warnings of the deployment."""
    _, results = engine.deploy([(name, (FIXTURES / "worker_tasks" / name).read_bytes())], "designer")
    return [warning for result in results for warning in result.get("warnings", [])]


def complete_job(engine, topic: str, data: dict) -> dict:
    [job] = engine.lock_external_tasks("w1", [topic], 5, 60)
    return job, engine.complete_task(job["id"], data, "w1", ANYONE, worker="w1")


def test_a_camunda_8_job_waits_for_a_worker_of_its_type(engine):
    warnings = deployed(engine, "camunda8_job.bpmn")
    assert not [w for w in warnings if w.get("element_id") == "check"]
    assert [w for w in warnings if w.get("element_id") == "computed"]  # no implementation: said at deploy
    case, _ = engine.start_case("check_order", "alice")
    assert [(t["element_id"], t["topic"]) for t in case["tasks"]] == [("check", "check-order")]
    job, case = complete_job(engine, "check-order", {"ok": True})
    assert "parameters" not in job
    assert case["status"] == "error" and case["incident"]["element_id"] == "computed"
    assert classify(case["incident"]["message"]) == ("model", "service task without implementation")


def test_a_spiff_connector_call_is_a_job_on_its_operator_with_its_literal_parameters(engine):
    warnings = deployed(engine, "spiff_operator.bpmn")
    [warning] = [w for w in warnings if w.get("element_id") == "get_image"]
    assert "external task on the topic 'http/GetRequest'" in warning["message"]
    case, _ = engine.start_case("fetch_dog", "alice")
    assert [t["topic"] for t in case["tasks"]] == ["http/GetRequest"]
    job, case = complete_job(engine, "http/GetRequest", {"api_result": {"status": 200}})
    assert job["parameters"] == {"url": "https://example.org/dog", "timeout": 5}
    assert case["status"] == "completed" and case["data"] == {"api_result": {"status": 200}}
