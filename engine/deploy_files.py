"""Reading an upload: each file parsed safely, checked against its schema, and indexed so that every
problem can name file, line and element. Part of deployment (see deployment.py)."""
from __future__ import annotations

import json
import logging
import threading

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from lxml import etree
from SpiffWorkflow.bpmn.parser.BpmnParser import BpmnValidator
from SpiffWorkflow.dmn.parser.BpmnDmnParser import SCHEMAS as DMN_SCHEMAS

from .data_associations import container_of, pass_or_set_aside
from .deploy_ids import designer_id, reserved_ids, with_internal_ids
from .deploy_empty import set_empty_processes_aside
from .deploy_implicit import start_implicitly
from .deploy_problems import DeployProblem, describe, problem_at
from .deploy_schema import BPMN_NS, CAMUNDA_NS, SPIFF_NS, check_bpmn_schema, schema_problems
from .deploy_tasks import give_tasks_defaults
from .deploy_timers import timers_without_time
from .deploy_tolerances import before_schema, unprefix_bpmn_references
from .deploy_warnings import camunda_findings
from .errors import TooLarge
from .dmn_cells import feel_cells_as_python
from .implicit_splits import split_explicitly
from .settings import Limits
from .spec_adjustments import (
    open_gateway_flows,
    set_data_stores_aside,
    translate_expressions,
    unprefix_local_references,
)
from .spiff_messages import adopt_message_payloads
from .spiff_setup import xsd_validator
from .standard_loops import read_standard_loops
from .xml_safety import UnsafeXml, parse_untrusted

log = logging.getLogger(__name__)

# The parser recurses once per element along a path; give long but sane
# diagrams room instead of failing at 489 tasks. Within max_elements a path has at most ~2500 tasks,
# about two frames each, so this limit is never the one that stops a diagram we accept.
PARSE_RECURSION_LIMIT = 6000


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

    def warn(self, warnings: list[DeployProblem]) -> None:
        """Add warnings, each once: the checks after parsing see an element again for every process that
        embeds or calls it."""
        self.warnings.extend(w for w in warnings if w not in self.warnings)

    def index_ids(self, filename: str, tree: etree._ElementTree) -> None:
        index = self._elements.setdefault(filename, {})
        for element in tree.iter():
            if isinstance(element.tag, str):
                element_id = element.get("id")
                if element_id and element_id not in index:
                    index[element_id] = element

    def element(self, element_id: str | None, file: str | None = None) -> tuple[str | None, etree._Element | None]:
        """(file, element) for an id, looked up in `file` first, then in every file of the upload. An id
        the parser read with the mark of deploy_ids.py finds the element the designer gave that id."""
        if not element_id:
            return file, None
        element_id = designer_id(element_id)
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
        problems = schema_problems(validator, filename, tree, "DMN")
    if problems:
        bundle.problems.extend(problems)
        return
    feel_cells_as_python(tree)  # dmn_cells.py: FEEL's true, lists, ranges and not(...) in table cells
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
    tolerated, restore = before_schema(filename, tree)
    with _xsd_lock:
        problems, warnings = check_bpmn_schema(xsd_validator(), filename, tree)
    restore()
    if problems:
        bundle.problems.extend(problems)
        return
    bundle.warnings.extend(tolerated + warnings)
    unprefix_local_references(tree)
    bundle.warnings.extend(unprefix_bpmn_references(filename, tree))
    bundle.index_ids(filename, tree)  # before setting data stores aside: problems still find their lines
    bundle.warnings.extend(set_data_stores_aside(filename, tree))
    bundle.warnings.extend(pass_or_set_aside(filename, tree))  # data associations: data_associations.py
    bundle.warnings.extend(split_explicitly(filename, tree))  # flows out of activities: implicit_splits.py
    bundle.warnings.extend(set_empty_processes_aside(filename, tree) + give_tasks_defaults(filename, tree))
    _name_decisions(tree)
    adopt_message_payloads(tree)  # before the send task warnings: spiff_messages.py
    task_problems, task_warnings = camunda_findings(filename, tree)
    bundle.warnings.extend(task_warnings + open_gateway_flows(filename, tree) + start_implicitly(filename, tree))
    bundle.warnings.extend(timers_without_time(filename, tree))  # after start_implicitly: see deploy_timers.py
    # Also translates JUEL and FEEL expressions in place, before the parser reads them.
    # Multi-instance in the standard form first: it may add data associations, which the data check covers.
    unsupported = (read_standard_loops(filename, tree) + _check_data_objects(bundle, filename, tree)
                   + task_problems + translate_expressions(filename, tree))
    if unsupported:
        bundle.problems.extend(unsupported)
        return
    reserved = reserved_ids(tree, BPMN_NS)
    bundle.bpmn[filename] = with_internal_ids(tree, reserved) if reserved else tree


def _not_bpmn_message(root: etree._Element) -> str:
    name = etree.QName(root)
    if name.localname == "definitions" and name.namespace is None:
        return ("the root <definitions> has no namespace, so it is not BPMN 2.0: declare "
                f"xmlns=\"{BPMN_NS}\" (or a bpmn: prefix for that namespace) on it")
    if name.localname == "definitions" and name.namespace in DMN_SCHEMAS:
        return "this is a DMN document, not BPMN: upload it with the file extension .dmn"
    return (f"not a BPMN 2.0 document: the root element is <{name.localname}> in namespace "
            f"'{name.namespace}'; a BPMN file starts with <definitions> in '{BPMN_NS}'")


def _name_decisions(tree: etree._ElementTree) -> None:
    """A decision named the way SpiffWorkflow's own modeler does (spiffworkflow:calledDecisionId) is the same
    DMN call as camunda:decisionRef, so it is given to the parser as that, in place. A business rule task
    that names no decision at all is a task with nothing to run (spiff_setup.py, deploy_warnings.py).
    """
    for task in tree.iter(f"{{{BPMN_NS}}}businessRuleTask"):
        if task.get(f"{{{CAMUNDA_NS}}}decisionRef"):
            continue
        spiff_ref = task.find(f"{{{BPMN_NS}}}extensionElements/{{{SPIFF_NS}}}calledDecisionId")
        spiff_decision = (spiff_ref.text or "").strip() if spiff_ref is not None else ""
        if spiff_decision:
            task.set(f"{{{CAMUNDA_NS}}}decisionRef", spiff_decision)


def _check_data_objects(bundle: Bundle, filename: str, tree: etree._ElementTree) -> list[DeployProblem]:
    """Data associations whose data object SpiffWorkflow cannot find: it would hang, not fail.

    SpiffWorkflow 3.2 looks a data object up in the activity's own (sub)process and then in that one's
    parent, but its loop re-reads the same parent (`current = self.process_parser.parent`), so a data
    object that is in neither, or missing, makes it loop forever for any activity inside a subprocess.
    """
    problems = []
    # The tree's own ids, not the bundle's index: data_associations.py adds references after indexing.
    ids: dict[str | None, etree._Element] = {}
    for element in tree.iter():
        if isinstance(element.tag, str) and element.get("id"):
            ids.setdefault(element.get("id"), element)  # the first of a duplicate id, as the bundle's index
    for path, direction in ((f"{{{BPMN_NS}}}dataInputAssociation/{{{BPMN_NS}}}sourceRef", "reads from"),
                            (f"{{{BPMN_NS}}}dataOutputAssociation/{{{BPMN_NS}}}targetRef", "writes to")):
        for ref in tree.iterfind(f".//{path}"):
            association = ref.getparent()
            activity = association.getparent() if association is not None else None
            reference = ids.get((ref.text or "").strip())
            if activity is None or reference is None or reference.tag != f"{{{BPMN_NS}}}dataObjectReference":
                continue  # data stores and dangling ids fail in SpiffWorkflow, with a message we explain
            scope = container_of(activity)
            if scope is None:
                continue
            visible = [scope] if scope.tag == f"{{{BPMN_NS}}}process" else [scope, container_of(scope)]
            object_id = reference.get("dataObjectRef")
            if object_id and any(d.get("id") == object_id for v in visible if v is not None
                                 for d in v.iterchildren(f"{{{BPMN_NS}}}dataObject")):
                continue
            what = f"{describe(activity)} {direction} data object reference '{reference.get('id')}'"
            data_object = ids.get(object_id)
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
