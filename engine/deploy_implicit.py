"""Processes and subprocesses drawn without a start event, run as BPMN 2.0 says they run. Part of deployment
(see deployment.py).

BPMN 2.0 (10.5.2) makes the start event optional: without one, every flow node that no sequence flow
leads to starts when its process or subprocess starts, and a subprocess with nothing in it completes at
once. Modelers draw both: bpmn-moddle's example diagrams, processes that begin with a receive task, and
collapsed subprocesses exported without their inside (the MIWG exports). SpiffWorkflow only starts at
start events (it refuses the rest), so before it parses the file, each such container gets an implicit
start event in place, leading to those nodes (through a parallel split when there are several), and an
empty subprocess gets a start event leading to an end event. A subprocess without an end event
completes when nothing in it is left to do, as SpiffWorkflow finishes any (sub)process; only its parser
insists on an end event, so each node without an outgoing flow gets one. The stored source keeps the
file as uploaded; the warning names the nodes that start.

A link throw event without an incoming flow is such a node too (it then jumps to its catch event); a
link catch event is not, since its link leads to it. Processes with nothing to run at all are
deploy_empty.py's.

What stays refused: a container in which every node has an incoming flow (nothing says where it
starts), an event subprocess without its start event, and a subprocess with several start events
(SpiffWorkflow would not know which one runs).
"""
from __future__ import annotations

from lxml import etree

from .deploy_problems import DeployProblem, describe, label
from .deploy_schema import BPMN_NS

_B = f"{{{BPMN_NS}}}"
# The flow nodes a token can be in (boundary events hang on an activity, and start with it).
FLOW_NODES = {f"{_B}{name}" for name in (
    "task", "userTask", "manualTask", "scriptTask", "serviceTask", "sendTask", "receiveTask", "businessRuleTask",
    "callActivity", "subProcess", "transaction", "adHocSubProcess", "exclusiveGateway", "parallelGateway",
    "inclusiveGateway", "eventBasedGateway", "complexGateway", "intermediateThrowEvent", "intermediateCatchEvent",
    "endEvent")}
_SUBPROCESSES = (f"{_B}subProcess", f"{_B}transaction")


def start_implicitly(filename: str, tree: etree._ElementTree) -> list[DeployProblem]:
    """Give each executable process and each of its subprocesses that has no start event an implicit one,
    in place, where BPMN 2.0 says where it starts, and each subprocess without an end event implicit ones;
    returns a warning for each."""
    root = tree.getroot()
    taken = {str(element.get("id")) for element in root.iter() if isinstance(element.tag, str) and element.get("id")}
    warnings: list[DeployProblem | None] = []
    for process in root.iterchildren(f"{_B}process"):
        if process.get("isExecutable", "true") != "true":
            continue
        for container in [process, *process.iter(*_SUBPROCESSES)]:
            if container.get("triggeredByEvent") == "true":
                continue
            if container.find(f"{_B}startEvent") is None:
                warnings.append(_implicit_start(filename, container, taken))
            if container.tag != f"{_B}process" and container.find(f"{_B}endEvent") is None:
                warnings.append(_implicit_end(filename, container, taken))
    return [warning for warning in warnings if warning is not None]


def _implicit_end(filename: str, container: etree._Element, taken: set[str]) -> DeployProblem | None:
    """A subprocess without an end event ends, as BPMN 2.0 says, when nothing in it is left to do.
    SpiffWorkflow finishes a subprocess that way too, but refuses one without an end event: each node
    without an outgoing flow gets one of its own."""
    sources = {flow.get("sourceRef") for flow in container.iterchildren(f"{_B}sequenceFlow")}
    sinks = [child for child in container if child.tag in FLOW_NODES and _can_start(child)
             and child.get("id") not in sources]
    if not sinks:
        return None  # every node leads on: left to SpiffWorkflow's refusal
    for sink in sinks:
        connect(container, sink, add_element(container, "endEvent", taken, sink.get("id")), taken)
    return DeployProblem(filename, f"{describe(container)} has no end event: as BPMN 2.0 says, it completes when "
                                   "nothing in it is left to do; add an end event to say where it ends",
                         container.sourceline, container.get("id"))


def _implicit_start(filename: str, container: etree._Element, taken: set[str]) -> DeployProblem | None:
    nodes = [child for child in container if child.tag in FLOW_NODES and _can_start(child)]
    targets = {flow.get("targetRef") for flow in container.iterchildren(f"{_B}sequenceFlow")}
    sources = [node for node in nodes if node.get("id") not in targets]
    empty = not any(child.tag in FLOW_NODES for child in container)
    if container.tag == f"{_B}process" and empty:
        return None  # nothing to run: deploy_empty.py's
    if not sources and not empty:
        return None  # every node is entered by a flow: nothing says where it starts
    start = add_element(container, "startEvent", taken, container.get("id"))
    if empty:
        connect(container, start, add_element(container, "endEvent", taken, container.get("id")), taken)
        return DeployProblem(filename, f"{describe(container)} is empty (drawn collapsed, without its inside), "
                                       "so it completes as soon as it starts: model its inside to have it do "
                                       "something", container.sourceline, container.get("id"))
    first = start
    if len(sources) > 1:
        first = add_element(container, "parallelGateway", taken, container.get("id"))
        connect(container, start, first, taken)
    for source in sources:
        connect(container, first, source, taken)
    names = ", ".join(label(source) for source in sources)
    return DeployProblem(filename, f"{describe(container)} has no start event: as BPMN 2.0 says, what no sequence "
                                   f"flow leads to starts when it starts ({names}), at once"
                                   f"{' and side by side' if len(sources) > 1 else ''}; add a start event to "
                                   "say where it starts", container.sourceline, container.get("id"))


def _can_start(node: etree._Element) -> bool:
    """Whether a node without incoming flows starts with its container: not an event subprocess, a
    compensation handler, or a link catch event (those are started by an event, a compensation or a link)."""
    if node.get("triggeredByEvent") == "true" or node.get("isForCompensation") == "true":
        return False
    return node.tag != f"{_B}intermediateCatchEvent" or node.find(f"{_B}linkEventDefinition") is None


def add_element(container: etree._Element, tag: str, taken: set[str], owner: str | None) -> etree._Element:
    """A new element of `container`, with an id no element of the file has."""
    base = f"{owner or 'process'}_implicit_{tag}"
    element_id, number = base, 1
    while element_id in taken:
        number += 1
        element_id = f"{base}_{number}"
    taken.add(element_id)
    # Inserted first: the parser does not mind the order, and the designer's elements keep their place.
    element = etree.Element(f"{_B}{tag}", id=element_id)
    container.insert(0, element)
    return element


def connect(container: etree._Element, source: etree._Element, target: etree._Element, taken: set[str]) -> None:
    flow = add_element(container, "sequenceFlow", taken, source.get("id"))
    flow.set("sourceRef", source.get("id") or "")
    flow.set("targetRef", target.get("id") or "")
