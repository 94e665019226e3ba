"""External service tasks (camunda:type="external"): a worker fetches a topic's tasks with a lock,
then completes or fails each; nobody else can complete a task it holds."""
from __future__ import annotations

import pytest

from usm_engine.engine import external_tasks
from usm_engine.engine.errors import Conflict, DefinitionInvalid, NotAllowed, TaskNotReady
from tests.conftest import FIXTURES, fixture_files

SYSTEM = lambda lane: True  # noqa: E731 - authorization is the API's concern, not these tests'
LANE_HOLDER = lambda lane: lane == "Requester"  # noqa: E731 - a one-line stand-in for the API's lane check


def started(engine, business_key="CHG-1"):
    engine.deploy(fixture_files("external.bpmn"), "designer")
    case, _ = engine.start_case("external", "crm", data={"change": "new switch"}, business_key=business_key)
    return case


def test_a_worker_locks_completes_and_the_case_goes_on(clocked_engine):
    engine, clock = clocked_engine
    case = started(engine)
    assert case["status"] == "running"
    assert case["tasks"] == [{"id": case["tasks"][0]["id"], "element_id": "Activity_UpdateCmdb", "name": "Update CMDB",
                              "lane": "Requester", "state": "ready", "created_at": case["tasks"][0]["created_at"],
                              "topic": "cmdb"}]
    assert engine.lock_external_tasks("w1", ["other"], 10, 60) == []
    [job] = engine.lock_external_tasks("w1", ["cmdb"], 10, 60)
    assert ((job["id"], job["topic"], job["locked_by"], job["business_key"])
            == (case["tasks"][0]["id"], "cmdb", "w1", "CHG-1"))
    assert job["data"] == {"change": "new switch"} and job["locked_until"] == "2026-01-01T00:01:00Z"
    assert engine.lock_external_tasks("w2", ["cmdb"], 10, 60) == []  # held by w1
    with pytest.raises(Conflict, match="locked by worker 'w1'"):
        engine.complete_task(job["id"], {}, "robot", SYSTEM, worker="w2")
    with pytest.raises(Conflict, match="lock it first"):
        engine.complete_task(job["id"], {}, "robot", SYSTEM)
    done = engine.complete_task(job["id"], {"ci": "SW-042"}, "robot", SYSTEM, worker="w1")
    assert [t["name"] for t in done["tasks"]] == ["Confirm"] and done["data"]["ci"] == "SW-042"
    with pytest.raises(TaskNotReady):
        engine.complete_task(job["id"], {}, "robot", SYSTEM, worker="w1")
    trail = engine.trail(case["id"], {})
    assert [(e["type"], e["element_id"]) for e in trail[:5]] == [
        ("case_started", None), ("event_passed", "StartEvent_1"), ("task_ready", "Activity_UpdateCmdb"),
        ("task_completed", "Activity_UpdateCmdb"), ("task_ready", "Activity_Confirm")]
    assert trail[3]["details"] == {"task_id": job["id"], "worker": "w1"} and trail[3]["actor"] == "robot"
    assert trail[3]["data_changes"] == {"ci": [None, "SW-042"]}


def test_a_lock_that_ran_out_can_be_taken_by_another_worker(clocked_engine):
    engine, clock = clocked_engine
    started(engine)
    [job] = engine.lock_external_tasks("w1", ["cmdb"], 1, 30)
    clock.advance(seconds=31)
    [again] = engine.lock_external_tasks("w2", ["cmdb"], 1, 30)
    assert again["id"] == job["id"] and again["locked_by"] == "w2"
    with pytest.raises(Conflict):
        engine.complete_task(job["id"], {}, "robot", SYSTEM, worker="w1")  # too late
    assert engine.complete_task(job["id"], {}, "robot", SYSTEM, worker="w2")["tasks"][0]["name"] == "Confirm"


def test_oldest_first_and_no_more_than_asked(clocked_engine):
    engine, clock = clocked_engine
    first = started(engine, "A")
    clock.advance(seconds=1)
    second, _ = engine.start_case("external", "crm", business_key="B")
    [job] = engine.lock_external_tasks("w1", ["cmdb", "mail"], 1, 60)
    assert job["case_id"] == first["id"]
    [job] = engine.lock_external_tasks("w1", ["cmdb"], 5, 60)
    assert job["case_id"] == second["id"]


def test_only_the_system_role_completes_an_external_task(clocked_engine):
    engine, _ = clocked_engine
    case = started(engine)
    [job] = engine.lock_external_tasks("w1", ["cmdb"], 1, 60)
    with pytest.raises(NotAllowed, match="role 'system'"):
        engine.complete_task(job["id"], {}, "olga", LANE_HOLDER, worker="w1")
    assert engine.get_case(case["id"])["tasks"][0]["element_id"] == "Activity_UpdateCmdb"


def test_a_failure_becomes_an_incident_and_a_retry_hands_the_task_out_again(clocked_engine):
    engine, _ = clocked_engine
    case = started(engine)
    [job] = engine.lock_external_tasks("w1", ["cmdb"], 1, 60)
    with pytest.raises(Conflict):
        engine.fail_external_task(job["id"], "w2", "not mine", "robot", SYSTEM)
    failed = engine.fail_external_task(job["id"], "w1", "CMDB unreachable", "robot", SYSTEM)
    assert failed["status"] == "error"
    assert failed["incident"]["message"] == "worker 'w1' could not do this task: CMDB unreachable"
    assert failed["incident"]["element_id"] == "Activity_UpdateCmdb" and failed["incident"]["task_id"] == job["id"]
    assert engine.lock_external_tasks("w1", ["cmdb"], 1, 60) == []  # a case in error hands out nothing
    incident = [e for e in engine.trail(case["id"], {}) if e["type"] == "incident"]
    assert incident[0]["element_name"] == "Update CMDB" and incident[0]["actor"] == "robot"
    retried = engine.retry_case(case["id"], "ops", {"attempt": 2})
    assert retried["status"] == "running" and retried["tasks"][0]["topic"] == "cmdb"
    [again] = engine.lock_external_tasks("w3", ["cmdb"], 1, 60)
    assert again["id"] == job["id"] and again["data"]["change"] == "new switch"
    done = engine.complete_task(again["id"], {}, "robot", SYSTEM, worker="w3")
    assert done["data"]["attempt"] == 2  # the retry's data went to the failed task
    assert engine.verify_trails()["ok"] is True


def test_a_user_task_cannot_be_failed(clocked_engine):
    engine, _ = clocked_engine
    case = started(engine)
    [job] = engine.lock_external_tasks("w1", ["cmdb"], 1, 60)
    confirm = engine.complete_task(job["id"], {}, "robot", SYSTEM, worker="w1")["tasks"][0]
    with pytest.raises(Conflict, match="user task"):
        engine.fail_external_task(confirm["id"], "w1", "no", "robot", SYSTEM)
    assert engine.get_case(case["id"])["status"] == "running"


def test_an_external_task_without_a_topic_is_refused_at_deploy(engine):
    text = (fixture_files("external.bpmn")[0][1]).replace(b' camunda:topic="cmdb"', b"")
    with pytest.raises(DefinitionInvalid) as raised:
        engine.deploy([("external.bpmn", text)], "designer")
    problems = raised.value.errors
    assert [(p["file"], p["element_id"]) for p in problems] == [("external.bpmn", "Activity_UpdateCmdb")]
    assert "camunda:topic" in problems[0]["message"] and problems[0]["line"] == 13


def test_workers_locking_at_once_never_share_a_task(engine):
    import threading

    engine.deploy(fixture_files("external.bpmn"), "designer")
    case_ids = {engine.start_case("external", "crm")[0]["id"] for _ in range(12)}
    got: dict[str, list] = {}
    barrier = threading.Barrier(3)

    def work(worker):
        barrier.wait()
        got[worker] = [job["case_id"] for job in engine.lock_external_tasks(worker, ["cmdb"], 6, 60)]

    threads = [threading.Thread(target=work, args=(f"w{n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    taken = [case_id for jobs in got.values() for case_id in jobs]
    assert len(taken) == len(set(taken)) == 12 and set(taken) == case_ids  # 18 asked for, 12 exist, none twice


def test_a_worker_with_a_long_job_extends_its_lock(clocked_engine):
    engine, clock = clocked_engine
    started(engine)
    [job] = engine.lock_external_tasks("w1", ["cmdb"], 1, 30)
    clock.advance(seconds=20)
    with pytest.raises(Conflict, match="locked by worker 'w1'"):
        engine.extend_external_lock(job["id"], "w2", 600, SYSTEM)
    extended = engine.extend_external_lock(job["id"], "w1", 600, SYSTEM)
    assert extended["locked_by"] == "w1" and extended["locked_until"] == "2026-01-01T00:10:20Z"
    clock.advance(seconds=60)  # past the first lock's end, inside the extended one
    assert engine.lock_external_tasks("w2", ["cmdb"], 1, 30) == []
    confirm = engine.complete_task(job["id"], {}, "robot", SYSTEM, worker="w1")["tasks"][0]
    with pytest.raises(Conflict, match="user task"):
        engine.extend_external_lock(confirm["id"], "w1", 60, SYSTEM)


def test_a_lock_that_ran_out_cannot_be_extended(clocked_engine):
    engine, clock = clocked_engine
    started(engine)
    [job] = engine.lock_external_tasks("w1", ["cmdb"], 1, 30)
    clock.advance(seconds=31)
    with pytest.raises(Conflict, match="not locked by anyone"):
        engine.extend_external_lock(job["id"], "w1", 60, SYSTEM)


@pytest.mark.parametrize("ending", ["complete", "fail"])
def test_a_lock_that_runs_out_during_the_work_is_checked_again_in_the_write(clocked_engine, monkeypatch, ending):
    # Forced interleaving: w1's lock is checked, then, before w1's command writes, the lock runs out and
    # w2 takes the task. w1's command must write nothing.
    engine, clock = clocked_engine
    case = started(engine)
    [job] = engine.lock_external_tasks("w1", ["cmdb"], 10, 60)
    before = engine.get_case(case["id"])
    opened = external_tasks.open_external

    def open_then_lose_the_lock(*arguments):
        found = opened(*arguments)
        clock.advance(seconds=61)
        assert [j["id"] for j in engine.lock_external_tasks("w2", ["cmdb"], 10, 60)] == [job["id"]]
        return found

    monkeypatch.setattr(external_tasks, "open_external", open_then_lose_the_lock)
    with pytest.raises(Conflict, match="lost the lock"):
        if ending == "complete":
            engine.complete_task(job["id"], {"ci": "SW-042"}, "robot", SYSTEM, worker="w1")
        else:
            engine.fail_external_task(job["id"], "w1", "CMDB unreachable", "robot", SYSTEM)
    after = engine.get_case(case["id"])
    assert (after["etag"], after["status"], after["data"]) == (before["etag"], "running", before["data"])
    task = engine.get_task(job["id"])
    assert (task["state"], task["locked_by"]) == ("ready", "w2")
    assert engine.complete_task(job["id"], {"ci": "SW-043"}, "robot", SYSTEM, worker="w2")["data"]["ci"] == "SW-043"


def test_a_completion_without_the_tasks_declared_output_is_the_cases_incident_and_a_retry_with_it_goes_on(engine):
    # The task declares an output (ci) the worker does not send: SpiffWorkflow fails the step as it completes.
    # That is the case's incident at the task, answered like any completion; it used to escape the engine.
    text = (FIXTURES / "external.bpmn").read_text().replace(
        '<bpmn:incoming>F1</bpmn:incoming><bpmn:outgoing>F2</bpmn:outgoing></bpmn:serviceTask>',
        '<bpmn:incoming>F1</bpmn:incoming><bpmn:outgoing>F2</bpmn:outgoing><bpmn:ioSpecification>'
        '<bpmn:dataOutput id="ci" name="ci" /><bpmn:inputSet /><bpmn:outputSet><bpmn:dataOutputRefs>ci'
        '</bpmn:dataOutputRefs></bpmn:outputSet></bpmn:ioSpecification></bpmn:serviceTask>')
    engine.deploy([("external.bpmn", text.encode())], "designer")
    case, _ = engine.start_case("external", "crm", data={"change": "new switch"})
    [job] = engine.lock_external_tasks("w1", ["cmdb"], 1, 60)
    failed = engine.complete_task(job["id"], {"note": "done"}, "robot", SYSTEM, worker="w1")
    assert failed["status"] == "error" and failed["incident"]["element_id"] == "Activity_UpdateCmdb"
    assert "Missing data ouput" in failed["incident"]["message"]  # SpiffWorkflow's spelling
    # Nothing of the failed completion stays: no data, no completion in the trail; the task waits, unlocked.
    assert "note" not in failed["data"] and [t["id"] for t in failed["tasks"]] == [job["id"]]
    assert not any(e["type"] == "task_completed" for e in engine.trail(case["id"], {}))
    retried = engine.retry_case(case["id"], "ops", {"ci": "SW-042"})
    assert retried["status"] == "running" and [t["id"] for t in retried["tasks"]] == [job["id"]]
    [again] = engine.lock_external_tasks("w2", ["cmdb"], 1, 60)
    assert again["id"] == job["id"]
    done = engine.complete_task(job["id"], {}, "robot", SYSTEM, worker="w2")
    assert done["status"] == "running" and [t["name"] for t in done["tasks"]] == ["Confirm"]
    assert done["data"]["ci"] == "SW-042"
