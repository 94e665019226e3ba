"""The opt-in EngineSettings.unimplemented_as_external_tasks (USM_UNIMPLEMENTED_AS_EXTERNAL_TASKS): a service
task that names nothing this engine runs (no implementation, `##WebService`, a vendor's `implementation`) and a
business rule task that names no decision become external tasks on a topic equal to the element's id, so a
worker can be plugged in without editing the model. Off (the default), a case reaching one stops with an
incident. It is independent of USM_JAVA_AS_EXTERNAL_TASKS (test_conformance_java_as_external.py)."""
from __future__ import annotations

import pytest
from lxml import etree

from usm_engine.api.settings import SettingsError, settings_from_env
from usm_engine.engine.java_tasks import opt_in_external_tasks, unimplemented_topic
from usm_engine.engine.service import Engine, EngineSettings
from tests.conftest import FIXTURES

ANYONE = lambda lane: True  # noqa: E731 - authorization is the API's concern, not these tests'
ORDER = ("order.bpmn", (FIXTURES / "unimplemented" / "order.bpmn").read_bytes())
CHARGE = ("java.bpmn", (FIXTURES / "unimplemented" / "java.bpmn").read_bytes())
# What a worker of each topic answers; Task_Total multiplies amount by rate.
ANSWERS = {"Task_Enrich": {"amount": 10}, "Task_Rate": {"rate": 3}, "Task_Notify": {"notified": True},
           "Task_Soap": {"invoice": "INV-1"}, "shipping": {"shipped": True}}
NAMESPACES = ('xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
              'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" '
              'xmlns:zeebe="http://camunda.org/schema/zeebe/1.0" '
              'xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"')


def engine_with(database_url: str, unimplemented: bool, java: bool = False) -> Engine:
    engine = Engine(EngineSettings(database_url, java_as_external_tasks=java,
                                   unimplemented_as_external_tasks=unimplemented))
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
        case = engine.complete_task(jobs[0]["id"], ANSWERS.get(topic, {}), "worker-1", ANYONE, worker="worker-1")
    return case, met


def element(xml: str) -> etree._Element:
    return etree.fromstring(f"<bpmn:definitions {NAMESPACES}>{xml}</bpmn:definitions>")[0]


def test_each_task_naming_nothing_is_listed_on_its_id_and_the_model_external_one_is_not():
    assert opt_in_external_tasks(ORDER[1], java=False, unimplemented=True) == [
        {"process": "order", "element_id": "Task_Enrich", "topic": "Task_Enrich"},
        {"process": "order", "element_id": "Task_Rate", "topic": "Task_Rate"},
        {"process": "Sub_Notify", "element_id": "Task_Notify", "topic": "Task_Notify"},
        {"process": "order", "element_id": "Task_Soap", "topic": "Task_Soap"}]
    assert opt_in_external_tasks(ORDER[1]) == []  # the Java kind alone, as before


def test_the_two_kinds_are_listed_apart():
    assert [t["topic"] for t in opt_in_external_tasks(CHARGE[1], java=False, unimplemented=True)] == ["Task_Receipt"]
    assert [t["topic"] for t in opt_in_external_tasks(CHARGE[1], java=True, unimplemented=False)] == ["Charge"]
    assert [t["topic"] for t in opt_in_external_tasks(CHARGE[1], java=True, unimplemented=True)] == [
        "Charge", "Task_Receipt"]


def test_a_process_that_is_not_executable_lists_nothing():
    source = ORDER[1].replace(b'isExecutable="true"', b'isExecutable="false"')
    assert opt_in_external_tasks(source, java=True, unimplemented=True) == []


@pytest.mark.parametrize(("xml", "topic"), [
    ('<bpmn:serviceTask id="a" />', "a"),
    ('<bpmn:serviceTask id="a" camunda:type="mail" />', "a"),
    ('<bpmn:serviceTask id="a"><bpmn:extensionElements><zeebe:taskDefinition type="=kind" />'
     '</bpmn:extensionElements></bpmn:serviceTask>', "a"),  # a job type that is an expression names no topic
    ('<bpmn:serviceTask id="a"><bpmn:extensionElements><zeebe:taskDefinition type="mail" />'
     '</bpmn:extensionElements></bpmn:serviceTask>', None),  # a Camunda 8 job: a worker's already
    ('<bpmn:serviceTask id="a" camunda:type="external" camunda:topic="t" />', None),
    ('<bpmn:serviceTask id="a" camunda:class="org.example.Charge" />', None),
    (f'<bpmn:serviceTask id="a" camunda:class="org.example.{"x" * 300}" />', None),  # Java, if unnamable
    ('<bpmn:businessRuleTask id="a" />', "a"),
    ('<bpmn:businessRuleTask id="a" camunda:decisionRef="risk" />', None),
    ('<bpmn:businessRuleTask id="a"><bpmn:extensionElements><spiffworkflow:calledDecisionId>risk'
     '</spiffworkflow:calledDecisionId></bpmn:extensionElements></bpmn:businessRuleTask>', None),
    ('<bpmn:userTask id="a" />', None),
    (f'<bpmn:serviceTask id="{"a" * 256}" />', None),
])
def test_which_tasks_name_nothing(xml: str, topic: str | None):
    assert unimplemented_topic(element(f'<bpmn:process id="p">{xml}</bpmn:process>')[0]) == topic


def test_the_deploy_warnings_name_the_topic_each_setting_gives(database_url):
    engine = engine_with(database_url, unimplemented=False)
    try:
        warned = {w["element_id"]: w["message"] for item in engine.deploy([ORDER, CHARGE], "designer")[1]
                  for w in item["warnings"]}
    finally:
        engine.close()
    for element_id in ("Task_Enrich", "Task_Rate", "Task_Notify", "Task_Soap", "Task_Receipt"):
        assert warned[element_id].endswith(
            f"; a server run with USM_UNIMPLEMENTED_AS_EXTERNAL_TASKS makes it an external task on the topic "
            f"'{element_id}' instead"), warned[element_id]
    assert warned["Task_Rate"].startswith("business rule task 'Rate customer' (Task_Rate) names no decision")
    assert warned["Task_Charge"].endswith("USM_JAVA_AS_EXTERNAL_TASKS makes it an external task on the topic "
                                          "'Charge' instead")
    assert "Task_Ship" not in warned


def test_off_a_case_reaching_a_task_naming_nothing_stops_with_an_incident(database_url):
    engine = engine_with(database_url, unimplemented=False)
    try:
        engine.deploy([ORDER], "designer")
        case, _ = engine.start_case("order", "alice", data={})
        assert case["status"] == "error" and case["incident"]["element_id"] == "Task_Enrich"
        assert "has no implementation" in case["incident"]["message"]
    finally:
        engine.close()


def test_on_workers_complete_them_by_id_and_the_case_completes_with_their_data(database_url):
    engine = engine_with(database_url, unimplemented=True)
    try:
        engine.deploy([ORDER], "designer")
        case, _ = engine.start_case("order", "alice", data={})
        assert case["status"] == "running"
        assert [(t["element_id"], t["topic"]) for t in case["tasks"]] == [("Task_Enrich", "Task_Enrich")]
        case, met = work_through(engine, case)
        # The business rule task without a decision waits on its id too; the model's own topic is kept.
        assert met == ["Task_Enrich", "Task_Rate", "Task_Notify", "Task_Soap", "shipping"]
        assert case["status"] == "completed"
        assert {key: case["data"][key] for key in ("amount", "rate", "invoice", "shipped", "total")} == {
            "amount": 10, "rate": 3, "invoice": "INV-1", "shipped": True, "total": 30}
    finally:
        engine.close()


def test_a_business_rule_task_without_a_decision_waits_for_a_worker(database_url):
    engine = engine_with(database_url, unimplemented=True)
    try:
        engine.deploy([ORDER], "designer")
        case, _ = engine.start_case("order", "alice", data={})
        [job] = engine.lock_external_tasks("worker-1", ["Task_Enrich"], 1, 60)
        case = engine.complete_task(job["id"], {"amount": 5}, "worker-1", ANYONE, worker="worker-1")
        assert case["status"] == "running"
        assert [(t["element_id"], t["topic"]) for t in case["tasks"]] == [("Task_Rate", "Task_Rate")]
        [job] = engine.lock_external_tasks("worker-1", ["Task_Rate"], 1, 60)
        assert job["element_id"] == "Task_Rate" and job["data"]["amount"] == 5
    finally:
        engine.close()


def test_a_java_task_stays_an_incident_with_only_this_setting_on(database_url):
    engine = engine_with(database_url, unimplemented=True)
    try:
        engine.deploy([CHARGE], "designer")
        case, _ = engine.start_case("charge", "alice", data={})
        assert case["status"] == "error" and case["incident"]["element_id"] == "Task_Charge"
    finally:
        engine.close()


def test_with_only_the_java_setting_on_a_task_naming_nothing_stays_an_incident(database_url):
    engine = engine_with(database_url, unimplemented=False, java=True)
    try:
        engine.deploy([CHARGE], "designer")
        case, met = work_through(engine, engine.start_case("charge", "alice", data={})[0])
        assert met == ["Charge"]
        assert case["status"] == "error" and case["incident"]["element_id"] == "Task_Receipt"
    finally:
        engine.close()


def test_with_both_on_each_task_gets_its_own_kind_of_topic(database_url):
    engine = engine_with(database_url, unimplemented=True, java=True)
    try:
        engine.deploy([CHARGE], "designer")
        case, met = work_through(engine, engine.start_case("charge", "alice", data={})[0])
        assert met == ["Charge", "Task_Receipt"] and case["status"] == "completed"
    finally:
        engine.close()


def test_versions_deployed_before_the_setting_was_turned_on_get_it_too(database_url):
    before = engine_with(database_url, unimplemented=False)
    try:
        before.deploy([ORDER], "designer")
    finally:
        before.close()
    after = engine_with(database_url, unimplemented=True)
    try:
        case, _ = after.start_case("order", "alice", data={})
        assert case["status"] == "running" and case["tasks"][0]["topic"] == "Task_Enrich"
    finally:
        after.close()


@pytest.mark.parametrize(("raw", "on"), [("true", True), ("YES", True), ("1", True), ("off", False), ("0", False)])
def test_the_environment_variable_turns_it_on(raw: str, on: bool):
    engine = settings_from_env({"USM_UNIMPLEMENTED_AS_EXTERNAL_TASKS": raw}).engine
    assert engine.unimplemented_as_external_tasks is on
    assert engine.java_as_external_tasks is False  # the two settings are independent
    assert settings_from_env({}).engine.unimplemented_as_external_tasks is False


def test_a_value_that_is_not_yes_or_no_is_named():
    with pytest.raises(SettingsError, match="USM_UNIMPLEMENTED_AS_EXTERNAL_TASKS must be true or false"):
        settings_from_env({"USM_UNIMPLEMENTED_AS_EXTERNAL_TASKS": "maybe"})
