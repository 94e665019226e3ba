"""Multi-instance service tasks (camunda:collection and camunda:elementVariable, or a loop cardinality):
each instance of an external service task is a job for a worker, in parallel or one after the other, and
the case goes on when all are done. A service task without an implementation deploys with a warning
saying what a case meets there: an incident."""
from __future__ import annotations

from usm_engine.engine.deployment import compile_bundle
from tests.conftest import FIXTURES, fixture_files

SYSTEM = lambda lane: True  # noqa: E731 - authorization is the API's concern, not these tests'
MODEL = "camunda_multi_instance_service.bpmn"
APPROVERS = ["ann", "bob", "cy"]


def test_it_deploys_as_instances_of_external_tasks(engine):
    created, [item] = engine.deploy(fixture_files(MODEL), "designer")
    assert created and item["warnings"] == []
    [definition] = compile_bundle(fixture_files(MODEL), set())
    assert sorted(task["element_id"] for task in definition.meta["external_tasks"]) == ["Activity_Archive",
                                                                                         "Activity_Notify"]


def test_parallel_instances_then_sequential_ones_run_to_the_end(engine):
    engine.deploy(fixture_files(MODEL), "designer")
    case, _ = engine.start_case("camunda_mi_service", "system", data={"approvers": APPROVERS})
    assert [(t["element_id"], t["topic"]) for t in case["tasks"]] == [("Activity_Notify", "notify")] * 3
    jobs = engine.lock_external_tasks("mailer", ["notify"], 10, 60)
    assert len(jobs) == 3 and len({job["id"] for job in jobs}) == 3
    for done, job in enumerate(jobs, start=1):
        case = engine.complete_task(job["id"], {}, "robot", SYSTEM, worker="mailer")
        assert case["status"] == "running"
        assert [t["element_id"] for t in case["tasks"]] == (["Activity_Notify"] * (3 - done) or ["Activity_Archive"])
    for left in (1, 0):  # sequential: one instance at a time
        [job] = engine.lock_external_tasks("archiver", ["archive", "notify"], 10, 60)
        assert job["element_id"] == "Activity_Archive"
        case = engine.complete_task(job["id"], {}, "robot", SYSTEM, worker="archiver")
        assert len(case["tasks"]) == left
    assert case["status"] == "completed" and case["data"]["approvers"] == APPROVERS
    completed = [e["element_id"] for e in engine.trail(case["id"], {}) if e["type"] == "task_completed"]
    assert completed == ["Activity_Notify"] * 3 + ["Activity_Archive"] * 2


def test_an_empty_collection_passes_the_activity_without_jobs(engine):
    engine.deploy(fixture_files(MODEL), "designer")
    case, _ = engine.start_case("camunda_mi_service", "system", data={"approvers": []})
    assert [t["element_id"] for t in case["tasks"]] == ["Activity_Archive"]


def test_a_multi_instance_service_task_without_implementation_is_warned_about_and_stops_at_an_incident(engine):
    text = (FIXTURES / MODEL).read_text().replace(' camunda:type="external" camunda:topic="notify"',
                                                  ' camunda:class="org.example.NotifyDelegate"')
    _, [item] = engine.deploy([(MODEL, text.encode())], "designer")
    [warning] = item["warnings"]
    assert (warning["line"], warning["element_id"]) == (8, "Activity_Notify")
    assert warning["message"] == (
        "service task 'Notify approver' (Activity_Notify) has no implementation this engine runs (its "
        "camunda:class 'org.example.NotifyDelegate' is Camunda 7 Java, not run here): a case that reaches it stops "
        "with an incident; make it an external task (camunda:type=\"external\" with a camunda:topic) that a worker "
        "completes; a server run with USM_JAVA_AS_EXTERNAL_TASKS makes it an external task on the topic "
        "'NotifyDelegate' instead")
    case, _ = engine.start_case("camunda_mi_service", "system", data={"approvers": APPROVERS})
    assert case["status"] == "error" and case["incident"]["element_id"] == "Activity_Notify"
    assert "has no implementation" in case["incident"]["message"]
