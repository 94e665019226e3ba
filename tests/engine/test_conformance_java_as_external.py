"""The opt-in EngineSettings.java_as_external_tasks (USM_JAVA_AS_EXTERNAL_TASKS): a Camunda 7 service task
that names Java (camunda:class, delegateExpression, expression) becomes an external task on a topic named
after it, so a worker can be plugged in without editing the model. Off (the default), a case reaching it
stops with an incident. The conformance run turns it on, as a team plugging in workers would."""
from __future__ import annotations

import pytest

from usm_engine.api.settings import SettingsError, settings_from_env
from usm_engine.engine.java_tasks import opt_in_external_tasks
from usm_engine.engine.service import Engine, EngineSettings

ANYONE = lambda lane: True  # noqa: E731 - authorization is the API's concern, not these tests'
DIAGRAM = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="http://example.com/bpmn">
  <bpmn:process id="loan" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:serviceTask id="interest" name="Calculate interest"
        camunda:class="org.example.loans.CalculateInterest" />
    <bpmn:subProcess id="notify">
      <bpmn:startEvent id="notify_start" />
      <bpmn:serviceTask id="log" camunda:delegateExpression="${loggerDelegate}" />
      <bpmn:endEvent id="notify_end" />
      <bpmn:sequenceFlow id="n1" sourceRef="notify_start" targetRef="log" />
      <bpmn:sequenceFlow id="n2" sourceRef="log" targetRef="notify_end" />
    </bpmn:subProcess>
    <bpmn:serviceTask id="flag" camunda:expression=" ${execution.setVariable('done', true)} " />
    <bpmn:serviceTask id="archive" camunda:type="external" camunda:topic="archive" />
    <bpmn:endEvent id="end" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="interest" />
    <bpmn:sequenceFlow id="f2" sourceRef="interest" targetRef="notify" />
    <bpmn:sequenceFlow id="f3" sourceRef="notify" targetRef="flag" />
    <bpmn:sequenceFlow id="f4" sourceRef="flag" targetRef="archive" />
    <bpmn:sequenceFlow id="f5" sourceRef="archive" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>
"""
TOPICS = ["CalculateInterest", "${loggerDelegate}", "${execution.setVariable('done', true)}", "archive"]


def engine_with(database_url: str, on: bool) -> Engine:
    engine = Engine(EngineSettings(database_url, java_as_external_tasks=on))
    engine.migrate()
    return engine


def work_through(engine: Engine, case: dict) -> tuple[dict, list[str]]:
    """Lock and complete each external task as a worker subscribed to its topic would; the topics met."""
    met = []
    while case["status"] == "running" and case["tasks"]:
        topic = case["tasks"][0]["topic"]
        met.append(topic)
        jobs = engine.lock_external_tasks("worker-1", [topic], 1, 60)
        assert [job["element_id"] for job in jobs] == [case["tasks"][0]["element_id"]]
        case = engine.complete_task(jobs[0]["id"], {"by": topic}, "worker-1", ANYONE, worker="worker-1")
    return case, met


def test_each_java_task_is_named_after_its_class_or_expression():
    assert opt_in_external_tasks(DIAGRAM) == [
        {"process": "loan", "element_id": "interest", "topic": "CalculateInterest"},
        {"process": "notify", "element_id": "log", "topic": "${loggerDelegate}"},
        {"process": "loan", "element_id": "flag", "topic": "${execution.setVariable('done', true)}"}]


def test_a_connector_or_a_task_naming_nothing_gets_no_topic():
    diagram = DIAGRAM.replace(b'camunda:class="org.example.loans.CalculateInterest"', b"").replace(
        b'camunda:expression=" ${execution.setVariable(\'done\', true)} "', b'camunda:type="mail"')
    assert [task["element_id"] for task in opt_in_external_tasks(diagram)] == ["log"]


def test_off_a_case_reaching_a_java_task_stops_with_an_incident(database_url):
    engine = engine_with(database_url, on=False)
    try:
        engine.deploy([("loan.bpmn", DIAGRAM)], "designer")
        case, _ = engine.start_case("loan", "alice", data={})
        assert case["status"] == "error" and case["incident"]["element_id"] == "interest"
        assert "has no implementation" in case["incident"]["message"]
    finally:
        engine.close()


def test_on_workers_complete_them_by_topic_and_the_case_completes(database_url):
    engine = engine_with(database_url, on=True)
    try:
        engine.deploy([("loan.bpmn", DIAGRAM)], "designer")
        case, _ = engine.start_case("loan", "alice", data={})
        assert case["tasks"][0]["element_id"] == "interest"
        assert engine.lock_external_tasks("worker-1", ["org.example.loans.CalculateInterest"], 1, 60) == []
        case, met = work_through(engine, case)
        assert met == TOPICS
        assert case["status"] == "completed" and case["data"]["by"] == "archive"
    finally:
        engine.close()


def test_versions_deployed_before_the_setting_was_turned_on_get_it_too(database_url):
    before = engine_with(database_url, on=False)
    try:
        before.deploy([("loan.bpmn", DIAGRAM)], "designer")
    finally:
        before.close()
    after = engine_with(database_url, on=True)
    try:
        case, _ = after.start_case("loan", "alice", data={})
        assert case["status"] == "running" and case["tasks"][0]["topic"] == "CalculateInterest"
    finally:
        after.close()


@pytest.mark.parametrize(("raw", "on"), [("true", True), ("YES", True), ("1", True), ("off", False), ("0", False)])
def test_the_environment_variable_turns_it_on(raw: str, on: bool):
    assert settings_from_env({"USM_JAVA_AS_EXTERNAL_TASKS": raw}).engine.java_as_external_tasks is on
    assert settings_from_env({}).engine.java_as_external_tasks is False


def test_a_value_that_is_not_yes_or_no_is_named():
    with pytest.raises(SettingsError, match="USM_JAVA_AS_EXTERNAL_TASKS must be true or false"):
        settings_from_env({"USM_JAVA_AS_EXTERNAL_TASKS": "maybe"})
