"""Data associations whose other end is not a data object, read before SpiffWorkflow parses a file. Part of
deployment (see deployment.py).

SpiffWorkflow passes data through associations only to and from data object references (and data
stores, which spec_adjustments.py sets aside), and refuses any other end. BPMN lets an association end
at any item-aware element, and modelers use that (the MIWG exports, Yaoqiang):

- a data object itself rather than a reference to it: the same data object, so the association gets a
  reference of its own, in place, and runs as drawn (no warning; deploy_files.py still checks that the
  data object is one SpiffWorkflow can see from the activity);
- a data input, data output or property of the activity's own process: a process's data is its case
  data, which every step reads and writes directly, so there is nothing to copy; the association is set
  aside, with a warning naming the variable the case holds it as;
- anything else (a data input of another activity or process, a property of an event): nothing the
  engine can pass; set aside as documentation, with a warning.

A step's own data inputs that such an association was to fill get no value from it: SpiffWorkflow
requires them when the step begins, so the warning says that a case reaching the step stops with an
incident unless its data holds them. The stored source keeps the file as uploaded.
"""
from __future__ import annotations

from lxml import etree

from .deploy_problems import DeployProblem, describe, kind, label
from .deploy_schema import BPMN_NS

_B = f"{{{BPMN_NS}}}"
_ENDS = ((f"{_B}dataInputAssociation", f"{_B}sourceRef", "read"), (f"{_B}dataOutputAssociation", f"{_B}targetRef",
                                                                   "written"))
_PASSED = {f"{_B}dataObjectReference", f"{_B}dataStoreReference"}
# What holds flow nodes: a process and the kinds of subprocess (implicit_splits.py walks the same).
SUBPROCESSES = tuple(f"{_B}{name}" for name in ("subProcess", "transaction", "adHocSubProcess"))
CONTAINERS = {f"{_B}process", *SUBPROCESSES}


def pass_or_set_aside(filename: str, tree: etree._ElementTree) -> list[DeployProblem]:
    """Rewrite, in place, the data associations of `tree` whose end SpiffWorkflow cannot pass (above);
    returns a warning for each element whose associations are set aside."""
    root = tree.getroot()
    ids: dict[str | None, etree._Element] = {}
    for element in root.iter():
        if isinstance(element.tag, str) and element.get("id"):
            ids.setdefault(element.get("id"), element)  # the first of a duplicate id, as SpiffWorkflow finds
    set_aside: dict[str, list[tuple[etree._Element, str, etree._Element | None]]] = {}
    for association_tag, end_tag, direction in _ENDS:
        for association in list(root.iter(association_tag)):
            activity = association.getparent()
            for end in association.iterchildren(end_tag):
                target = ids.get((end.text or "").strip())
                if activity is None or target is None or target.tag in _PASSED:
                    continue  # passed as drawn; an unknown id is refused by SpiffWorkflow, explained
                if target.tag == f"{_B}dataObject":
                    end.text = reference_to(target, activity, ids).get("id")
                    continue
                filled = _own_input(association, activity, ids) if direction == "read" else None
                set_aside.setdefault(str(target.get("id")), []).append((activity, direction, filled))
                _remove(association)
    warnings = [_warning(filename, ids[target_id], uses) for target_id, uses in set_aside.items()]
    return sorted(warnings, key=lambda warning: warning.line or 0)


def reference_to(data_object: etree._Element, activity: etree._Element,
                  ids: dict[str | None, etree._Element]) -> etree._Element:
    """A data object reference of the activity's (sub)process to `data_object`, added once per container."""
    container = container_of(activity)
    holder = container if container is not None else data_object.getparent()
    assert holder is not None, "a data object of a parsed definition is always inside a process or subprocess"
    base = f"{data_object.get('id')}_implicit_reference"
    reference_id, number = base, 1
    while reference_id in ids and ids[reference_id].getparent() is not holder:
        number += 1
        reference_id = f"{base}_{number}"
    if reference_id not in ids:
        ids[reference_id] = etree.SubElement(holder, f"{_B}dataObjectReference", id=reference_id,
                                             dataObjectRef=str(data_object.get("id")))
    return ids[reference_id]


def _own_input(association: etree._Element, activity: etree._Element,
               ids: dict[str | None, etree._Element]) -> etree._Element | None:
    """The data input of the activity's own ioSpecification that an input association fills, if any."""
    target = association.find(f"{_B}targetRef")
    element = ids.get((target.text or "").strip()) if target is not None else None
    if element is None or element.tag != f"{_B}dataInput":
        return None
    specification = element.getparent()
    return element if specification is not None and specification.getparent() is activity else None


def _warning(filename: str, target: etree._Element, uses: list[tuple[etree._Element, str,
                                                                      etree._Element | None]]) -> DeployProblem:
    owner = _owner(target)
    process = _process(uses[0][0])
    directions = sorted({direction for _, direction, _ in uses})
    steps = ", ".join(dict.fromkeys(label(activity) for activity, _, _ in uses))
    count = f"{len(uses)} data association{'s' if len(uses) > 1 else ''}"
    said = (f"{kind(target)} {label(target)} of {describe(owner)} is {' and '.join(directions)} by {steps} through "
            f"{count}, ")
    if owner is process and process is not None:
        said += (f"which the engine does not apply: a process's own data inputs, outputs and properties are its case "
                 f"data, which every step reads and writes directly (this one as the variable '{target.get('id')}'); "
                 "kept as documentation only")
    else:
        said += ("but it is not a data object of the step's process, and only data objects are passed between "
                 "steps: kept as documentation only, and the steps run without it")
    unfilled = [filled for _, _, filled in uses if filled is not None]
    if unfilled:
        names = ", ".join(dict.fromkeys(label(element) for element in unfilled))
        said += (f"; the data inputs it was to fill ({names}) get no value from it, so a case reaching such a step "
                 "stops with an incident unless its data holds them under those ids")
    return DeployProblem(filename, said, target.sourceline, target.get("id"))


def _owner(element: etree._Element) -> etree._Element:
    """What a data input, output or property belongs to: the activity, event or process it is part of."""
    parent = element.getparent()
    if parent is not None and parent.tag == f"{_B}ioSpecification":
        parent = parent.getparent()
    return parent if parent is not None else element


def _process(element: etree._Element) -> etree._Element | None:
    current: etree._Element | None = element
    while current is not None and current.tag != f"{_B}process":
        current = current.getparent()
    return current


def container_of(element: etree._Element) -> etree._Element | None:
    """The process or subprocess an element is directly part of."""
    parent = element.getparent()
    while parent is not None and parent.tag not in CONTAINERS:
        parent = parent.getparent()
    return parent


def _remove(element: etree._Element) -> None:
    parent = element.getparent()
    if parent is not None:
        parent.remove(element)
