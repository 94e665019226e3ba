"""Service tasks as external tasks by the server's choice: two opt-ins, EngineSettings.java_as_external_tasks
(USM_JAVA_AS_EXTERNAL_TASKS) and EngineSettings.unimplemented_as_external_tasks
(USM_UNIMPLEMENTED_AS_EXTERNAL_TASKS), so a team can plug in a worker without editing the model.

- A service task that names Java to run (camunda:class, camunda:delegateExpression or camunda:expression)
  has no implementation here: by default a case reaching it stops with an incident, and the deployment
  warns of it. With the Java setting on, each such task is an external task on a topic named after what it
  names: the class's simple name (`org.example.CalculateInterest` → `CalculateInterest`), or the
  expression as written (`${calculateInterestService}`).
- A service task that names nothing at all (no implementation attribute, `implementation="##WebService"`
  or a vendor's `implementation="kp:http"`), and a business rule task that names no decision (which the
  engine runs as such a service task, spiff_setup.py), have nothing to run either. With the unimplemented
  setting on, each is an external task on a topic equal to its id as written in the file: the only name
  the model gives it that is unique, stable across versions and visible to the designer, where the
  task's name may be missing, repeated or reworded.

Connectors and Camunda 8 job types are workers' already (worker_tasks.py), and a task the model made
external keeps its own topic. The two settings are independent: a Java task is only ever named after its
Java, so turning on the unimplemented setting alone leaves it an incident.

It is applied when a definition version is loaded, from its stored source, not at deploy: versions
deployed before a setting was turned on get it too, and the stored definition says what the designer
drew. The settings are the engine's, so every process of a deployment (servers and workers) needs the same
values, or a case could be an incident on one and wait for a worker on another.
"""
from __future__ import annotations

from lxml import etree
from sqlalchemy.engine import Connection

from . import store
from .blueprints import StoredDefinition
from .deploy_schema import BPMN_NS, CAMUNDA_NS, SPIFF_NS
from .worker_tasks import worker_topic
from .xml_safety import parse_untrusted

# What Camunda 7 runs, in the order its engine reads them (a task names one).
JAVA_ATTRIBUTES = ("class", "delegateExpression", "expression")
MAX_TOPIC_LENGTH = 255  # the tasks table's topic column; a longer name is left an incident
# Elements whose id names the SpiffWorkflow process a task inside them runs in.
_PROCESSES = {f"{{{BPMN_NS}}}{name}" for name in ("process", "subProcess", "transaction", "adHocSubProcess")}
_SERVICE_TASK = f"{{{BPMN_NS}}}serviceTask"
_BUSINESS_RULE_TASK = f"{{{BPMN_NS}}}businessRuleTask"


def topic_of(element: etree._Element) -> str | None:
    """The topic a Java service task becomes an external task on; None for any other element."""
    if element.get(f"{{{CAMUNDA_NS}}}type"):
        return None  # external already (or a Camunda 7 built-in type such as mail): not Java
    for attribute in JAVA_ATTRIBUTES:
        value = (element.get(f"{{{CAMUNDA_NS}}}{attribute}") or "").strip()
        if value:
            topic = value.rsplit(".", 1)[-1].strip() if attribute == "class" else value
            return topic if 0 < len(topic) <= MAX_TOPIC_LENGTH else None
    return None


def unimplemented_topic(element: etree._Element) -> str | None:
    """The topic (its id) a service task that names nothing this engine runs, or a business rule task
    that names no decision, becomes an external task on; None for any other element."""
    if element.tag not in (_SERVICE_TASK, _BUSINESS_RULE_TASK) or element.get(f"{{{CAMUNDA_NS}}}type") == "external":
        return None
    # Any Java named, even one too long for a topic, is the Java setting's to decide: the two stay independent.
    if worker_topic(element) is not None or any(element.get(f"{{{CAMUNDA_NS}}}{a}") for a in JAVA_ATTRIBUTES):
        return None
    if element.tag == _BUSINESS_RULE_TASK and _names_decision(element):
        return None
    element_id = element.get("id") or ""
    return element_id if 0 < len(element_id) <= MAX_TOPIC_LENGTH else None


def _names_decision(element: etree._Element) -> bool:
    """camunda:decisionRef, or spiffworkflow:calledDecisionId, which the deployment gives the parser as that
    (deploy_files.py) while the stored source read here still has it as written."""
    if (element.get(f"{{{CAMUNDA_NS}}}decisionRef") or "").strip():
        return True
    called = element.find(f"{{{BPMN_NS}}}extensionElements/{{{SPIFF_NS}}}calledDecisionId")
    return called is not None and bool((called.text or "").strip())


def opt_in_external_tasks(source: bytes, *, java: bool = True, unimplemented: bool = False) -> list[dict]:
    """{"process", "element_id", "topic"} of every Java service task (`java`) and every task that names
    nothing to run (`unimplemented`) of a BPMN file's executable processes, in the form of the external tasks
    a deployment records (deploy_process.py); "process" is the id of the innermost process or subprocess
    around the task, the name SpiffWorkflow gives the process the task runs in."""
    found = []
    for element in parse_untrusted(source).getroot().iter(_SERVICE_TASK, _BUSINESS_RULE_TASK):
        # The kinds never overlap (unimplemented_topic is None for any task naming Java), so the order is moot.
        topic = topic_of(element) if java and element.tag == _SERVICE_TASK else None
        topic = topic or (unimplemented_topic(element) if unimplemented else None)
        holders = [a for a in element.iterancestors() if a.tag in _PROCESSES]
        # SpiffWorkflow's ProcessParser takes a process without isExecutable to be executable.
        executable = bool(holders) and holders[-1].get("isExecutable", "true") == "true"
        if topic and executable and holders[0].get("id") and element.get("id"):
            found.append({"process": holders[0].get("id"), "element_id": element.get("id"), "topic": topic})
    return found


def with_opt_in_topics(conn: Connection, stored: StoredDefinition, *, java: bool = True,
                     unimplemented: bool = False) -> StoredDefinition:
    """The stored definition with its Java service tasks (`java`) and its tasks that name nothing to run
    (`unimplemented`) added to its external tasks (those the model made external itself keep their topic)."""
    row = store.find_definition(conn, stored.key, stored.version)
    source = store.definition_file(conn, row.id, row.bpmn_file) if row is not None else None
    if source is None:
        return stored
    external = list(stored.meta.get("external_tasks", []))
    known = {(task["process"], task["element_id"]) for task in external}
    external += [task for task in opt_in_external_tasks(source, java=java, unimplemented=unimplemented)
                 if (task["process"], task["element_id"]) not in known]
    return StoredDefinition(stored.key, stored.version, stored.spec, stored.embedded,
                            {**stored.meta, "external_tasks": external}, stored.hash)
