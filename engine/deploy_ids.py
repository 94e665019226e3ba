"""Element ids that SpiffWorkflow uses for steps of its own, mapped so that a designer may use any id.
Part of deployment (see deployment.py).

SpiffWorkflow keys a process's task specs by element id and adds steps of its own under fixed names
(`Start`, `End`, `StartEventSplit`, `StartEventJoin`, and `<process>.EndJoin`, `<id>.BoundaryEventSplit`,
`<id>.BoundaryEventJoin`, built from other ids); `Root` is a name its specs treat specially. An element
with such an id would replace the internal step, and no case could start. So the parser reads a copy of
the file in which such an id, and every reference to it, ends in a mark no XML id can contain; after
parsing, each task spec's `bpmn_id` is set back to the designer's id (deploy_process.py). Only the
spec's internal name keeps the mark: tasks, trail, incidents, diagram and compliance show `bpmn_id`,
and the stored source is the file as uploaded.
"""
from __future__ import annotations

import copy

from lxml import etree

RESERVED_IDS = frozenset({"Start", "End", "Root", "StartEventSplit", "StartEventJoin"})
RESERVED_SUFFIXES = (".EndJoin", ".BoundaryEventSplit", ".BoundaryEventJoin")
# Not a character of an XML id (an NCName), so no id a designer writes ends in it.
MARK = "#"
# Where BPMN refers to a flow node by id: attributes, and elements whose text is the id.
_REFERENCE_ATTRIBUTES = ("sourceRef", "targetRef", "attachedToRef", "activityRef", "bpmnElement", "sourceElement",
                         "targetElement")
_REFERENCE_ELEMENTS = ("incoming", "outgoing", "flowNodeRef", "sourceRef", "targetRef")


def is_flow_node(element: etree._Element) -> bool:
    """Activities, events and gateways: the elements that become task specs."""
    local = etree.QName(element).localname
    return local.endswith(("Task", "Event", "Gateway", "Process", "task", "callActivity", "transaction"))


def reserved_ids(tree: etree._ElementTree, namespace: str) -> set[str]:
    """The ids of flow nodes (elements of `namespace`) that collide with a name of SpiffWorkflow's own."""
    found = set()
    for element in tree.iter(f"{{{namespace}}}*"):
        element_id = element.get("id") or ""
        if is_flow_node(element) and (element_id in RESERVED_IDS or element_id.endswith(RESERVED_SUFFIXES)):
            found.add(element_id)
    return found


def with_internal_ids(tree: etree._ElementTree, reserved: set[str]) -> etree._ElementTree:
    """A copy of `tree` in which each reserved id, and each reference to it, ends in MARK. The copy keeps
    the source lines, so the parser's problems still point at the file as uploaded."""
    copied: etree._ElementTree = copy.deepcopy(tree)
    for element in copied.iter():
        if not isinstance(element.tag, str):
            continue
        if element.get("id") in reserved:
            element.set("id", internal_id(element.get("id") or ""))
        for attribute in _REFERENCE_ATTRIBUTES:
            if element.get(attribute) in reserved:
                element.set(attribute, internal_id(element.get(attribute) or ""))
        text = (element.text or "").strip()
        if text in reserved and etree.QName(element).localname in _REFERENCE_ELEMENTS:
            element.text = internal_id(text)
    return copied


def internal_id(element_id: str) -> str:
    return element_id + MARK


def designer_id(element_id: str) -> str:
    """The id as the designer wrote it, for an id the parser read (marked or not)."""
    return element_id[:-len(MARK)] if element_id.endswith(MARK) else element_id
