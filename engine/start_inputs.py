"""What a process reads that nothing in it sets: its start inputs.

A gateway's or loop's condition, a multi-instance activity's collection, a script, or a decision table's
input column may read a variable that no script, form field, data output, decision or event of the upload
ever sets: the designer meant it to come with the case (Camunda examples read `approved` from a form the
diagram does not hold; MIWG's invoice reads it from a user task without a form). Started without it, a
case stops there with an incident ("name 'approved' is not defined") after it has already done work.

At deploy, each such read is a warning located at the element, naming the variable, so the designer can
add the form field or the script that sets it. The variables whose use says their type (variable_uses.py)
become the version's start inputs (`start_inputs`, a JSON Schema of the data to start a case with), so
that a client, and the conformance run, knows what to give. So do the process's own declared data inputs
(its ioSpecification), without a warning: the designer said they come with the case.

The analysis is conservative about writes: a name written anywhere in the upload (any process's scripts,
form fields, decision outputs, data outputs, loop items, event variables) is taken as set, so a warning
means that nothing at all in the upload could set it. Camunda's variable mappings are not applied by this
engine, so they set nothing. A process that calls a process outside the upload (deployed before) is not
analysed: what that process sets is not known here. Messages and workers (external tasks) may bring
variables the model does not name; the warning says so.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from lxml import etree
from SpiffWorkflow.bpmn.specs.bpmn_process_spec import BpmnProcessSpec

from .deploy_files import Bundle
from .deploy_problems import DeployProblem, describe, source_line
from .deploy_schema import BPMN_NS, CAMUNDA_NS
from .implicit_splits import split_of
from .task_sources import task_sources
from .variable_uses import merge, script_reads, script_writes, typed_reads, value_reads

_CARDINALITY = {"type": "integer", "minimum": 1, "maximum": 3}
# A multi-instance collection says nothing of its items: their own uses type them (an untyped item is text).
_COLLECTION = {"type": "array", "items": {}, "minItems": 1, "maxItems": 3}
# What SpiffWorkflow and Camunda call the variable an event or message writes.
_VARIABLE_ATTRIBUTES = ("result_var", "message_var", "variable")
_SCRIPTS = ("script", "preScript", "postScript")
# Elements whose id is a name a task sets: a data output, and a multi-instance activity's item.
_DECLARED = ("dataOutput", "inputDataItem", "outputDataItem")
_WRITING_ATTRIBUTES = (f"{{{CAMUNDA_NS}}}resultVariable", f"{{{CAMUNDA_NS}}}elementVariable", "inputElement",
                       "outputElement", "outputCollection")
# Camunda's variable mappings (camunda:inputOutput, camunda:in/out) are not applied here: not writes.
_XML_WRITES = ((CAMUNDA_NS, "formField", "id"),)


def xml_writes(trees: Iterable[etree._ElementTree]) -> set[str]:
    """The names the files of an upload set, read from the XML (parsing every process with SpiffWorkflow
    only for this would be slow, and the deploy parses the ones it runs): scripts, Camunda form fields and
    result variables, loop items, data outputs, the output columns of decision tables, and SpiffWorkflow
    message variables (this engine gives a message's data under the message's name, but a name the model
    expects from a message is not one to warn of as set by nothing)."""
    names: set[str] = set()
    for tree in trees:
        for element in tree.iter():
            if not isinstance(element.tag, str):
                continue
            local = etree.QName(element).localname
            if local in _SCRIPTS:
                names |= script_writes(element.text)
            elif local in _DECLARED:
                names.add(element.get("id") or "")
            elif local == "messageVariable":
                names.add((element.text or "").strip())
            elif local == "output" and element.get("name"):  # a DMN decision table's output column
                names.add(element.get("name") or "")
            names |= {element.get(attribute) or "" for attribute in _WRITING_ATTRIBUTES}
            for namespace, tag, attribute in _XML_WRITES:
                if element.tag == f"{{{namespace}}}{tag}":
                    names.add(element.get(attribute) or "")
    names.discard("")
    return names


def form_writes(forms: Iterable[Any]) -> set[str]:
    """The fields of JSON Schema forms, at any depth (an `allOf`'s `then` adds fields too)."""
    names: set[str] = set()
    pending = list(forms)
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            if isinstance(node.get("properties"), dict):
                names |= set(node["properties"])
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return names


def upload_writes(bundle: Bundle) -> set[str]:
    """Every name the files of an upload set: its XML and its form files."""
    return xml_writes([*bundle.bpmn.values(), *bundle.dmn.values()]) | form_writes(bundle.forms.values())


def _reads(spec: BpmnProcessSpec) -> Iterable[tuple[str, str, dict | None]]:
    """(element id, name, type or None) of each name the conditions, scripts, message payloads and
    multi-instance collections and cardinalities of a process read before anything in them sets it."""
    for task_spec in spec.task_specs.values():
        element_id = getattr(task_spec, "bpmn_id", None)
        if not element_id:
            continue
        for what, source, mode in task_sources(task_spec):
            # A cardinality is read below; a timer's text is a date or a duration, not a read of the data.
            reads = script_reads(source) if mode == "exec" else \
                typed_reads(source) if what in ("condition", "message payload") else {}
            for name, schema in reads.items():
                yield element_id, name, schema
        collection = getattr(getattr(task_spec, "data_input", None), "bpmn_id", None)
        if collection:
            yield element_id, collection, dict(_COLLECTION)
        cardinality = getattr(task_spec, "cardinality", None)
        if isinstance(cardinality, str) and cardinality.strip().isidentifier():
            yield element_id, cardinality.strip(), dict(_CARDINALITY)


def spec_writes(spec: BpmnProcessSpec) -> set[str]:
    """The names the task specs of a process set: scripts, data outputs and objects, loop items, event and
    message variables."""
    names: set[str] = set()
    for task_spec in spec.task_specs.values():
        names |= set().union(*(script_writes(source) for _, source, mode in task_sources(task_spec) if mode == "exec"))
        io_spec = getattr(task_spec, "io_specification", None)
        for item in [*(getattr(io_spec, "data_outputs", None) or []),
                     *(getattr(task_spec, "data_output_associations", None) or []),
                     getattr(task_spec, "data_output", None), getattr(task_spec, "output_item", None),
                     getattr(task_spec, "input_item", None)]:
            if getattr(item, "bpmn_id", None):
                names.add(item.bpmn_id)
        event = getattr(task_spec, "event_definition", None)
        for event_definition in [event, *(getattr(event, "event_definitions", None) or [])]:
            for attribute in _VARIABLE_ATTRIBUTES:
                value = getattr(event_definition, attribute, None)
                if isinstance(value, str) and value:
                    names.add(value)
    return names


def start_inputs(bundle: Bundle, specs: list[BpmnProcessSpec], written: set[str],
                 file: str) -> tuple[dict, list[DeployProblem]]:
    """The JSON Schema of a version's start inputs and a warning per element that reads a name nothing in
    the upload sets. `specs` are the process and its embedded subprocesses, `written` every name the upload
    sets. The process's own declared data inputs (its ioSpecification) are start inputs without a warning:
    the designer said they come with the case; typed by their uses, else taken as text."""
    declared = _declared_inputs(bundle, specs[0].name, file)
    message_variable = _start_message_variable(specs[0])
    message: dict | None = {}  # the shape its reads give the start message's variable
    types: dict[str, dict | None] = {}
    disagree: set[str] = set()
    warnings: list[DeployProblem] = []
    readers: dict[str, list[str]] = {}
    for spec in specs:
        for read_by, name, schema in [*_reads(spec), *_decision_reads(bundle, spec)]:
            if name == message_variable:
                message = merge(message, schema) if schema and schema.get("type") == "object" else message
                continue
            if name in written and name not in declared:
                continue
            # A gateway the deployment added for an implicit split: the designer drew its activity.
            split = split_of(read_by)
            element_id = split or read_by
            if name not in declared and element_id not in readers.setdefault(name, []):
                readers[name].append(element_id)
                where, element = bundle.element(element_id, spec.file)
                what = describe(element) if element is not None else f"element '{element_id}'"
                warnings.append(DeployProblem(where or file, _unset_warning(
                    f"the conditional flows leaving {what}" if split else what, name),
                    source_line(element), element_id))
            if schema is None or name in disagree:
                types.setdefault(name, None)  # a use that says nothing of the type leaves it as it is
            elif types.get(name) is None:
                types[name] = schema
            else:
                types[name] = merge(types[name], schema)
                if types[name] is None:
                    disagree.add(name)  # two uses that disagree: no type
    properties = {name: schema for name, schema in types.items() if schema is not None}
    properties |= {name: types.get(name) or {"type": "string"} for name in declared}
    # A case of a process that starts only on a message starts with the message's data: what the process
    # reads of the variable its start event puts the message in (spiff_messages.py) is part of that data.
    properties |= {name: schema for name, schema in ((message or {}).get("properties") or {}).items()
                   if name not in properties}
    if not properties:
        return {}, warnings
    return {"type": "object", "properties": properties, "required": sorted(properties)}, warnings


def with_inputs_of_called(inputs: dict, called: dict) -> dict:
    """A caller's start inputs with those of a process it calls that it does not have itself."""
    extra = {name: schema for name, schema in (called.get("properties") or {}).items()
             if name not in (inputs.get("properties") or {})}
    if not extra:
        return inputs
    properties = {**(inputs.get("properties") or {}), **extra}
    return {"type": "object", "properties": properties, "required": sorted(properties)}


def _start_message_variable(spec: BpmnProcessSpec) -> str | None:
    """The variable a process's only start event puts its message in, when it starts only on a message."""
    starts = [task_spec for task_spec in spec.task_specs.values() if type(task_spec).__name__ == "StartEvent"]
    if len(starts) != 1:
        return None
    variable = getattr(getattr(starts[0], "event_definition", None), "message_var", None)
    return variable if isinstance(variable, str) else None


def _decision_reads(bundle: Bundle, spec: BpmnProcessSpec) -> list[tuple[str, str, dict | None]]:
    """(business rule task id, name, type) of each name the input columns of the decision tables its
    business rule tasks call read; a column that is a plain name, or a key of one (`request["size"]`), is
    typed by its typeRef, else by its entries (all quoted text: one of those texts)."""
    found: list[tuple[str, str, dict | None]] = []
    for task_spec in spec.task_specs.values():
        element_id = getattr(task_spec, "bpmn_id", None)
        if not element_id:
            continue
        _, element = bundle.element(element_id, spec.file)
        ref = element.get(f"{{{CAMUNDA_NS}}}decisionRef") if element is not None else None
        decision = next((d for tree in bundle.dmn.values() for d in tree.iter("{*}decision") if d.get("id") == ref),
                        None) if ref else None
        for table in decision.iter("{*}decisionTable") if decision is not None else []:
            rules = [rule.findall("{*}inputEntry") for rule in table.iter("{*}rule")]
            for index, column in enumerate(table.findall("{*}input")):
                expression = column.find("{*}inputExpression")
                text = (expression.findtext("{*}text") or "").strip() if expression is not None else ""
                entries = [(entries[index].findtext("{*}text") or "").strip() for entries in rules
                           if index < len(entries)]
                type_ref = expression.get("typeRef", "") if expression is not None else ""
                kind = _column_type(type_ref, entries)
                if text.isidentifier():  # even a name Python has (`type`, `id`): in a decision it is data
                    found.append((element_id, text, kind))
                else:
                    found += [(element_id, name, schema) for name, schema in value_reads(text, kind).items()]
    return found


def _column_type(type_ref: str, entries: list[str]) -> dict | None:
    if type_ref == "boolean":
        return {"type": "boolean"}
    if type_ref in ("integer", "long", "double", "number"):
        return {"type": "number"}
    texts = [entry for entry in entries if entry not in ("", "-")]
    if texts and all(len(entry) >= 2 and entry[0] == entry[-1] == '"' for entry in texts):
        return {"type": "string", "enum": sorted({entry[1:-1] for entry in texts})}
    return {"type": "string"} if type_ref == "string" else None


def _declared_inputs(bundle: Bundle, process_id: str, file: str) -> list[str]:
    """The ids of a process's data inputs (its ioSpecification's dataInput elements)."""
    _, process = bundle.element(process_id, file)
    if process is None:
        return []
    return [item.get("id") or "" for spec in process.iterchildren(f"{{{BPMN_NS}}}ioSpecification")
            for item in spec.iterchildren(f"{{{BPMN_NS}}}dataInput") if item.get("id")]


def _unset_warning(reader: str, name: str) -> str:
    """The warning for `reader` ("script task 'Total' (Task_1)", or "the conditional flows leaving …")."""
    verb = "read" if reader.startswith("the conditional flows") else "reads"
    return (f"{reader} {verb} '{name}', which nothing in the upload sets (no script, form field, data output, "
            "decision output or event variable; Camunda variable mappings are not applied): unless the case is "
            f"started with '{name}' in its data (the version's start_inputs list it when its use says its type), "
            "or a person completing a task without a form, a message or a worker gives it, a case stops there "
            "with an incident; add the form field or script that sets it")
