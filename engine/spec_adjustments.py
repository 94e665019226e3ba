"""Adjustments made to a parsed spec at deploy time, so diagrams drawn in Camunda Modeler run as drawn.

SpiffWorkflow evaluates timer texts as Python, so Camunda Modeler's `PT4H` (unquoted) would fail when
the timer starts; we quote plain ISO 8601 literals. A Camunda message throw without a payload
expression would fail when thrown; it sends no payload instead. JUEL (`${...}`), which Camunda users
may carry over, cannot be evaluated: it is reported at deploy time rather than failing a case later.
"""
from __future__ import annotations

import re

from lxml import etree
from SpiffWorkflow.bpmn.specs.bpmn_process_spec import BpmnProcessSpec
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.camunda.specs.event_definitions import MessageEventDefinition as CamundaMessage

BPMN = "{http://www.omg.org/spec/BPMN/20100524/MODEL}"

# PT4H, P1DT2H, R3/PT10M, 2026-01-01T10:00:00Z, R/2026-01-01T00:00:00Z/P1D …
_ISO_LITERAL = re.compile(r"^(R\d*/)?(P(?!$)[0-9YMWDTHS.,]*|\d{4}-\d{2}-\d{2}(T[0-9:.]+(Z|[+-]\d{2}:?\d{2})?)?)"
                          r"(/(P[0-9YMWDTHS.,]+|\d{4}-\d{2}-\d{2}(T[0-9:.]+(Z|[+-]\d{2}:?\d{2})?)?))?$")


def adjust_spec(spec: BpmnProcessSpec) -> list[tuple[str | None, str]]:
    """Adjust task specs in place; returns (element id, message) for what cannot be adjusted. The id is None
    for the task specs SpiffWorkflow adds that are no element of the diagram."""
    problems: list[tuple[str | None, str]] = []
    for task_spec in spec.task_specs.values():
        definition = getattr(task_spec, "event_definition", None)
        element_id = getattr(task_spec, "bpmn_id", None)
        if isinstance(definition, TimerEventDefinition):
            text = (definition.expression or "").strip()
            if text.startswith("${") or text.startswith("#{"):
                problems.append((element_id, f"the timer expression '{text}' is JUEL, which this engine does not "
                                             "evaluate: write a quoted ISO 8601 text such as \"PT4H\", or the name "
                                             "of a data field that holds one"))
            elif _ISO_LITERAL.match(text):
                definition.expression = repr(text)
        elif isinstance(definition, CamundaMessage) and definition.expression is None:
            definition.expression = "None"
        for condition, _target in getattr(task_spec, "cond_task_specs", None) or []:
            if isinstance(condition, str) and condition.strip().startswith(("${", "#{")):
                problems.append((element_id, f"the condition '{condition.strip()}' is JUEL, which this engine does "
                                             "not evaluate: write it as a Python expression, e.g. approved == True"))
    return problems


def flow_index(process_node: etree._Element) -> dict[str, dict[str, str]]:
    """{source id: {target id: sequence flow id}} for the flows drawn directly in a process or subprocess."""
    flows: dict[str, dict[str, str]] = {}
    for flow in process_node.iterchildren(f"{BPMN}sequenceFlow"):
        source, target, flow_id = flow.get("sourceRef"), flow.get("targetRef"), flow.get("id")
        if source and target and flow_id:
            flows.setdefault(source, {}).setdefault(target, flow_id)
    return flows

