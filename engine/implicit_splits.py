"""Several sequence flows out of an activity or event, run as BPMN 2.0 says they run. Part of deployment
(see deployment.py).

BPMN 2.0 (13.2.1) splits implicitly where a sequence flow leaves an activity or an intermediate or
boundary event: every unconditional outgoing flow gets a token, and every conditional one whose
condition holds (the activity's default flow only when none does). Modelers draw it (the MIWG exports);
SpiffWorkflow refuses several outgoing flows on these nodes and ignores a condition on a flow out of
one. So before it parses the file, such a node gets a gateway of its own in place, between it and its
flows: a parallel gateway when no flow has a condition, an inclusive one otherwise (unconditional flows
get the condition `True`, the node's default flow becomes the gateway's). Where the branches meet
again without a gateway (an implicit merge), each token passes on its own, as BPMN says: what follows
runs once per token. The flows keep their ids; the gateway's id ends in `_implicit_split`. A conditional
flow whose condition has no text is taken as if unconditional, with a warning (modelers export the
marker of a conditional flow without its expression). The stored source keeps the file as uploaded.

With conditions, a node none of whose flows can be taken is the case's incident when reached, as an
inclusive gateway's is (BPMN leaves the token nowhere to go).
"""
from __future__ import annotations

import re

from lxml import etree

from .data_associations import SUBPROCESSES
from .deploy_problems import DeployProblem, describe
from .deploy_schema import BPMN_NS

_B = f"{{{BPMN_NS}}}"
_SUFFIX = "_implicit_split"  # of the id of a gateway this module adds, after the id of the node it splits
_SPLIT_ID = re.compile(rf"(.+){_SUFFIX}(?:_\d+)?")
_SPLITTING = {f"{_B}{name}" for name in (
    "task", "userTask", "manualTask", "scriptTask", "serviceTask", "sendTask", "receiveTask", "businessRuleTask",
    "callActivity", "subProcess", "transaction", "adHocSubProcess", "intermediateCatchEvent",
    "intermediateThrowEvent", "boundaryEvent")}


def split_explicitly(filename: str, tree: etree._ElementTree) -> list[DeployProblem]:
    """Put a gateway, in place, after each activity or event of an executable process that splits
    implicitly or has a conditional outgoing flow; returns a warning for each empty condition."""
    root = tree.getroot()
    taken = {str(element.get("id")) for element in root.iter() if isinstance(element.tag, str) and element.get("id")}
    warnings: list[DeployProblem] = []
    for process in root.iterchildren(f"{_B}process"):
        if process.get("isExecutable", "true") != "true":
            continue
        for container in [process, *process.iter(*SUBPROCESSES)]:
            flows = list(container.iterchildren(f"{_B}sequenceFlow"))
            for node in list(container):
                if node.tag not in _SPLITTING:
                    continue
                outgoing = [flow for flow in flows if flow.get("sourceRef") == node.get("id")]
                conditional = [flow for flow in outgoing if flow.find(f"{_B}conditionExpression") is not None]
                if len(outgoing) > 1 or conditional:
                    warnings.extend(_split(filename, container, node, outgoing, conditional, taken))
    return warnings


def split_of(element_id: str) -> str | None:
    """The id of the activity or event whose implicit split the gateway `element_id` is; None when it is
    none (an id a designer gave): what a message about the gateway points the designer at."""
    found = _SPLIT_ID.fullmatch(element_id)
    return found.group(1) if found else None


def _split(filename: str, container: etree._Element, node: etree._Element, outgoing: list[etree._Element],
           conditional: list[etree._Element], taken: set[str]) -> list[DeployProblem]:
    node_id = str(node.get("id"))
    gateway_id, number = f"{node_id}{_SUFFIX}", 1
    while gateway_id in taken:
        number += 1
        gateway_id = f"{node_id}{_SUFFIX}_{number}"
    taken.add(gateway_id)
    kind = "inclusiveGateway" if conditional else "parallelGateway"
    gateway = etree.Element(f"{_B}{kind}", id=gateway_id)
    default = node.get("default")
    if conditional and default in {flow.get("id") for flow in outgoing}:
        gateway.set("default", str(default))
    container.insert(0, gateway)  # inserted first: the parser does not mind the order
    link_id = f"{gateway_id}_flow"
    taken.add(link_id)
    container.insert(1, etree.Element(f"{_B}sequenceFlow", id=link_id, sourceRef=node_id, targetRef=gateway_id))
    warnings = []
    for flow in outgoing:
        flow.set("sourceRef", gateway_id)
        if not conditional or flow.get("id") == gateway.get("default"):
            continue
        condition = flow.find(f"{_B}conditionExpression")
        if condition is None:
            etree.SubElement(flow, f"{_B}conditionExpression").text = "True"  # unconditional: always taken
        elif not (condition.text or "").strip():
            condition.text = "True"
            warnings.append(DeployProblem(
                filename, f"{describe(flow)} leaves {describe(node)} as a conditional flow whose condition is empty: "
                          "it is taken as if it had no condition (always); write its condition, or draw it as a "
                          "plain sequence flow", flow.sourceline, flow.get("id")))
    return warnings
