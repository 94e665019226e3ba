"""What exporters write that the BPMN XSD, or a reference lookup, refuses although its meaning is clear:
set aside or read as meant, each with a located warning. Part of deployment (see deployment.py).

Before the XSD check (deploy_schema.py), which would refuse the whole file:
- a sequence flow that connects nothing (neither sourceRef nor targetRef: exporters leave such
  flows behind when an element is deleted) is dropped from the tree the parser reads. A flow with one
  end is still refused: what it was meant to connect is a guess;
- a multi-instance loop whose inputDataItem and outputDataItem share one id (SpiffWorkflow's modeler
  writes them so: one variable that each instance reads and writes back) passes the XSD's check for
  unique ids. SpiffWorkflow reads an item's variable from its id, so the id is taken off the output
  item for the check only and put back right after it (`restore`). Every other duplicate id stays
  refused.

After it, a reference written with the prefix of the BPMN namespace itself (Trisotech writes
messageRef="semantic:Message_1", `semantic` being the BPMN namespace, not the file's own) is read as
the element of that id in this file, when the file defines one.
The stored source keeps the file as uploaded.
"""
from __future__ import annotations

from collections.abc import Callable

from lxml import etree

from .deploy_problems import DeployProblem, describe, label, nearest_id
from .deploy_schema import BPMN_NS

_B = f"{{{BPMN_NS}}}"
_PREFIXED_REFERENCES = ("messageRef", "signalRef", "errorRef", "escalationRef")


def before_schema(filename: str, tree: etree._ElementTree) -> tuple[list[DeployProblem], Callable[[], None]]:
    """(warnings, restore): drop the flows that connect nothing and hide shared loop item ids, in place;
    call `restore` once the XSD check is done."""
    warnings = _drop_unconnected_flows(filename, tree)
    hidden: list[tuple[etree._Element, str]] = []
    for loop in tree.getroot().iter(f"{_B}multiInstanceLoopCharacteristics"):
        items, outputs = loop.find(f"{_B}inputDataItem"), loop.find(f"{_B}outputDataItem")
        if items is None or outputs is None or not items.get("id") or items.get("id") != outputs.get("id"):
            continue
        shared = str(outputs.get("id"))
        hidden.append((outputs, shared))
        del outputs.attrib["id"]
        owner = loop.getparent()
        warnings.append(DeployProblem(
            filename, f"{describe(owner) if owner is not None else 'a multi-instance loop'} gives its input and output "
                      f"data items the same id '{shared}' (as SpiffWorkflow's modeler writes them): read as one "
                      "variable that each instance reads and writes back; give the output item an id of its own "
                      "to make the file valid BPMN", outputs.sourceline, nearest_id(owner)))

    def restore() -> None:
        for element, shared_id in hidden:
            element.set("id", shared_id)
    return warnings, restore


def _drop_unconnected_flows(filename: str, tree: etree._ElementTree) -> list[DeployProblem]:
    warnings = []
    for flow in list(tree.getroot().iter(f"{_B}sequenceFlow")):
        if flow.get("sourceRef") or flow.get("targetRef"):
            continue
        container = flow.getparent()
        if container is None:
            continue
        flow_id = flow.get("id")
        for ref in list(container.iter(f"{_B}incoming", f"{_B}outgoing")):
            holder = ref.getparent()
            if flow_id and (ref.text or "").strip() == flow_id and holder is not None:
                holder.remove(ref)
        container.remove(flow)
        warnings.append(DeployProblem(filename, f"sequence flow {label(flow)} connects nothing (it has neither "
                                                "sourceRef nor targetRef, as exporters leave a flow whose ends were "
                                                "deleted), so it is ignored; delete it, or connect both of its ends",
                                      flow.sourceline, flow_id or nearest_id(container)))
    return warnings


def unprefix_bpmn_references(filename: str, tree: etree._ElementTree) -> list[DeployProblem]:
    """Read `semantic:Message_1`, whose prefix names the BPMN namespace, as the id Message_1 of this file,
    in place; returns one warning per file (exporters write every reference so)."""
    root = tree.getroot()
    ids = {e.get("id") for e in root.iter() if isinstance(e.tag, str) and e.get("id")}
    changed: list[etree._Element] = []
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue  # comments and processing instructions
        for attribute in _PREFIXED_REFERENCES:
            value = element.get(attribute) or ""
            prefix, _, local = value.partition(":")
            if local and element.nsmap.get(prefix) == BPMN_NS and local in ids:
                element.set(attribute, local)
                changed.append(element)
    if not changed:
        return []
    first = changed[0]
    event = first.getparent()
    if etree.QName(first).localname.endswith("EventDefinition") and event is not None:
        first = event  # the event the designer clicks on
    more = f" (and {len(changed) - 1} more reference{'s' if len(changed) > 2 else ''} written so)" \
        if len(changed) > 1 else ""
    return [DeployProblem(filename, f"{describe(first)} refers to an element of this file with the prefix of the BPMN "
                                    f"namespace itself{more}: read as the id without the prefix; write references "
                                    "without a prefix, or with the prefix of the file's targetNamespace",
                          first.sourceline, nearest_id(first))]
