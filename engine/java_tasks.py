"""Camunda 7 Java service tasks as external tasks: the opt-in EngineSettings.java_as_external_tasks
(USM_JAVA_AS_EXTERNAL_TASKS).

A service task that names Java to run (camunda:class, camunda:delegateExpression or camunda:expression)
has no implementation here: by default a case reaching it stops with an incident, and the deployment
warns of it. With the setting on, each such task is an external task on a topic named after what it
names, so a team can plug in a worker for it without editing the model: the class's simple name
(`org.example.CalculateInterest` → `CalculateInterest`), or the expression as written
(`${calculateInterestService}`). Connectors, Camunda 8 job types and service tasks that name nothing
are left as they are: they name no implementation a topic could be called after.

It is applied when a definition version is loaded, from its stored source, not at deploy: versions
deployed before the setting was turned on get it too, and the stored definition says what the designer
drew. The setting is the engine's, so every process of a deployment (servers and workers) needs the same
value, or a case could be an incident on one and wait for a worker on another.
"""
from __future__ import annotations

from lxml import etree
from sqlalchemy.engine import Connection

from . import store
from .blueprints import StoredDefinition
from .deploy_schema import BPMN_NS, CAMUNDA_NS
from .xml_safety import parse_untrusted

# What Camunda 7 runs, in the order its engine reads them (a task names one).
JAVA_ATTRIBUTES = ("class", "delegateExpression", "expression")
MAX_TOPIC_LENGTH = 255  # the tasks table's topic column; a longer name is left an incident
# Elements whose id names the SpiffWorkflow process a task inside them runs in.
_PROCESSES = {f"{{{BPMN_NS}}}{name}" for name in ("process", "subProcess", "transaction", "adHocSubProcess")}


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


def java_external_tasks(source: bytes) -> list[dict]:
    """{"process", "element_id", "topic"} of every Java service task of a BPMN file, in the form of the
    external tasks a deployment records (deploy_process.py); "process" is the id of the innermost
    process or subprocess around the task, the name SpiffWorkflow gives the process the task runs in."""
    found = []
    for element in parse_untrusted(source).getroot().iter(f"{{{BPMN_NS}}}serviceTask"):
        topic = topic_of(element)
        holder = next((a for a in element.iterancestors() if a.tag in _PROCESSES), None)
        if topic and holder is not None and holder.get("id") and element.get("id"):
            found.append({"process": holder.get("id"), "element_id": element.get("id"), "topic": topic})
    return found


def with_java_topics(conn: Connection, stored: StoredDefinition) -> StoredDefinition:
    """The stored definition with its Java service tasks added to its external tasks (those the model
    made external itself keep their topic)."""
    row = store.find_definition(conn, stored.key, stored.version)
    source = store.definition_file(conn, row.id, row.bpmn_file) if row is not None else None
    if source is None:
        return stored
    external = list(stored.meta.get("external_tasks", []))
    known = {(task["process"], task["element_id"]) for task in external}
    external += [task for task in java_external_tasks(source) if (task["process"], task["element_id"]) not in known]
    return StoredDefinition(stored.key, stored.version, stored.spec, stored.embedded,
                            {**stored.meta, "external_tasks": external}, stored.hash)
