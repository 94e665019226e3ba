"""Service tasks whose model says a worker does their work: external tasks on a topic the model names.

- A Camunda 8 service task (`zeebe:taskDefinition type="…"`) is by nature a job that a worker of that
  type completes. It is an external task on that type as topic: exactly what is drawn, so no warning.
- A SpiffWorkflow service task (`spiffworkflow:serviceTaskOperator id="…"`) is a call through one of
  spiff-arena's connectors, which this engine does not have. It is an external task on a topic named
  after the operator id (`http/GetRequest`), so a worker can make that call; the deployment warns and
  names the topic. Its parameters whose values are literals go with the job (`parameters`), the others
  (expressions over the case data) are the worker's to read from the case data it gets.

- A Camunda 7 connector (`camunda:connector` with `camunda:connectorId`, e.g. `http-connector`) is, like
  the SpiffWorkflow call, a call this engine cannot make: an external task on the connector id, with a
  warning naming it (its camunda:inputOutput is not applied, as everywhere).

A type that is an expression (`=…` in Camunda 8) or an empty or too long name gives no topic: the task
keeps no implementation, and a case reaching it stops with the model's incident, as before.
"""
from __future__ import annotations

import ast
import json
from typing import Any

from lxml import etree

from .deploy_schema import BPMN_NS, CAMUNDA_NS, SPIFF_NS

ZEEBE_NS = "http://camunda.org/schema/zeebe/1.0"
MAX_TOPIC_LENGTH = 255  # the tasks table's topic column


def worker_topic(element: etree._Element) -> tuple[str, str] | None:
    """(topic, "zeebe" | "spiff" | "connector") of a service task a worker does; None for any other element."""
    extensions = element.find(f"{{{BPMN_NS}}}extensionElements")
    if extensions is None:
        return None
    job = extensions.find(f"{{{ZEEBE_NS}}}taskDefinition")
    operator = extensions.find(f"{{{SPIFF_NS}}}serviceTaskOperator")
    connector = extensions.find(f"{{{CAMUNDA_NS}}}connector/{{{CAMUNDA_NS}}}connectorId")
    for found, kind, attribute in ((job, "zeebe", "type"), (operator, "spiff", "id"), (connector, "connector", None)):
        value = (found.text if attribute is None else found.get(attribute)) if found is not None else None
        name = (value or "").strip()
        if name and not name.startswith("=") and len(name) <= MAX_TOPIC_LENGTH:
            return name, kind
    return None


def literal_parameters(element: etree._Element) -> dict[str, Any]:
    """The parameters of a SpiffWorkflow service task operator whose values are Python literals."""
    found: dict[str, Any] = {}
    for parameter in element.iterfind(f"{{{BPMN_NS}}}extensionElements/{{{SPIFF_NS}}}serviceTaskOperator/"
                                      f"{{{SPIFF_NS}}}parameters/{{{SPIFF_NS}}}parameter"):
        name, value = parameter.get("id"), parameter.get("value")
        if not name or value is None:
            continue
        try:
            literal = ast.literal_eval(value.strip())
            json.dumps(literal)  # a set, bytes or a tuple key is no value a job can carry
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue  # an expression over the case data: not a value of the model's own
        found[name] = literal
    return found


def connector_warning(element: etree._Element, topic: str, kind: str) -> str:
    """The deploy warning of a connector call made an external task on `topic`."""
    what = ("SpiffWorkflow connector operator" if kind == "spiff" else "Camunda 7 connector")
    extra = " (its literal parameters go with the job)" if kind == "spiff" else ""
    return (f"service task '{element.get('id')}' calls {what} '{topic}', which this engine does not have: it is "
            f"an external task on the topic '{topic}', for a worker that makes the call{extra}")
