"""Messages as SpiffWorkflow's modeler writes them, run by the Camunda flavour this engine parses with.

The SpiffWorkflow modeler (spiff-arena's) says what a message carries with `spiffworkflow:messagePayload`,
a Python expression on the send task or throw event (or on the message itself), and where a catching event
or receive task puts what it receives with `spiffworkflow:messageVariable`. The Camunda flavour reads
neither: the message went without its data, and the catching case never had the variable its conditions
read, so it failed later, at the first element that read it. Here the payload becomes the
`camunda:expression` the flavour evaluates (translated and checked like every other expression), and a
catching definition with a message variable puts the message's data there too, beside the variable named
after the message that every catch gets (runner.deliver_message).
"""
from __future__ import annotations

from typing import Any

from lxml import etree
from SpiffWorkflow.bpmn.specs.bpmn_process_spec import BpmnProcessSpec
from SpiffWorkflow.camunda.serializer.event_definition import MessageEventDefinitionConverter as CamundaConverter
from SpiffWorkflow.camunda.specs.event_definitions import MessageEventDefinition as CamundaMessage

from .deploy_schema import BPMN_NS, CAMUNDA_NS, SPIFF_NS

_THROWS = ("sendTask", "intermediateThrowEvent", "endEvent")
_EXPRESSION = f"{{{CAMUNDA_NS}}}expression"


class MessageEventDefinition(CamundaMessage):
    """The Camunda flavour's message definition with the catch's own variable. It keeps the flavour's class
    name, so the serializer restores every stored message definition as this one (spiff_setup.py); one
    stored before this existed has no variable and catches as it always did."""

    def __init__(self, name: str, correlation_properties: Any = None, expression: str | None = None,
                 result_var: str | None = None, message_var: str | None = None, **kwargs: Any) -> None:
        super().__init__(name, correlation_properties, expression, result_var, **kwargs)
        self.message_var = message_var

    def __eq__(self, other: object) -> bool:
        # SpiffWorkflow matches a thrown message to a catch by class and name: a message sent as the flavour's
        # class (runner.deliver_message) is the same message. Python asks the subclass first either way round.
        return isinstance(other, CamundaMessage) and self.name == other.name

    def update_task_data(self, my_task: Any) -> None:
        received = my_task.internal_data.get(self.name)
        super().update_task_data(my_task)
        if self.message_var and isinstance(received, dict):
            my_task.data[self.message_var] = received.get("payload")


class MessageVariableConverter(CamundaConverter):
    """Stores the variable too. The serializer finds converters by class name, so this one also stores the
    flavour's own definitions (which have none)."""

    def to_dict(self, event_definition: CamundaMessage) -> dict[str, Any]:
        dct: dict[str, Any] = super().to_dict(event_definition)
        dct["message_var"] = getattr(event_definition, "message_var", None)
        return dct


def adopt_message_payloads(tree: etree._ElementTree) -> None:
    """Give each send task and message throw whose payload is a spiffworkflow:messagePayload (its own, or
    its message's) that expression as camunda:expression, in place; one it already has is kept."""
    root = tree.getroot()
    for holder in _message_holders(root, _THROWS):
        if holder.get(_EXPRESSION):
            continue
        payload = _extension(holder, "messagePayload", root)
        if payload:
            holder.set(_EXPRESSION, payload)


def with_message_variables(spec: BpmnProcessSpec, process_node: etree._Element) -> None:
    """Make every message definition of the spec the class above, in place, with the message variable the
    XML gives its catch (a receive task's own, a message event definition's own, or its message's)."""
    root = process_node.getroottree().getroot()
    variables = {}  # (element id, message name) → variable
    for holder in _message_holders(process_node, None):
        owner = _owner(holder)
        variable = _extension(holder, "messageVariable", root)
        if owner is not None and variable:
            variables[(owner.get("id"), _message_name(holder, root))] = variable
    for task_spec in spec.task_specs.values():
        event = getattr(task_spec, "event_definition", None)
        # A catch of several messages holds one definition per message.
        for definition in [event, *(getattr(event, "event_definitions", None) or [])]:
            if type(definition) is CamundaMessage:
                definition.__class__ = MessageEventDefinition
                definition.message_var = variables.get((getattr(task_spec, "bpmn_id", None), definition.name))


def _message_holders(node: etree._Element, owners: tuple[str, ...] | None) -> list[etree._Element]:
    """The elements that name a message: send and receive tasks, and message event definitions (of the
    events named in `owners`, or of any event)."""
    holders = []
    for element in node.iter(f"{{{BPMN_NS}}}sendTask", f"{{{BPMN_NS}}}receiveTask",
                             f"{{{BPMN_NS}}}messageEventDefinition"):
        local = etree.QName(element).localname
        parent = element.getparent()
        if local == "messageEventDefinition":
            if parent is None or (owners is not None and etree.QName(parent).localname not in owners):
                continue
        elif owners is not None and local not in owners:
            continue
        holders.append(element)
    return holders


def _extension(holder: etree._Element, name: str, root: etree._Element) -> str | None:
    """The text of spiffworkflow:`name` on the holder, else on the message it names."""
    for element in (holder, _message(holder, root)):
        if element is None:
            continue
        found = element.find(f"{{{BPMN_NS}}}extensionElements/{{{SPIFF_NS}}}{name}")
        if found is not None and (found.text or "").strip():
            return (found.text or "").strip()
    return None


def _message(holder: etree._Element, root: etree._Element) -> etree._Element | None:
    ref = holder.get("messageRef")
    if not ref:
        return None
    return next((m for m in root.iterchildren(f"{{{BPMN_NS}}}message") if m.get("id") == ref), None)


def _message_name(holder: etree._Element, root: etree._Element) -> str | None:
    """The name SpiffWorkflow gives the holder's message definition: its message's name, or without a
    message, the name of the element that holds it (CamundaEventDefinitionParser)."""
    message = _message(holder, root)
    if message is not None:
        return message.get("name")
    owner = _owner(holder)
    return owner.get("name") if owner is not None else None


def _owner(holder: etree._Element) -> etree._Element | None:
    """The flow node a message holder belongs to: a receive task is its own; a definition's is its event."""
    return holder if etree.QName(holder).localname == "receiveTask" else holder.getparent()
