"""A user task's declared outputs are part of its form.

A user or manual task may say what it produces: the dataOutputs of its ioSpecification, or a
dataOutputAssociation to a data object. SpiffWorkflow reads those values from the task's data when the
task completes and fails the step when one is missing ("Missing data ouput", "A data object could not be
set"), which made a person's incomplete answer the case's incident after the command had begun. Here each
declared output becomes a required field of the task's form (its JSON Schema), so the form the API shows
asks for it and completing the task without it is refused as invalid input, with the task left open.

The field's name is what SpiffWorkflow reads: the dataOutput's id, or the data object's id; its title is
the name the designer gave it. A form file that already has a field of that name keeps its schema for it.

A data association between a task's ioSpecification and a data object (MIWG C.1.1, C.5.0: a dataOutput
written to a data object, a data object read into a dataInput) names both ends, but SpiffWorkflow reads
only the data object's end: it looks for the data object's id in the task's data, which its
ioSpecification has just narrowed to the dataOutputs (or finds the dataInput missing). The deployment
records which end feeds which (data_links, from the XML), and a loaded version links them (link_data):
the person fills in the dataOutput, and the data object gets its value.
"""
from __future__ import annotations

from typing import Any

from collections.abc import Callable, Collection

from lxml import etree
from SpiffWorkflow.bpmn.specs.data_spec import BpmnDataSpecification, DataObject
from SpiffWorkflow.specs.base import TaskSpec

from .deploy_schema import BPMN_NS

OPEN = {"type": "object"}


class Linked(BpmnDataSpecification):
    """One end of a data association, read from the task's data under the other end's name."""

    def __init__(self, bpmn_id: str, bpmn_name: str | None, source: str):
        super().__init__(bpmn_id, bpmn_name)
        self.source = source

    def exists(self, my_task: Any) -> bool:
        return self.source in my_task.data

    def get(self, my_task: Any) -> Any:
        return my_task.data.get(self.source)


def declared_outputs(task_spec: TaskSpec, fed: Collection[str] = ()) -> list[tuple[str, str | None, str]]:
    """(field name, title, what declares it) of each output the task must produce, in the file's order;
    `fed` are the data objects that a dataOutput of the task gives its value (not asked for twice)."""
    found: list[tuple[str, str | None, str]] = []
    io_spec = getattr(task_spec, "io_specification", None)
    for output in getattr(io_spec, "data_outputs", None) or []:
        if not isinstance(output, Linked):
            found.append((output.bpmn_id, output.bpmn_name, "a data output of the task's ioSpecification"))
    for target in getattr(task_spec, "data_output_associations", None) or []:
        # Data stores are kept as documentation: nothing to fill in.
        if isinstance(target, DataObject) and target.bpmn_id not in fed:
            found.append((target.bpmn_id, target.bpmn_name, "the data object the task writes"))
    unique: dict[str, tuple[str, str | None, str]] = {}
    for entry in found:
        if entry[0]:
            unique.setdefault(entry[0], entry)  # the first declaration of a name counts
    return list(unique.values())


def with_declared_outputs(schema: dict | None, task_spec: TaskSpec, links: dict | None = None) -> dict | None:
    """The task's form with its declared outputs as required fields; the schema itself (None: an open form)
    when the task declares none. `links` are the task's data_links."""
    outputs = declared_outputs(task_spec, (links or {}).get("outputs", {}))
    if not outputs:
        return schema
    form: dict[str, Any] = dict(schema if schema is not None else OPEN)
    properties = dict(form.get("properties") or {})
    for name, title, declared_by in outputs:
        if name not in properties:
            properties[name] = {"title": title or name, "description": f"{declared_by}; any value"}
    required = list(form.get("required") or [])
    form["properties"] = properties
    form["required"] = required + [name for name, _, _ in outputs if name not in required]
    return form


def data_links(element: etree._Element, resolve: Callable[[str], etree._Element | None]) -> dict:
    """{"outputs": {data object id: dataOutput id}, "inputs": {dataInput id: data object id}} of the
    associations between a task's ioSpecification and data objects; empty parts left out. `resolve` finds
    an element of the file by id (a dataObjectReference, to the data object it refers to)."""
    io_spec = element.find(f"{{{BPMN_NS}}}ioSpecification")
    if io_spec is None:
        return {}
    ends = {kind: {item.get("id") for item in io_spec.iterchildren(f"{{{BPMN_NS}}}{kind}")}
            for kind in ("dataOutput", "dataInput")}
    # An id-less dataOutput/dataInput (the schema allows one) matches an association without that ref: None.
    links: dict[str, dict[str | None, str | None]] = {}
    for kind, own, other, part in (("dataOutputAssociation", "sourceRef", "targetRef", "outputs"),
                                   ("dataInputAssociation", "targetRef", "sourceRef", "inputs")):
        for association in element.iterchildren(f"{{{BPMN_NS}}}{kind}"):
            mine = _ref(association.find(f"{{{BPMN_NS}}}{own}"))
            data_object = _data_object(_ref(association.find(f"{{{BPMN_NS}}}{other}")), resolve)
            if mine in ends["dataOutput" if part == "outputs" else "dataInput"] and data_object:
                pair = (data_object, mine) if part == "outputs" else (mine, data_object)
                links.setdefault(part, {})[pair[0]] = pair[1]
    return links


def _ref(node: etree._Element | None) -> str | None:
    text = (node.text or "").strip() if node is not None else ""
    return text.rsplit(":", 1)[-1] or None  # an id has no colon: what precedes one is a namespace prefix


def _data_object(ref: str | None, resolve: Callable[[str], etree._Element | None]) -> str | None:
    target = resolve(ref) if ref else None
    if target is None:
        return None
    name = etree.QName(target).localname
    if name == "dataObjectReference":
        return target.get("dataObjectRef")
    return ref if name == "dataObject" else None


def link_data(task_spec: TaskSpec, links: dict) -> None:
    """Make SpiffWorkflow follow the task's data links: a data object fed by a dataOutput is read from it,
    a dataInput fed by a data object reads the data object (which SpiffWorkflow copies into the task's
    data under the data object's id). Changes the live spec of a loaded version."""
    io_spec = getattr(task_spec, "io_specification", None)
    if io_spec is None or not links:
        return
    outputs = {output.bpmn_id for output in io_spec.data_outputs}
    written = {target.bpmn_id: target for target in task_spec.data_output_associations
               if isinstance(target, DataObject)}
    for data_object, output in links.get("outputs", {}).items():
        if output in outputs and data_object in written and data_object not in outputs:
            io_spec.data_outputs.append(Linked(data_object, written[data_object].bpmn_name, output))
    read = {source.bpmn_id for source in task_spec.data_input_associations if isinstance(source, DataObject)}
    io_spec.data_inputs = [Linked(item.bpmn_id, item.bpmn_name, links["inputs"][item.bpmn_id])
                           if links.get("inputs", {}).get(item.bpmn_id) in read else item
                           for item in io_spec.data_inputs]
