"""Checking a file against the BPMN or DMN XSD: every violation becomes a located problem, and what
modelers add beyond BPMN 2.0 is set aside with a warning when the process runs the same without it.
Part of deployment (see deployment.py).

Modelers write their own elements and attributes into BPMN files: Signavio and Yaoqiang elements in the
BPMN namespace (`bpmn:metaData`), attributes that are not BPMN (`messageRef="[object Object]"` on a start
event, `type` on a data store reference). The XSD refuses them all, yet nothing in them is executed. So
before SpiffWorkflow reads a file, such an element (outside extensionElements, where the XSD admits
anything) and such an attribute are removed from the tree the parser reads, and a warning names each
with its line; the stored source keeps them. An element the process refers to (a sequence flow to a
vendor task type) is refused instead: without it the process could not run as drawn. Everything else
the XSD refuses stays refused.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from lxml import etree
from SpiffWorkflow.bpmn.parser.BpmnParser import XSD_PATH, BpmnValidator
from SpiffWorkflow.dmn.parser.BpmnDmnParser import SCHEMAS as DMN_SCHEMAS

from .deploy_problems import DeployProblem, describe, label, nearest_id

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
CAMUNDA_NS = "http://camunda.org/schema/1.0/bpmn"
SPIFF_NS = "http://spiffworkflow.org/bpmn/schema/1.0/core"
_DI_NAMESPACES = {"http://www.omg.org/spec/BPMN/20100524/DI": "bpmndi", "http://www.omg.org/spec/DD/20100524/DC": "dc",
                  "http://www.omg.org/spec/DD/20100524/DI": "di"}
# Prefixes used to shorten Clark names ({uri}local) in messages written for people.
_PREFIXES = {BPMN_NS: "bpmn", **_DI_NAMESPACES, CAMUNDA_NS: "camunda", **{ns: "dmn" for ns in DMN_SCHEMAS}}

# The BPMN XSD reports one problem per wrong element; a file exported by a foreign tool can have
# hundreds of the same kind, and the first few tell the designer what to fix.
MAX_SCHEMA_PROBLEMS = 20
# BPMN elements whose content the XSD leaves open: to elements of other namespaces, or of any.
_OPEN_CONTENT = {"extensionElements": "other", "documentation": "any", "script": "any", "text": "any"}
# Removing the attributes the XSD names lets it look further; a few rounds reach the end of any file.
_ATTRIBUTE_ROUNDS = 3
_UNKNOWN_ATTRIBUTE = re.compile(r"Element '([^']+)', attribute '([^']+)': The attribute '[^']+' is not allowed")
# How many lines a grouped warning lists before '…'.
_LINES_SHOWN = 8

_bpmn_names: frozenset[str] | None = None


def bpmn_element_names() -> frozenset[str]:
    """Every element name the BPMN 2.0 XSD declares, read once from the XSD SpiffWorkflow ships."""
    global _bpmn_names
    if _bpmn_names is None:
        folder = Path(XSD_PATH).parent
        names = set()
        for xsd in ("BPMN20.xsd", "Semantic.xsd"):
            schema = etree.parse(str(folder / xsd))
            names |= {name for e in schema.iter("{http://www.w3.org/2001/XMLSchema}element") if (name := e.get("name"))}
        _bpmn_names = frozenset(names)
    return _bpmn_names


def check_bpmn_schema(validator: BpmnValidator, filename: str,
                      tree: etree._ElementTree) -> tuple[list[DeployProblem], list[DeployProblem]]:
    """(problems, warnings) of a BPMN file against the XSD, after setting vendor extensions aside in place."""
    problems, warnings = set_vendor_elements_aside(filename, tree)
    if problems:
        return problems, []
    validator.preprocess(tree)  # repairs a construct bpmn-js writes, which the parser expects repaired too
    schema = validator.validator
    unknown: list[tuple[etree._Element, str]] = []
    for _ in range(_ATTRIBUTE_ROUNDS):
        if schema.validate(tree):
            return [], warnings + _attribute_warnings(filename, unknown)
        errors, lines = list(schema.error_log), _line_index(tree)
        found = [_unknown_attribute(lines, error) for error in errors]
        others = [error for error, attribute in zip(errors, found, strict=True) if attribute is None]
        if others:  # something else is wrong: that is what the designer hears about
            return _problems(filename, tree, others, "BPMN 2.0"), []
        for element, attribute in filter(None, found):
            element.attrib.pop(attribute, None)
            unknown.append((element, attribute))
    if schema.validate(tree):
        return [], warnings + _attribute_warnings(filename, unknown)
    return _problems(filename, tree, list(schema.error_log), "BPMN 2.0"), []


def schema_problems(validator: BpmnValidator, filename: str, tree: etree._ElementTree,
                    kind_of_file: str) -> list[DeployProblem]:
    """Every XSD violation (up to a cap), each with its line and the nearest element id.

    BpmnValidator.validate raises for the last error only; going through its lxml schema reports all
    of them at once, so a designer does not fix one per upload.
    """
    validator.preprocess(tree)
    schema = validator.validator
    if schema.validate(tree):
        return []
    return _problems(filename, tree, list(schema.error_log), kind_of_file)


def _problems(filename: str, tree: etree._ElementTree, errors: list, kind_of_file: str) -> list[DeployProblem]:
    problems, lines = [], _line_index(tree)
    for error in errors[:MAX_SCHEMA_PROBLEMS]:
        element = _element_at(lines, error.line, error.message)
        problems.append(DeployProblem(filename, f"does not conform to the {kind_of_file} schema: "
                                                f"{_explain_schema_error(error.message, tree)}",
                                      error.line, nearest_id(element)))
    return problems


# --- vendor extensions ---------------------------------------------------------------------------

def set_vendor_elements_aside(filename: str, tree: etree._ElementTree) -> tuple[list[DeployProblem],
                                                                                 list[DeployProblem]]:
    """Remove the elements BPMN 2.0 does not have from the semantic part of `tree`, in place; returns
    (problems, warnings): a problem for one the process refers to, else one warning per kind of element."""
    vendor = list(_vendor_elements(tree.getroot()))
    if not vendor:
        return [], []
    references = _references(tree.getroot(), {id(e) for e in vendor})
    problems = []
    for element in vendor:
        referred = next((ref for ref in _ids_within(element) if ref in references), None)
        if referred is not None:
            problems.append(DeployProblem(
                filename, f"<{_tag_name(element)}> {label(element)} is not an element of BPMN 2.0 (a modeler's "
                          f"extension), and the process refers to it ({references[referred]}): the engine cannot "
                          "run the process without it; model it with a standard task, event or gateway",
                element.sourceline, nearest_id(element)))
    if problems:
        return problems, []
    groups: dict[str, list[etree._Element]] = {}
    for element in vendor:
        groups.setdefault(_tag_name(element), []).append(element)
    warnings = []
    for tag, elements in groups.items():
        first = elements[0]
        warnings.append(DeployProblem(
            filename, f"<{tag}> is not an element of BPMN 2.0 (a modeler's extension outside extensionElements): "
                      f"the engine leaves it out, and the process runs without it{_more(elements, f'<{tag}>')}",
            first.sourceline, nearest_id(first)))
        for element in elements:
            parent = element.getparent()
            if parent is not None:
                parent.remove(element)
    return [], warnings


def _vendor_elements(element: etree._Element, open_to: str = "") -> Iterator[etree._Element]:
    """The topmost elements under `element` that BPMN 2.0 does not have: an unknown name in the BPMN
    namespace, or another namespace where the XSD admits none. The diagram interchange part is left to
    the XSD, and what sits inside open content (extensionElements, documentation) is the vendor's own."""
    for child in element:
        if not isinstance(child.tag, str):
            continue  # comments and processing instructions
        namespace, local = etree.QName(child).namespace, etree.QName(child).localname
        if namespace == BPMN_NS:
            if local not in bpmn_element_names():
                if open_to != "any":
                    yield child
            else:
                yield from _vendor_elements(child, _OPEN_CONTENT.get(local, ""))
        elif namespace not in _DI_NAMESPACES and not open_to:
            yield child


def _ids_within(element: etree._Element) -> list[str]:
    return [found for e in element.iter() if isinstance(e.tag, str) and (found := e.get("id"))]


def _references(root: etree._Element, vendor: set[int]) -> dict[str, str]:
    """{id: where it is referred to} for every id named by an attribute or a reference element of the
    semantic part, outside the vendor elements; the diagram interchange only draws what it names."""
    found: dict[str, str] = {}
    pending = [child for child in root if isinstance(child.tag, str)]
    while pending:
        element = pending.pop()
        if id(element) in vendor or etree.QName(element).namespace in _DI_NAMESPACES:
            continue
        for attribute, value in element.attrib.items():
            if attribute != "id":
                found.setdefault(value, f"{etree.QName(attribute).localname} of {describe(element)}")
        text = (element.text or "").strip()
        if text and len(element) == 0 and etree.QName(element).localname.endswith(("Ref", "coming", "going")):
            parent = element.getparent()
            owner = f" of {describe(parent)}" if parent is not None else ""
            found.setdefault(text, f"<{_tag_name(element)}>{owner}")
        pending.extend(child for child in element if isinstance(child.tag, str))
    return found


def _unknown_attribute(lines: dict[int, list[etree._Element]],
                       error: etree._LogEntry) -> tuple[etree._Element, str] | None:
    """(element, attribute) of an XSD error about an attribute BPMN 2.0 does not have, else None."""
    match = _UNKNOWN_ATTRIBUTE.match(error.message)
    if not match:
        return None
    element = _element_at(lines, error.line, error.message)
    if element is None or element.tag != match.group(1) or match.group(2) not in element.attrib:
        return None
    return element, match.group(2)


def _attribute_warnings(filename: str, unknown: list[tuple[etree._Element, str]]) -> list[DeployProblem]:
    """One warning per kind of element and set of attributes, however many elements have them."""
    per_element: dict[int, tuple[etree._Element, list[str]]] = {}
    for element, attribute in unknown:
        per_element.setdefault(id(element), (element, []))[1].append(_short(attribute))
    groups: dict[tuple[str, tuple[str, ...]], list[etree._Element]] = {}
    for element, attributes in per_element.values():
        groups.setdefault((_tag_name(element), tuple(sorted(set(attributes)))), []).append(element)
    warnings = []
    for (_, names), elements in groups.items():
        first = elements[0]
        listed = ", ".join(f"'{name}'" for name in names[:_LINES_SHOWN]) + (", …" if len(names) > _LINES_SHOWN else "")
        what = f"the attribute {listed} of {describe(first)} is" if len(names) == 1 else \
            f"the {len(names)} attributes {listed} of {describe(first)} are"
        warnings.append(DeployProblem(
            filename, f"{what} not part of BPMN 2.0 (a modeler's extension): the engine ignores "
                      f"{'it' if len(names) == 1 else 'them'}{_more(elements, 'elements with the same')}",
            first.sourceline, nearest_id(first)))
    return sorted(warnings, key=lambda warning: warning.line or 0)


def _more(elements: list[etree._Element], noun: str) -> str:
    """'; the same for 3 more <bpmn:metaData> (lines 12, 14, 19)' when there are several of a kind."""
    if len(elements) < 2:
        return ""
    lines = [str(e.sourceline) for e in elements[1:]]
    shown = ", ".join(lines[:_LINES_SHOWN]) + (", …" if len(lines) > _LINES_SHOWN else "")
    return f"; the same for {len(lines)} more {noun} (lines {shown})"


# --- messages ------------------------------------------------------------------------------------

def _line_index(tree: etree._ElementTree) -> dict[int, list[etree._Element]]:
    """The elements of each source line: one pass over the tree for all the errors of a validation."""
    lines: dict[int, list[etree._Element]] = {}
    for element in tree.iter():
        if isinstance(element.tag, str) and element.sourceline:
            lines.setdefault(element.sourceline, []).append(element)
    return lines


def _element_at(lines: dict[int, list[etree._Element]], line: int, message: str) -> etree._Element | None:
    """The element an XSD error is about: the one on its line whose name the message quotes."""
    quoted = re.match(r"Element '([^']+)'", message)
    candidates = lines.get(line, [])
    for element in candidates:
        if quoted and element.tag == quoted.group(1):
            return element
    return candidates[0] if candidates else None


def _tag_name(element: etree._Element) -> str:
    """bpmn:metaData, or a vendor's element with the prefix the file gives its namespace."""
    name = etree.QName(element)
    if name.namespace in _PREFIXES or not element.prefix:
        return _short(name.text)
    return f"{element.prefix}:{name.localname}"


def _short(text: str) -> str:
    """`{http://www.omg.org/spec/BPMN/20100524/MODEL}task` -> `bpmn:task`, for messages to people."""
    return re.sub(r"\{([^}]*)\}", lambda m: f"{_PREFIXES[m.group(1)]}:" if m.group(1) in _PREFIXES
                  else m.group(0), text)


def _explain_schema_error(message: str, tree: etree._ElementTree) -> str:
    message = _short(message).strip().rstrip(".")
    invalid_id = re.search(r"attribute 'id': '([^']*)' is not a valid value of the atomic type 'xs:ID'", message)
    if invalid_id:
        value = invalid_id.group(1)
        lines = [e.sourceline for e in tree.iter() if isinstance(e.tag, str) and e.get("id") == value]
        if len(lines) > 1:
            return (f"the id '{value}' is used by {len(lines)} elements (lines "
                    f"{', '.join(map(str, lines))}); every element needs an id of its own: rename the others")
        return (f"'{value}' is not a valid id: an id must start with a letter or '_' and contain only "
                "letters, digits, '-', '_' and '.'")
    empty_ref = re.search(r"Element '([^']+)', attribute '([^']+)': '' is not a valid value", message)
    if empty_ref:
        return (f"the attribute '{empty_ref.group(2)}' of <{empty_ref.group(1)}> is empty: set it to the id it "
                "should refer to, or remove the attribute")
    if "is required but missing" in message and "targetNamespace" in message:
        return (f"{message}: add targetNamespace=\"...\" (any URI, e.g. \"http://bpmn.io/schema/bpmn\") to "
                "<bpmn:definitions>")
    # "Expected is one of ( a, b, c, ... )" can list dozens of elements; the first few are enough.
    expected = re.search(r"Expected is (?:one of )?\( ([^)]*) \)", message)
    if expected:
        names = [n.strip() for n in expected.group(1).split(",")]
        shown = ", ".join(names[:5]) + (", …" if len(names) > 5 else "")
        message = message[:expected.start()] + f"Expected here: {shown}"
    return message
