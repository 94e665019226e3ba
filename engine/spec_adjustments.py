"""Adjustments made at deploy time, so diagrams drawn in Camunda Modeler run as drawn.

SpiffWorkflow evaluates conditions, timer texts and loop expressions as Python. Camunda 7 writes them in
JUEL (`${approved}`), Camunda 8 in FEEL (`=approved`): before the parser reads a file, each such text is
translated into Python (expression_translation.py), or reported at deploy time with its file, line and
element rather than failing a case later. On the parsed spec, Camunda Modeler's `PT4H` (unquoted) would
fail when the timer starts; we quote plain ISO 8601 literals. A Camunda message throw (event or send
task) without a payload expression (camunda:expression, translated like the others) would fail when
thrown; it sends its name only, no payload (deploy_warnings.py says so for send tasks). A multi-instance
activity in BPMN's standard form gets the collection and items standard_loops.py noted.
"""
from __future__ import annotations

import re

from lxml import etree
from SpiffWorkflow.bpmn.specs.bpmn_process_spec import BpmnProcessSpec
from SpiffWorkflow.bpmn.specs.defaults import ExclusiveGateway
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import MultiInstanceTask
from SpiffWorkflow.camunda.specs.event_definitions import MessageEventDefinition as CamundaMessage

from .deploy_problems import DeployProblem, describe, label, nearest_id
from .expression_translation import Untranslatable, translate
from .multi_instance import as_bounded
from .spiff_messages import with_message_variables
from .spiff_scripts import keep_task_scripts
from .standard_loops import apply_standard_loop

BPMN = "{http://www.omg.org/spec/BPMN/20100524/MODEL}"

# PT4H, P1DT2H, R3/PT10M, 2026-01-01T10:00:00Z, R/2026-01-01T00:00:00Z/P1D …
_ISO_LITERAL = re.compile(r"^(R\d*/)?(P(?!$)[0-9YMWDTHS.,]*|\d{4}-\d{2}-\d{2}(T[0-9:.]+(Z|[+-]\d{2}:?\d{2})?)?)"
                          r"(/(P[0-9YMWDTHS.,]+|\d{4}-\d{2}-\d{2}(T[0-9:.]+(Z|[+-]\d{2}:?\d{2})?)?))?$")


def adjust_spec(spec: BpmnProcessSpec, process_node: etree._Element) -> None:
    """Adjust task specs in place; `process_node` is the (sub)process element the spec was parsed from."""
    # Every loop found under the process node has a parent (its activity): the check only narrows the type.
    loops = {activity.get("id"): loop for loop in process_node.iter(f"{BPMN}multiInstanceLoopCharacteristics")
             if (activity := loop.getparent()) is not None}
    for task_spec in spec.task_specs.values():
        if isinstance(task_spec, ExclusiveGateway):
            _in_file_order(task_spec, process_node)
        if isinstance(task_spec, MultiInstanceTask):
            as_bounded(task_spec)
            if task_spec.name in loops:
                apply_standard_loop(task_spec, loops[task_spec.name])
        event = getattr(task_spec, "event_definition", None)
        # A throw of several messages at once holds one definition per message.
        for definition in [event, *(getattr(event, "event_definitions", None) or [])]:
            if isinstance(definition, TimerEventDefinition):
                text = (definition.expression or "").strip()
                if _ISO_LITERAL.match(text):
                    definition.expression = repr(text)
            elif isinstance(definition, CamundaMessage) and definition.expression is None:
                definition.expression = "None"
    with_message_variables(spec, process_node)
    keep_task_scripts(spec, process_node)


def _in_file_order(gateway: ExclusiveGateway, process_node: etree._Element) -> None:
    """Evaluate an exclusive gateway's conditions in the order its flows are written in the file, as Camunda 7
    does (the first that holds is taken). SpiffWorkflow orders them by where their targets are drawn (top
    to bottom), which the designer does not see as an order, and which decides once conditions overlap or a
    flow has none (open_gateway_flows)."""
    order: dict[str, int] = {}
    flows = (f for f in process_node.iterchildren(f"{BPMN}sequenceFlow") if f.get("sourceRef") == gateway.name)
    for index, flow in enumerate(flows):
        target = flow.get("targetRef") or ""
        # A target with boundary events is entered through SpiffWorkflow's split step in front of it.
        for name in (target, f"{target}.BoundaryEventSplit"):
            order.setdefault(name, index)
    gateway.cond_task_specs.sort(key=lambda pair: order.get(pair[1], len(order)))


_CHOICES = ("exclusiveGateway", "inclusiveGateway")


def open_gateway_flows(filename: str, tree: etree._ElementTree) -> list[DeployProblem]:
    """Give the condition `True`, in place, to each flow that leaves an exclusive or inclusive gateway of an
    executable process with neither a condition nor being the default, and warn of each.

    Camunda 7 takes such a flow as if its condition were true (an exclusive gateway takes the first flow,
    in file order, whose condition holds: _in_file_order; an inclusive one every such flow). SpiffWorkflow
    refuses it; modelers other than Camunda's leave conditions out (the MIWG exports). The warning says
    which flows that makes the gateway take, so a designer who meant something else sees it. A gateway
    with one outgoing flow takes it either way and is left alone."""
    warnings = []
    for process in tree.getroot().iterchildren(f"{BPMN}process"):
        if process.get("isExecutable", "true") != "true":
            continue
        for gateway in process.iter(*(f"{BPMN}{name}" for name in _CHOICES)):
            parent = gateway.getparent()
            outgoing = [] if parent is None else [f for f in parent.iterchildren(f"{BPMN}sequenceFlow")
                                                  if f.get("sourceRef") == gateway.get("id")]
            for index, flow in enumerate(outgoing if len(outgoing) > 1 else []):
                if flow.get("id") == gateway.get("default") or flow.find(f"{BPMN}conditionExpression") is not None:
                    continue
                etree.SubElement(flow, f"{BPMN}conditionExpression").text = "True"
                # What it hides: the flows after it, and the default flow wherever that is written.
                hidden = [f for i, f in enumerate(outgoing) if i > index or f.get("id") == gateway.get("default")]
                warnings.append(DeployProblem(filename, _open_flow_warning(gateway, flow, hidden),
                                              flow.sourceline, flow.get("id")))
    return warnings


def _open_flow_warning(gateway: etree._Element, flow: etree._Element, hidden: list[etree._Element]) -> str:
    said = (f"{describe(flow)} leaves {describe(gateway)} without a condition and is not its default flow: as in "
            "Camunda 7, it is taken as if its condition were true")
    if etree.QName(gateway).localname == "inclusiveGateway":
        taken = "so it is always taken, with every other flow whose condition holds"
    elif hidden:
        names = ", ".join(label(f) for f in hidden)
        taken = ("and the gateway takes the first flow, in the order of the file, whose condition holds, so "
                 + (f"the flows {names} are never taken" if len(hidden) > 1 else f"the flow {names} is never taken"))
    else:
        taken = ("and the gateway takes the first flow, in the order of the file, whose condition holds, so it is "
                 "taken whenever none before it holds")
    return f"{said}, {taken}; give it a condition, or make it the default flow, to say what is meant"


# Elements whose text SpiffWorkflow evaluates as an expression, and what messages call them.
_EXPRESSIONS = {"conditionExpression": "condition", "condition": "condition", "timeDate": "timer expression",
                "timeDuration": "timer expression", "timeCycle": "timer expression",
                "loopCardinality": "loop cardinality", "completionCondition": "completion condition",
                "loopCondition": "loop condition"}
_PAYLOAD = "{http://camunda.org/schema/1.0/bpmn}expression"
# Between an expression and the element a designer clicks on to edit it.
_HOLDERS = ("EventDefinition", "LoopCharacteristics")


# References the BPMN schema types as QName: a modeler may write them with the prefix of the file's own
# namespace (messageRef="tns:Message_1"). SpiffWorkflow looks them up by bare id.
_QNAME_REFERENCES = ("messageRef", "signalRef", "errorRef", "escalationRef", "calledElement", "processRef")


def unprefix_local_references(tree: etree._ElementTree) -> None:
    """Drop the prefix of a reference into this very file (its prefix names the targetNamespace), in
    place, so that `tns:Message_1` finds the message `Message_1`. A prefix of another namespace names an
    imported file, which the engine does not read: that reference stays, and is refused as unresolved."""
    root = tree.getroot()
    own = root.get("targetNamespace")
    if not own:
        return
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue  # comments and processing instructions
        for attribute in _QNAME_REFERENCES:
            value = element.get(attribute)
            if value and ":" in value:
                prefix, _, local = value.partition(":")
                if element.nsmap.get(prefix) == own:
                    element.set(attribute, local)


def set_data_stores_aside(filename: str, tree: etree._ElementTree) -> list[DeployProblem]:
    """Remove data stores, their references and the data associations to them from `tree`, in place;
    returns a warning for each data store. SpiffWorkflow refuses a data store it has no implementation
    for, but in the models teams bring they document where data lives (a CRM, a CMDB): the process runs
    the same without them. The stored source keeps them, so the diagram still shows them."""
    root = tree.getroot()
    stores = {element.get("id"): element for element in root.iter(f"{BPMN}dataStore")}
    references = {element.get("id"): element for element in root.iter(f"{BPMN}dataStoreReference")}
    ignored: dict[str | None, int] = {}
    for association in [*root.iter(f"{BPMN}dataInputAssociation"), *root.iter(f"{BPMN}dataOutputAssociation")]:
        ends = [(ref.text or "").strip() for ref in association if etree.QName(ref).localname in ("sourceRef",
                                                                                                 "targetRef")]
        touched = [references[end] for end in ends if end in references]
        if touched:
            store_id = touched[0].get("dataStoreRef")
            ignored[store_id] = ignored.get(store_id, 0) + 1
            _remove(association)
    warnings = []
    for reference in references.values():
        store_id = reference.get("dataStoreRef")
        if store_id not in stores:  # a reference to no declared store is still documented through its name
            warnings.append(_set_aside(filename, reference, ignored.pop(store_id, 0)))
        _remove(reference)
    for store in stores.values():
        warnings.append(_set_aside(filename, store, ignored.pop(store.get("id"), 0)))
        _remove(store)
    return sorted(warnings, key=lambda warning: warning.line or 0)


def _remove(element: etree._Element) -> None:
    parent = element.getparent()
    if parent is not None:  # never the root: data stores sit inside <definitions> or a process
        parent.remove(element)


def _set_aside(filename: str, element: etree._Element, associations: int) -> DeployProblem:
    what = "data store" if etree.QName(element).localname == "dataStore" else "data store reference"
    linked = (f"; its {associations} data association{'s are' if associations != 1 else ' is'} ignored"
              if associations else "")
    return DeployProblem(filename, f"{what} {label(element)} is kept as documentation only: this engine keeps no "
                                   f"data in data stores{linked}, and the process runs without it",
                         element.sourceline, element.get("id"))


def translate_expressions(filename: str, tree: etree._ElementTree) -> list[DeployProblem]:
    """Rewrite the JUEL and FEEL expressions of the executable processes in `tree` as Python, in place;
    returns a problem for each one that cannot be translated. Other processes never run, so their
    expressions are left as they are."""
    problems = []
    for process in tree.getroot().iterchildren(f"{BPMN}process"):
        # SpiffWorkflow's ProcessParser takes a process without isExecutable to be executable.
        if process.get("isExecutable", "true") != "true":
            continue
        # XPath names a data object by its name; SpiffWorkflow holds it under its id (an id is taken as is).
        data_objects = {obj.get("name") or "": obj.get("id") or "" for obj in process.iter(f"{BPMN}dataObject")}
        for element in process.iter(*(f"{BPMN}{name}" for name in _EXPRESSIONS)):
            try:
                python = translate(element.text or "", data_objects)
            except Untranslatable as exc:
                problems.append(_untranslatable(filename, element, exc, _EXPRESSIONS[etree.QName(element).localname],
                                                element.text or ""))
                continue
            if python is not None:
                element.text = python
        # The payload of a message throw or send task (SpiffWorkflow's Camunda flavour evaluates it).
        for element in process.iter(f"{BPMN}messageEventDefinition", f"{BPMN}sendTask"):
            payload = element.get(_PAYLOAD)
            try:
                python = translate(payload) if payload else None
            except Untranslatable as exc:
                problems.append(_untranslatable(filename, element, exc, "message payload (camunda:expression)",
                                                payload or ""))
                continue
            if python is not None:
                element.set(_PAYLOAD, python)
    return problems


def _untranslatable(filename: str, element: etree._Element, exc: Untranslatable, what: str,
                    written: str) -> DeployProblem:
    owner = element.getparent() if etree.QName(element).localname in _EXPRESSIONS else element
    while owner is not None and etree.QName(owner).localname.endswith(_HOLDERS):
        owner = owner.getparent()
    owner = element if owner is None else owner
    text = " ".join(written.split())
    return DeployProblem(filename, f"{describe(owner)}: the {what} '{text}' is {exc.dialect} and cannot be "
                                   f"translated to Python: {exc.reason}; {exc.instead}",
                         element.sourceline, nearest_id(owner))


def flow_index(process_node: etree._Element) -> dict[str, dict[str, str]]:
    """{source id: {target id: sequence flow id}} for the flows drawn directly in a process or subprocess."""
    flows: dict[str, dict[str, str]] = {}
    for flow in process_node.iterchildren(f"{BPMN}sequenceFlow"):
        source, target, flow_id = flow.get("sourceRef"), flow.get("targetRef"), flow.get("id")
        if source and target and flow_id:
            flows.setdefault(source, {}).setdefault(target, flow_id)
    return flows

