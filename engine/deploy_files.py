"""Reading an upload: each file parsed safely, checked against its schema, and indexed so that every
problem can name file, line and element. Part of deployment (see deployment.py)."""
from __future__ import annotations

import json
import logging
import re
import threading

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from lxml import etree
from SpiffWorkflow.bpmn.parser.BpmnParser import BpmnValidator
from SpiffWorkflow.dmn.parser.BpmnDmnParser import SCHEMAS as DMN_SCHEMAS

from .deploy_problems import DeployProblem, describe, label, nearest_id, problem_at
from .errors import TooLarge
from .settings import Limits
from .spec_adjustments import set_data_stores_aside, translate_expressions, unprefix_local_references
from .spiff_setup import xsd_validator
from .xml_safety import UnsafeXml, parse_untrusted

log = logging.getLogger(__name__)

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
CAMUNDA_NS = "http://camunda.org/schema/1.0/bpmn"
SPIFF_NS = "http://spiffworkflow.org/bpmn/schema/1.0/core"
# Prefixes used to shorten Clark names ({uri}local) in messages written for people.
_PREFIXES = {BPMN_NS: "bpmn", "http://www.omg.org/spec/BPMN/20100524/DI": "bpmndi",
             "http://www.omg.org/spec/DD/20100524/DC": "dc", "http://www.omg.org/spec/DD/20100524/DI": "di",
             CAMUNDA_NS: "camunda", **{ns: "dmn" for ns in DMN_SCHEMAS}}

# The parser recurses once per element along a path; give long but sane
# diagrams room instead of failing at 489 tasks. Within max_elements a path has at most ~2500 tasks,
# about two frames each, so this limit is never the one that stops a diagram we accept.
PARSE_RECURSION_LIMIT = 6000
# The BPMN XSD reports one problem per wrong element; a file exported by a foreign tool can have
# hundreds of the same kind, and the first few tell the designer what to fix.
MAX_SCHEMA_PROBLEMS = 20


class Bundle:
    """The files of one upload, parsed and indexed so that problems can be located."""

    def __init__(self) -> None:
        self.bpmn: dict[str, etree._ElementTree] = {}
        self.dmn: dict[str, etree._ElementTree] = {}
        self.forms: dict[str, dict] = {}
        self.raw: dict[str, bytes] = {}
        self.problems: list[DeployProblem] = []
        self.warnings: list[DeployProblem] = []  # what deploys, but not as drawn: said beside the result
        # file -> element id -> element. Per file, because modelers reuse ids such as StartEvent_1 in
        # every diagram: an id alone does not say which file a problem is in.
        self._elements: dict[str, dict[str, etree._Element]] = {}

    def index_ids(self, filename: str, tree: etree._ElementTree) -> None:
        index = self._elements.setdefault(filename, {})
        for element in tree.iter():
            if isinstance(element.tag, str):
                element_id = element.get("id")
                if element_id and element_id not in index:
                    index[element_id] = element

    def element(self, element_id: str | None, file: str | None = None) -> tuple[str | None, etree._Element | None]:
        """(file, element) for an id, looked up in `file` first, then in every file of the upload."""
        if not element_id:
            return file, None
        if file in self._elements and element_id in self._elements[file]:
            return file, self._elements[file][element_id]
        for name, index in self._elements.items():
            if element_id in index:
                return name, index[element_id]
        return file, None

    def in_file(self, file: str | None, element_id: str | None) -> etree._Element | None:
        """The element with this id in this file only, as SpiffWorkflow resolves references."""
        return self._elements.get(file or "", {}).get(element_id) if element_id else None

    def files_defining(self, element_id: str) -> list[str]:
        return [name for name, index in self._elements.items() if element_id in index]


# --- loading and checking the files ------------------------------------------------------------

_dmn_validators: dict[str, BpmnValidator] = {}
# lxml keeps a validator's error log on the validator object, so two deployments validating at once
# would read each other's errors.
_xsd_lock = threading.Lock()


def _dmn_validator(namespace: str) -> BpmnValidator | None:
    if namespace not in DMN_SCHEMAS:
        return None
    if namespace not in _dmn_validators:
        _dmn_validators[namespace] = BpmnValidator(DMN_SCHEMAS[namespace])
    return _dmn_validators[namespace]


def load_files(files: list[tuple[str, bytes]], limits: Limits) -> Bundle:
    bundle = Bundle()
    if not files:
        bundle.problems.append(DeployProblem(None, "no files were uploaded: send a BPMN document"))
        return bundle
    if len(files) > limits.max_files:
        raise TooLarge(f"{len(files)} files in one deployment; the limit is {limits.max_files}")
    for filename, content in files:
        if filename in bundle.raw:
            bundle.problems.append(DeployProblem(filename, "the same file name appears twice in the upload"))
            continue
        if len(content) > limits.max_file_bytes:
            raise TooLarge(f"{filename} is {len(content)} bytes; the limit for a definition file is "
                           f"{limits.max_file_bytes} bytes")
        bundle.raw[filename] = content
        lower = filename.lower()
        if lower.endswith(".json"):
            _load_form(bundle, filename, content)
        elif lower.endswith(".dmn"):
            _load_dmn(bundle, filename, content, limits)
        else:
            _load_bpmn(bundle, filename, content, limits)
    return bundle


def _load_form(bundle: Bundle, filename: str, content: bytes) -> None:
    try:
        schema = json.loads(content)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        line = getattr(exc, "lineno", None)
        bundle.problems.append(DeployProblem(filename, f"the form is not valid JSON: {exc}", line))
        return
    if not isinstance(schema, dict):
        bundle.problems.append(DeployProblem(filename, "a form must be a JSON Schema object"))
        return
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        path = "/".join(str(part) for part in exc.absolute_path)
        where = f" at '{path}'" if path else ""
        bundle.problems.append(DeployProblem(filename, f"the form is not a valid JSON Schema (draft 2020-12){where}: "
                                                       f"{exc.message}"))
        return
    bundle.forms[filename] = schema


def _load_xml(bundle: Bundle, filename: str, content: bytes, limits: Limits) -> etree._ElementTree | None:
    try:
        tree = parse_untrusted(content)
    except UnsafeXml as exc:
        bundle.problems.append(DeployProblem(filename, str(exc), exc.line))
        return None
    # Counted before the XSD and the parser run, whose cost grows with the document.
    elements = sum(1 for _ in tree.iter())
    if elements > limits.max_elements:
        raise TooLarge(f"{filename} has {elements} XML elements; the limit is {limits.max_elements}")
    return tree


def _load_dmn(bundle: Bundle, filename: str, content: bytes, limits: Limits) -> None:
    tree = _load_xml(bundle, filename, content, limits)
    if tree is None:
        return
    root = tree.getroot()
    validator = _dmn_validator(etree.QName(root).namespace or "")
    if etree.QName(root).localname != "definitions" or validator is None:
        bundle.problems.append(DeployProblem(filename, "not a DMN document: the root element must be a DMN 1.1–1.3 "
                                                       "<definitions>", root.sourceline))
        return
    with _xsd_lock:
        schema_problems = _schema_problems(validator, filename, tree, "DMN")
    if schema_problems:
        bundle.problems.extend(schema_problems)
        return
    bundle.dmn[filename] = tree
    bundle.index_ids(filename, tree)


def _load_bpmn(bundle: Bundle, filename: str, content: bytes, limits: Limits) -> None:
    tree = _load_xml(bundle, filename, content, limits)
    if tree is None:
        return
    root = tree.getroot()
    if root.tag != f"{{{BPMN_NS}}}definitions":
        bundle.problems.append(DeployProblem(filename, _not_bpmn_message(root), root.sourceline))
        return
    with _xsd_lock:
        schema_problems = _schema_problems(xsd_validator(), filename, tree, "BPMN 2.0")
    if schema_problems:
        bundle.problems.extend(schema_problems)
        return
    unprefix_local_references(tree)
    bundle.index_ids(filename, tree)  # before setting data stores aside: problems still find their lines
    bundle.warnings.extend(set_data_stores_aside(filename, tree))
    # Also translates JUEL and FEEL expressions in place, before the parser reads them.
    unsupported = (_check_supported(filename, tree) + _check_data_objects(bundle, filename, tree)
                   + translate_expressions(filename, tree))
    if unsupported:
        bundle.problems.extend(unsupported)
        return
    bundle.bpmn[filename] = tree


def _not_bpmn_message(root: etree._Element) -> str:
    name = etree.QName(root)
    if name.localname == "definitions" and name.namespace is None:
        return ("the root <definitions> has no namespace, so it is not BPMN 2.0: declare "
                f"xmlns=\"{BPMN_NS}\" (or a bpmn: prefix for that namespace) on it")
    if name.localname == "definitions" and name.namespace in DMN_SCHEMAS:
        return "this is a DMN document, not BPMN: upload it with the file extension .dmn"
    return (f"not a BPMN 2.0 document: the root element is <{name.localname}> in namespace "
            f"'{name.namespace}'; a BPMN file starts with <definitions> in '{BPMN_NS}'")


def _schema_problems(validator: BpmnValidator, filename: str, tree: etree._ElementTree,
                     kind: str) -> list[DeployProblem]:
    """Every XSD violation (up to a cap), each with its line and the nearest element id.

    BpmnValidator.validate raises for the last error only; going through its lxml schema reports all
    of them at once, so a designer does not fix one per upload. `preprocess` is kept: it repairs a
    construct bpmn-js writes, which the parser expects repaired too.
    """
    validator.preprocess(tree)
    schema = validator.validator
    if schema.validate(tree):
        return []
    problems = []
    for error in list(schema.error_log)[:MAX_SCHEMA_PROBLEMS]:
        element = _element_at(tree, error.line, error.message)
        problems.append(DeployProblem(filename, f"does not conform to the {kind} schema: "
                                                f"{_explain_schema_error(error.message, tree)}",
                                      error.line, nearest_id(element)))
    return problems


def _element_at(tree: etree._ElementTree, line: int, message: str) -> etree._Element | None:
    """The element an XSD error is about: the one on its line whose name the message quotes."""
    quoted = re.match(r"Element '([^']+)'", message)
    candidates = [e for e in tree.iter() if isinstance(e.tag, str) and e.sourceline == line]
    for element in candidates:
        if quoted and element.tag == quoted.group(1):
            return element
    return candidates[0] if candidates else None


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


# SpiffWorkflow keys a process's task specs by element id and adds steps of its own under these names
# (ids ending in a suffix are built from other ids). An element with such an id replaces the internal
# step: the spec then has nothing to run, and every case start fails.
_RESERVED_IDS = {"Start", "End", "Root", "StartEventSplit", "StartEventJoin"}
_RESERVED_SUFFIXES = (".EndJoin", ".BoundaryEventSplit", ".BoundaryEventJoin")


def _is_flow_node(element: etree._Element) -> bool:
    """Activities, events and gateways: the elements that become task specs."""
    local = etree.QName(element).localname
    return local.endswith(("Task", "Event", "Gateway", "Process", "task", "callActivity", "transaction"))


def _check_supported(filename: str, tree: etree._ElementTree) -> list[DeployProblem]:
    """Constructs SpiffWorkflow fails on without naming an element, or does not notice: find them ourselves.

    CamundaParser reads `camunda:decisionRef` with a bare dict lookup (a KeyError naming only the
    attribute), and an element id that collides with an internal step name yields a spec that cannot
    start. (Data stores, which it has no implementation for, are set aside first: spec_adjustments.py.)
    """
    problems = []
    for task in tree.iter(f"{{{BPMN_NS}}}businessRuleTask"):
        if task.get(f"{{{CAMUNDA_NS}}}decisionRef"):
            continue
        message = (f"business rule task {label(task)} names no decision: set camunda:decisionRef to the id of "
                   "a decision in a .dmn file of this upload (Camunda Modeler: Implementation \"DMN\", "
                   "Decision reference)")
        spiff_ref = task.find(f".//{{{SPIFF_NS}}}calledDecisionId")
        spiff_decision = (spiff_ref.text or "").strip() if spiff_ref is not None else ""
        if spiff_decision:
            message += f"; its spiffworkflow:calledDecisionId '{spiff_decision}' is not read by this engine"
        problems.append(problem_at(filename, task, message))
    for element in tree.iter(f"{{{BPMN_NS}}}*"):
        element_id = element.get("id") or ""
        if _is_flow_node(element) and (element_id in _RESERVED_IDS or element_id.endswith(_RESERVED_SUFFIXES)):
            local = etree.QName(element).localname
            problems.append(problem_at(filename, element, f"{describe(element)} uses an id the engine reserves "
                                                          f"for its own steps: rename the element (e.g. to "
                                                          f"{local[0].upper()}{local[1:]}_1)"))
    return problems


_CONTAINERS = {f"{{{BPMN_NS}}}{name}" for name in ("process", "subProcess", "transaction", "adHocSubProcess")}


def _check_data_objects(bundle: Bundle, filename: str, tree: etree._ElementTree) -> list[DeployProblem]:
    """Data associations whose data object SpiffWorkflow cannot find: it would hang, not fail.

    SpiffWorkflow 3.2 looks a data object up in the activity's own (sub)process and then in that one's
    parent, but its loop re-reads the same parent (`current = self.process_parser.parent`), so a data
    object that is in neither, or missing, makes it loop forever for any activity inside a subprocess.
    """
    problems = []
    for path, direction in ((f"{{{BPMN_NS}}}dataInputAssociation/{{{BPMN_NS}}}sourceRef", "reads from"),
                            (f"{{{BPMN_NS}}}dataOutputAssociation/{{{BPMN_NS}}}targetRef", "writes to")):
        for ref in tree.iterfind(f".//{path}"):
            association = ref.getparent()
            activity = association.getparent() if association is not None else None
            reference = bundle.in_file(filename, (ref.text or "").strip())
            if activity is None or reference is None or reference.tag != f"{{{BPMN_NS}}}dataObjectReference":
                continue  # data stores and dangling ids fail in SpiffWorkflow, with a message we explain
            scope = _container(activity)
            if scope is None:
                continue
            visible = [scope] if scope.tag == f"{{{BPMN_NS}}}process" else [scope, _container(scope)]
            object_id = reference.get("dataObjectRef")
            if object_id and any(d.get("id") == object_id for v in visible if v is not None
                                 for d in v.iterchildren(f"{{{BPMN_NS}}}dataObject")):
                continue
            what = f"{describe(activity)} {direction} data object reference '{reference.get('id')}'"
            data_object = bundle.in_file(filename, object_id)
            if not object_id:
                message = f"{what}, which names no data object: set its dataObjectRef"
            elif data_object is None or data_object.tag != f"{{{BPMN_NS}}}dataObject":
                message = (f"{what}, whose data object '{object_id}' is not defined: define it, or reconnect "
                           "the reference")
            else:
                message = (f"{what}, whose data object '{object_id}' is defined too far out: the engine sees only "
                           "the data objects of the activity's own (sub)process and of its direct parent: define "
                           "the data object there")
            problems.append(problem_at(filename, activity, message))
    return problems


def _container(element: etree._Element) -> etree._Element | None:
    """The process or subprocess an element is directly part of."""
    parent = element.getparent()
    while parent is not None and parent.tag not in _CONTAINERS:
        parent = parent.getparent()
    return parent
