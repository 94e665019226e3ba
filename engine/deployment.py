"""Turn uploaded files into definition versions, or into a list of problems naming file, line and element.

Everything that can be checked is checked here, at deploy time, so that a case never meets a problem a
designer could have been told about: well-formed and safe XML, the BPMN/DMN XSDs, SpiffWorkflow's own
parse, forms that are valid JSON Schemas, call activities whose called process exists, and specs that
the serializer can store and restore.
A deployment is all or nothing: one problem anywhere and nothing is compiled.

Uploads come from any modeler (the conformance corpus in ../shared/corpus holds 581 of them), so every
failure must end as a problem a person can act on, and none may crash or hang the engine.
SpiffWorkflow's messages are terse, some of its failures are bare KeyErrors or reprs of lxml elements,
its exceptions carry the element id but no line, and on a few inputs it loops forever. Hence three
layers: checks on the XML before SpiffWorkflow sees it (`_check_supported`, `_check_data_objects`),
the parse itself with every exception caught, and "Explaining SpiffWorkflow's failures", which turns
what it raises into located, actionable problems.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from lxml import etree
from SpiffWorkflow.bpmn.parser.BpmnParser import BpmnValidator
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.specs.mixins.subworkflow_task import SubWorkflowTask
from SpiffWorkflow.camunda.specs.business_rule_task import BusinessRuleTask
from SpiffWorkflow.dmn.parser.BpmnDmnParser import SCHEMAS as DMN_SCHEMAS

from .compliance import is_compliance_file
from .errors import DefinitionInvalid, TooLarge
from .spec_adjustments import adjust_spec, flow_index
from .spiff_setup import new_parser, spec_to_dict, xsd_validator
from .xml_safety import UnsafeXml, parse_untrusted

log = logging.getLogger(__name__)

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
CAMUNDA_NS = "http://camunda.org/schema/1.0/bpmn"
SPIFF_NS = "http://spiffworkflow.org/bpmn/schema/1.0/core"
# Prefixes used to shorten Clark names ({uri}local) in messages written for people.
_PREFIXES = {BPMN_NS: "bpmn", "http://www.omg.org/spec/BPMN/20100524/DI": "bpmndi",
             "http://www.omg.org/spec/DD/20100524/DC": "dc", "http://www.omg.org/spec/DD/20100524/DI": "di",
             CAMUNDA_NS: "camunda", **{ns: "dmn" for ns in DMN_SCHEMAS}}

# The parser recurses once per element along a path (SPIFF_NOTES pitfall 29); give long but sane
# diagrams room instead of failing at 489 tasks. Within max_elements a path has at most ~2500 tasks,
# about two frames each, so this limit is never the one that stops a diagram we accept.
PARSE_RECURSION_LIMIT = 6000
# The BPMN XSD reports one problem per wrong element; a file exported by a foreign tool can have
# hundreds of the same kind, and the first few tell the designer what to fix.
MAX_SCHEMA_PROBLEMS = 20


@dataclass
class Limits:
    max_file_bytes: int = 2 * 1024 * 1024
    max_files: int = 100
    max_elements: int = 5000


@dataclass
class CompiledDefinition:
    """One executable process, ready to store as an immutable version."""

    key: str
    name: str
    hash: str
    bpmn_file: str
    sources: dict[str, bytes]
    spec: dict
    embedded: dict[str, dict]
    meta: dict = field(default_factory=dict)


def _problem(file: str | None, message: str, line=None, element_id=None) -> dict:
    return {"file": file, "line": line if isinstance(line, int) and line > 0 else None,
            "element_id": element_id or None, "message": message}


class _Bundle:
    """The files of one upload, parsed and indexed so that problems can be located."""

    def __init__(self):
        self.bpmn: dict[str, etree._ElementTree] = {}
        self.dmn: dict[str, etree._ElementTree] = {}
        self.forms: dict[str, dict] = {}
        self.raw: dict[str, bytes] = {}
        self.problems: list[dict] = []
        # file -> element id -> element. Per file, because modelers reuse ids such as StartEvent_1 in
        # every diagram: an id alone does not say which file a problem is in.
        self._elements: dict[str, dict[str, etree._Element]] = {}

    def index_ids(self, filename: str, tree) -> None:
        index = self._elements.setdefault(filename, {})
        for element in tree.iter():
            if isinstance(element.tag, str):
                element_id = element.get("id")
                if element_id and element_id not in index:
                    index[element_id] = element

    def element(self, element_id: str | None, file: str | None = None):
        """(file, element) for an id, looked up in `file` first, then in every file of the upload."""
        if not element_id:
            return file, None
        if file in self._elements and element_id in self._elements[file]:
            return file, self._elements[file][element_id]
        for name, index in self._elements.items():
            if element_id in index:
                return name, index[element_id]
        return file, None

    def in_file(self, file: str | None, element_id: str | None):
        """The element with this id in this file only, as SpiffWorkflow resolves references."""
        return self._elements.get(file, {}).get(element_id) if element_id else None

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


def _load_files(files: list[tuple[str, bytes]], limits: Limits) -> _Bundle:
    bundle = _Bundle()
    if not files:
        bundle.problems.append(_problem(None, "no files were uploaded: send a BPMN document"))
        return bundle
    if len(files) > limits.max_files:
        raise TooLarge(f"{len(files)} files in one deployment; the limit is {limits.max_files}")
    for filename, content in files:
        if filename in bundle.raw:
            bundle.problems.append(_problem(filename, "the same file name appears twice in the upload"))
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


def _load_form(bundle: _Bundle, filename: str, content: bytes) -> None:
    try:
        schema = json.loads(content)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        line = getattr(exc, "lineno", None)
        bundle.problems.append(_problem(filename, f"the form is not valid JSON: {exc}", line))
        return
    if not isinstance(schema, dict):
        bundle.problems.append(_problem(filename, "a form must be a JSON Schema object"))
        return
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        path = "/".join(str(part) for part in exc.absolute_path)
        where = f" at '{path}'" if path else ""
        bundle.problems.append(_problem(filename, f"the form is not a valid JSON Schema (draft 2020-12){where}: "
                                                  f"{exc.message}"))
        return
    bundle.forms[filename] = schema


def _load_xml(bundle: _Bundle, filename: str, content: bytes, limits: Limits):
    try:
        tree = parse_untrusted(content)
    except UnsafeXml as exc:
        bundle.problems.append(_problem(filename, str(exc), exc.line))
        return None
    # Counted before the XSD and the parser run, whose cost grows with the document.
    elements = sum(1 for _ in tree.iter())
    if elements > limits.max_elements:
        raise TooLarge(f"{filename} has {elements} XML elements; the limit is {limits.max_elements}")
    return tree


def _load_dmn(bundle: _Bundle, filename: str, content: bytes, limits: Limits) -> None:
    tree = _load_xml(bundle, filename, content, limits)
    if tree is None:
        return
    root = tree.getroot()
    namespace = etree.QName(root).namespace
    if etree.QName(root).localname != "definitions" or _dmn_validator(namespace or "") is None:
        bundle.problems.append(_problem(filename, "not a DMN document: the root element must be a DMN 1.1–1.3 "
                                                  "<definitions>", root.sourceline))
        return
    with _xsd_lock:
        schema_problems = _schema_problems(_dmn_validator(namespace), filename, tree, "DMN")
    if schema_problems:
        bundle.problems.extend(schema_problems)
        return
    bundle.dmn[filename] = tree
    bundle.index_ids(filename, tree)


def _load_bpmn(bundle: _Bundle, filename: str, content: bytes, limits: Limits) -> None:
    tree = _load_xml(bundle, filename, content, limits)
    if tree is None:
        return
    root = tree.getroot()
    if root.tag != f"{{{BPMN_NS}}}definitions":
        bundle.problems.append(_problem(filename, _not_bpmn_message(root), root.sourceline))
        return
    with _xsd_lock:
        schema_problems = _schema_problems(xsd_validator(), filename, tree, "BPMN 2.0")
    if schema_problems:
        bundle.problems.extend(schema_problems)
        return
    bundle.index_ids(filename, tree)
    unsupported = _check_supported(filename, tree) + _check_data_objects(bundle, filename, tree)
    if unsupported:
        bundle.problems.extend(unsupported)
        return
    bundle.bpmn[filename] = tree


def _not_bpmn_message(root) -> str:
    name = etree.QName(root)
    if name.localname == "definitions" and name.namespace is None:
        return ("the root <definitions> has no namespace, so it is not BPMN 2.0: declare "
                f"xmlns=\"{BPMN_NS}\" (or a bpmn: prefix for that namespace) on it")
    if name.localname == "definitions" and name.namespace in DMN_SCHEMAS:
        return "this is a DMN document, not BPMN: upload it with the file extension .dmn"
    return (f"not a BPMN 2.0 document: the root element is <{name.localname}> in namespace "
            f"'{name.namespace}'; a BPMN file starts with <definitions> in '{BPMN_NS}'")


def _schema_problems(validator: BpmnValidator, filename: str, tree, kind: str) -> list[dict]:
    """Every XSD violation (up to a cap), each with its line and the nearest element id.

    BpmnValidator.validate raises for the last error only; going through its lxml schema reports all
    of them at once, so a designer does not fix one per upload. `preprocess` is kept: it repairs a
    construct bpmn-js writes (SPIFF_NOTES §1), which the parser expects repaired too.
    """
    validator.preprocess(tree)
    schema = validator.validator
    if schema.validate(tree):
        return []
    problems = []
    for error in list(schema.error_log)[:MAX_SCHEMA_PROBLEMS]:
        element = _element_at(tree, error.line, error.message)
        problems.append(_problem(filename, f"does not conform to the {kind} schema: "
                                           f"{_explain_schema_error(error.message, tree)}",
                                 error.line, _nearest_id(element)))
    return problems


def _element_at(tree, line: int, message: str):
    """The element an XSD error is about: the one on its line whose name the message quotes."""
    quoted = re.match(r"Element '([^']+)'", message)
    candidates = [e for e in tree.iter() if isinstance(e.tag, str) and e.sourceline == line]
    for element in candidates:
        if quoted and element.tag == quoted.group(1):
            return element
    return candidates[0] if candidates else None


def _nearest_id(element) -> str | None:
    while element is not None:
        if element.get("id"):
            return element.get("id")
        element = element.getparent()
    return None


def _short(text: str) -> str:
    """`{http://www.omg.org/spec/BPMN/20100524/MODEL}task` -> `bpmn:task`, for messages to people."""
    return re.sub(r"\{([^}]*)\}", lambda m: f"{_PREFIXES[m.group(1)]}:" if m.group(1) in _PREFIXES
                  else m.group(0), text)


def _explain_schema_error(message: str, tree) -> str:
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


def _is_flow_node(element) -> bool:
    """Activities, events and gateways: the elements that become task specs."""
    local = etree.QName(element).localname
    return local.endswith(("Task", "Event", "Gateway", "Process", "task", "callActivity", "transaction"))


def _check_supported(filename: str, tree) -> list[dict]:
    """Constructs SpiffWorkflow fails on without naming an element, or does not notice: find them ourselves.

    CamundaParser reads `camunda:decisionRef` with a bare dict lookup (a KeyError naming only the
    attribute), every <dataStore> fails because no data store implementation is registered, and an
    element id that collides with an internal step name yields a spec that cannot start.
    """
    problems = []
    for task in tree.iter(f"{{{BPMN_NS}}}businessRuleTask"):
        if task.get(f"{{{CAMUNDA_NS}}}decisionRef"):
            continue
        message = (f"business rule task {_label(task)} names no decision: set camunda:decisionRef to the id of "
                   "a decision in a .dmn file of this upload (Camunda Modeler: Implementation \"DMN\", "
                   "Decision reference)")
        spiff_ref = task.find(f".//{{{SPIFF_NS}}}calledDecisionId")
        if spiff_ref is not None and (spiff_ref.text or "").strip():
            message += (f"; its spiffworkflow:calledDecisionId '{spiff_ref.text.strip()}' is not read by this "
                        "engine")
        problems.append(_problem_at(filename, task, message))
    for element in tree.iter(f"{{{BPMN_NS}}}*"):
        element_id = element.get("id") or ""
        if _is_flow_node(element) and (element_id in _RESERVED_IDS or element_id.endswith(_RESERVED_SUFFIXES)):
            local = etree.QName(element).localname
            problems.append(_problem_at(filename, element, f"{_describe(element)} uses an id the engine reserves "
                                                           f"for its own steps: rename the element (e.g. to "
                                                           f"{local[0].upper()}{local[1:]}_1)"))
    for store in tree.iter(f"{{{BPMN_NS}}}dataStore"):
        problems.append(_problem_at(filename, store, f"data store {_label(store)} is not supported: this engine has "
                                                     "no data store implementations; remove the data store and its "
                                                     "references, and keep the data in process variables or a data "
                                                     "object"))
    return problems


_CONTAINERS = {f"{{{BPMN_NS}}}{name}" for name in ("process", "subProcess", "transaction", "adHocSubProcess")}


def _check_data_objects(bundle: _Bundle, filename: str, tree) -> list[dict]:
    """Data associations whose data object SpiffWorkflow cannot find: it would hang, not fail.

    SpiffWorkflow 3.2 looks a data object up in the activity's own (sub)process and then in that one's
    parent, but its loop re-reads the same parent (`current = self.process_parser.parent`), so a data
    object that is in neither, or missing, makes it loop forever for any activity inside a subprocess.
    """
    problems = []
    for path, direction in ((f"{{{BPMN_NS}}}dataInputAssociation/{{{BPMN_NS}}}sourceRef", "reads from"),
                            (f"{{{BPMN_NS}}}dataOutputAssociation/{{{BPMN_NS}}}targetRef", "writes to")):
        for ref in tree.iterfind(f".//{path}"):
            activity = ref.getparent().getparent()
            reference = bundle.in_file(filename, (ref.text or "").strip())
            if reference is None or reference.tag != f"{{{BPMN_NS}}}dataObjectReference":
                continue  # data stores and dangling ids fail in SpiffWorkflow, with a message we explain
            scope = _container(activity)
            if scope is None:
                continue
            visible = [scope] if scope.tag == f"{{{BPMN_NS}}}process" else [scope, _container(scope)]
            object_id = reference.get("dataObjectRef")
            if object_id and any(d.get("id") == object_id for v in visible if v is not None
                                 for d in v.iterchildren(f"{{{BPMN_NS}}}dataObject")):
                continue
            what = f"{_describe(activity)} {direction} data object reference '{reference.get('id')}'"
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
            problems.append(_problem_at(filename, activity, message))
    return problems


def _container(element):
    """The process or subprocess an element is directly part of."""
    element = element.getparent()
    while element is not None and element.tag not in _CONTAINERS:
        element = element.getparent()
    return element


def _problem_at(filename: str, element, message: str) -> dict:
    return _problem(filename, message, element.sourceline, _nearest_id(element))


def _describe(element) -> str:
    """exclusive gateway 'Approved?' (Gateway_1)"""
    return f"{_kind(element)} {_label(element)}"


def _label(element=None, name: str | None = None, element_id: str | None = None) -> str:
    """'Approve request' (Activity_1): how messages name an element."""
    if element is not None:
        name, element_id = element.get("name"), element.get("id")
    name = " ".join((name or "").split())  # modelers put line breaks in names
    if name and element_id:
        return f"'{name}' ({element_id})"
    return f"'{name or element_id or '?'}'"


_KINDS = {"subProcess": "subprocess", "adHocSubProcess": "ad-hoc subprocess", "process": "process"}


def _kind(element=None, tag: str | None = None) -> str:
    """exclusiveGateway -> 'exclusive gateway', for 'the exclusive gateway ...'."""
    local = etree.QName(element).localname if element is not None else (tag or "").split(":")[-1]
    if local in _KINDS:
        return _KINDS[local]
    return re.sub(r"(?<!^)([A-Z])", lambda m: " " + m.group(1).lower(), local) or "element"


# --- compiling --------------------------------------------------------------------------------------

_recursion_lock = threading.Lock()
_recursion_users = 0
_recursion_saved = 0


@contextmanager
def _recursion_headroom():
    """Raise the interpreter's recursion limit while any deployment parses.

    The limit is process-wide, so concurrent deployments share one raise: the first raises it, the
    last restores it (restoring per call would pull the limit from under a deployment still parsing).
    """
    global _recursion_users, _recursion_saved
    with _recursion_lock:
        if _recursion_users == 0:
            _recursion_saved = sys.getrecursionlimit()
            sys.setrecursionlimit(max(_recursion_saved, PARSE_RECURSION_LIMIT))
        _recursion_users += 1
    try:
        yield
    finally:
        with _recursion_lock:
            _recursion_users -= 1
            if _recursion_users == 0:
                sys.setrecursionlimit(_recursion_saved)


def compile_bundle(files: list[tuple[str, bytes]], deployed_keys: set[str],
                   limits: Limits | None = None) -> list[CompiledDefinition]:
    """Validate and compile an upload. `deployed_keys` are processes already deployed that call
    activities may refer to. Raises DefinitionInvalid listing every problem found. Compliance files
    (.toml) travel in the same uploads but are checked by engine/compliance.py, not here."""
    limits = limits or Limits()
    bundle = _load_files([(name, content) for name, content in files if not is_compliance_file(name)], limits)
    if bundle.problems:
        raise DefinitionInvalid(_summary(bundle.problems), bundle.problems)
    if not bundle.bpmn:
        raise DefinitionInvalid("the upload holds no BPMN file (.bpmn)",
                                [_problem(None, "upload at least one .bpmn file")])

    parser = new_parser()
    with _recursion_headroom():
        return _compile(parser, bundle, deployed_keys)


def _compile(parser, bundle: _Bundle, deployed_keys: set[str]) -> list[CompiledDefinition]:
    problems = bundle.problems
    for filename, tree in bundle.dmn.items():
        try:
            parser.add_dmn_xml(tree.getroot(), filename)
        except Exception as exc:  # noqa: BLE001 - see _spiff_problem: any parser failure is a rejection
            problems.append(_spiff_problem(bundle, exc, filename))
    for filename, tree in bundle.bpmn.items():
        try:
            parser.add_bpmn_xml(tree, filename)
        except Exception as exc:  # noqa: BLE001
            problems.append(_spiff_problem(bundle, exc, filename))
    if problems:
        raise DefinitionInvalid(_summary(problems), problems)

    top_level = {pid for pid, pp in parser.process_parsers.items()
                 if etree.QName(pp.node).localname == "process"}
    executable = [pid for pid in parser.get_process_ids() if pid in top_level]
    if not executable:
        problems = _no_executable_process(bundle)
        raise DefinitionInvalid(_summary(problems), problems)

    compiled = []
    for pid in executable:
        try:
            definition = _compile_process(parser, bundle, pid, top_level, deployed_keys | set(executable))
        except Exception as exc:  # noqa: BLE001
            problems.append(_spiff_problem(bundle, exc, parser.process_parsers[pid].filename))
            continue
        if isinstance(definition, list):
            problems.extend(definition)
        else:
            compiled.append(definition)
    if problems:
        raise DefinitionInvalid(_summary(problems), problems)
    return compiled


def _no_executable_process(bundle: _Bundle) -> list[dict]:
    """One problem per process that could run if marked executable, or one saying there is none."""
    problems = []
    for filename, tree in bundle.bpmn.items():
        for process in tree.getroot().iterchildren(f"{{{BPMN_NS}}}process"):
            problems.append(_problem(
                filename, f"process {_label(process)} is not executable, and the upload has no executable "
                          "process: set isExecutable=\"true\" on the process to run (bpmn.io and Camunda "
                          "Modeler default to false; in the modeler tick \"Executable\")",
                process.sourceline, process.get("id")))
    if not problems:
        filename, tree = next(iter(bundle.bpmn.items()))
        root = tree.getroot()
        problems.append(_problem(filename, "the upload contains no <process> (a diagram with only a collaboration "
                                           "or choreography cannot run): model the process itself",
                                 root.sourceline, root.get("id")))
    return problems


def _compile_process(parser, bundle: _Bundle, pid: str, top_level: set[str], callable_keys: set[str]):
    spec = parser.get_spec(pid)
    process_parser = parser.process_parsers[pid]
    problems: list[dict] = []

    # Walk the process and the subprocesses embedded in it; called top-level processes are their own
    # definitions, pinned per case at start, so that each is deployed and versioned once.
    embedded: dict = {}
    calls: set[str] = set()
    pending = [spec]
    all_specs = []
    while pending:
        current = pending.pop()
        all_specs.append(current)
        for task_spec in current.task_specs.values():
            if not isinstance(task_spec, SubWorkflowTask):
                continue
            called = task_spec.spec
            if called in top_level or called not in parser.process_parsers:
                if called not in callable_keys:
                    file, element = bundle.element(task_spec.bpmn_id, current.file)
                    problems.append(_problem(
                        file, f"call activity {_label(element, name=task_spec.bpmn_name, element_id=task_spec.bpmn_id)}"
                              f" calls process '{called}', which is neither in this upload nor deployed: add "
                              f"the file that defines process '{called}' to the upload, deploy it first, or "
                              "correct calledElement",
                        _line(element), task_spec.bpmn_id))
                calls.add(called)
            elif called not in embedded:
                embedded[called] = parser.get_spec(called)
                pending.append(embedded[called])

    flows: dict[str, dict[str, str]] = {}
    for current in all_specs:
        for element_id, message in adjust_spec(current):
            file, element = bundle.element(element_id, current.file)
            problems.append(_problem(file, f"{_describe(element) if element is not None else element_id}: {message}",
                                     _line(element), element_id))
        for source, targets in flow_index(parser.process_parsers[current.name].node).items():
            flows.setdefault(source, {}).update(targets)

    user_tasks, forms_used = [], set()
    decisions: list[dict] = []
    lanes: set[str] = set()
    elements: dict[str, dict] = {}
    for current in all_specs:
        for task_spec in current.task_specs.values():
            bpmn_id = getattr(task_spec, "bpmn_id", None)
            if not bpmn_id:
                continue
            elements[bpmn_id] = {"name": task_spec.bpmn_name, "lane": task_spec.lane,
                                 "type": type(task_spec).__name__}
            if task_spec.lane:
                lanes.add(task_spec.lane)
            if isinstance(task_spec, BusinessRuleTask):
                decisions.append(_decision_of(parser, bundle, current.file, bpmn_id))
            if not task_spec.manual:
                continue
            form_key = getattr(getattr(task_spec, "form", None), "key", None)
            schema = None
            # Only `.json` form keys are ours; Camunda's own keys (embedded:app:…, camunda-forms:…) are
            # left alone so such diagrams still deploy, with an open form.
            if form_key and not form_key.lower().endswith(".json"):
                form_key = None
            if form_key:
                if form_key not in bundle.forms:
                    file, element = bundle.element(bpmn_id, current.file)
                    problems.append(_problem(
                        file, f"user task {_label(element, name=task_spec.bpmn_name, element_id=bpmn_id)} names "
                              f"the form '{form_key}', which is not in the upload: send the JSON Schema file "
                              "with the diagram, or correct camunda:formKey", _line(element), bpmn_id))
                    continue
                schema = bundle.forms[form_key]
                forms_used.add(form_key)
            user_tasks.append({"element_id": bpmn_id, "name": task_spec.bpmn_name, "lane": task_spec.lane,
                               "documentation": task_spec.documentation, "form_key": form_key, "form": schema,
                               "process": current.name})
    if problems:
        return problems

    bpmn_file = process_parser.filename
    dmn_used = {d["file"] for d in decisions if d["file"]}
    sources = {bpmn_file: bundle.raw[bpmn_file]}
    for name in sorted(forms_used | dmn_used):
        sources[name] = bundle.raw[name]
    # The hash covers the exact bytes of every file the version is built from, so re-deploying an
    # identical upload is recognised, and any edit (even whitespace) makes a new version.
    digest = hashlib.sha256()
    for name in sorted(sources):
        digest.update(name.encode() + b"\0" + hashlib.sha256(sources[name]).digest())
    meta = {"user_tasks": user_tasks, "lanes": sorted(lanes), "calls": sorted(calls),
            "elements": elements, "embedded": sorted(embedded), "flows": flows,
            "decisions": sorted(decisions, key=lambda d: (d["element_id"], d["decision_id"] or ""))}
    spec_dict = spec_to_dict(spec)
    embedded_dicts = {name: spec_to_dict(sub) for name, sub in embedded.items()}
    unstorable = _unstorable(bundle, bpmn_file, [spec_dict, *embedded_dicts.values()])
    if unstorable:
        return unstorable
    return CompiledDefinition(
        key=pid, name=process_parser.get_name() or pid, hash=digest.hexdigest(), bpmn_file=bpmn_file,
        sources=sources, spec=spec_dict, embedded=embedded_dicts, meta=meta)


def _unstorable(bundle: _Bundle, file: str, spec_dicts: list[dict]) -> list[dict]:
    """Elements whose spec the serializer could not turn into JSON, so the version could not be stored.

    The serializer leaves objects it has no converter for in the dict instead of failing. Two cases in
    SpiffWorkflow 3.2 (corpus: miwg/C.9.1.bpmn, spiff .../github/bootstrap.bpmn): CamundaParser parses
    send and receive tasks with the plain BPMN message definition, and multi-instance service, send
    and receive tasks with the plain BPMN multi-instance classes, whose converters CAMUNDA_CONFIG
    removes. Without this check json.dumps fails in the store, after validation said yes.
    """
    problems = []
    for spec_dict in spec_dicts:
        for name, task in spec_dict.get("task_specs", {}).items():
            if isinstance(task, dict):
                bad, element_id = _first_non_json(task), task.get("bpmn_id") or name
            else:  # the task spec itself has no converter
                bad, element_id = f"type ({type(task).__name__})", getattr(task, "bpmn_id", None) or name
            if bad is None:
                continue
            file_of, element = bundle.element(element_id, file)
            what = _describe(element) if element is not None else f"'{element_id}'"
            if "MessageEventDefinition" in bad:
                hint = " (use intermediate message throw and catch events instead of send and receive tasks)"
            elif "MultiInstance" in bad:
                hint = " (make it a multi-instance user, manual or script task, or a multi-instance subprocess)"
            else:
                hint = ""
            problems.append(_problem(file_of, f"{what} cannot be stored by this engine: its {bad} has no "
                                              f"serialization; model it differently{hint}",
                                     _line(element), element_id))
    return problems


def _first_non_json(value) -> str | None:
    """'event_definition (MessageEventDefinition)' for the first value JSON cannot hold, else None."""
    pending = [("", value)]
    while pending:
        key, item = pending.pop()
        if isinstance(item, dict):
            pending.extend((str(k), v) for k, v in item.items())
        elif isinstance(item, (list, tuple)):
            pending.extend((key, v) for v in item)
        elif not isinstance(item, (str, int, float, bool, type(None))):
            return f"{key} ({type(item).__name__})"
    return None


def _decision_of(parser, bundle: _Bundle, file: str | None, bpmn_id: str) -> dict:
    """Which decision (and .dmn file) a business rule task evaluates, read from its decisionRef."""
    _, element = bundle.element(bpmn_id, file)
    decision_id = element.get(f"{{{CAMUNDA_NS}}}decisionRef") if element is not None else None
    dmn_parser = parser.dmn_parsers.get(decision_id)
    return {"element_id": bpmn_id, "decision_id": decision_id,
            "file": dmn_parser.filename if dmn_parser is not None else None}


def _line(element) -> int | None:
    return element.sourceline if element is not None else None


# --- explaining SpiffWorkflow's failures ---------------------------------------------------------

def _spiff_problem(bundle: _Bundle, exc: Exception, default_file: str | None) -> dict:
    """A problem for anything the parser raised, located by the element id SpiffWorkflow names.

    Uploads are untrusted and the parser was not written for hostile or foreign input: besides its
    ValidationExceptions it raises KeyError, AttributeError, AssertionError, TypeError,
    NotImplementedError and RecursionError on diagrams it cannot handle. Every one of them means "this upload cannot be
    deployed", so all are turned into problems rather than 500s; the unexpected ones are logged with
    their traceback, because they may also point at a bug of ours.
    """
    element_id = getattr(exc, "id", None) or None
    exc_file = getattr(exc, "file_name", None) or None
    file, element = bundle.element(element_id, exc_file or default_file)
    file = file or exc_file or default_file
    raw = str(exc.args[0]) if exc.args else ""
    # TaskParser wraps any non-validation error as ValidationException(repr(error)); the original
    # is its __context__, and saying what it means beats showing its repr.
    cause = exc
    if isinstance(exc, ValidationException) and exc.__context__ is not None and raw == repr(exc.__context__):
        cause = exc.__context__
    what = _what(element, exc, element_id)
    unresolved = (_explain_missing_reference(what, element, bundle, file)
                  if isinstance(cause, (AssertionError, TypeError)) else None)

    if isinstance(cause, RecursionError):
        message = (f"the process is too long to parse in one piece (the path through {what} is too deep): "
                   "split it into call activities")
    elif isinstance(exc, ValidationException) and cause is exc:
        message = _explain_validation(raw, what, element, bundle, exc)
    elif unresolved:
        message = unresolved
    elif isinstance(cause, NotImplementedError) and "Unsupported Catch Event" in str(cause.args[:1]):
        message = (f"{what} has no event definition the engine can wait for: give the boundary event a timer, "
                   "message, signal, error, escalation, conditional or cancel definition")
    else:
        log.warning("unexpected parser failure in %s (%s)", file, element_id, exc_info=exc)
        message = (f"the engine could not read {what if element_id else 'this diagram'} (SpiffWorkflow failed "
                   f"with {type(cause).__name__}); this construct is not supported: simplify or remove it")
    return _problem(file, message, _line(element), element_id)


def _what(element, exc, element_id) -> str:
    tag = getattr(exc, "tag", None) or None
    if element is not None:
        return _describe(element)
    if element_id:
        return f"{_kind(tag=tag)} {_label(name=getattr(exc, 'name', None), element_id=element_id)}"
    return "the diagram"


# How SpiffWorkflow's fixed messages start, and what to tell the designer instead; {what} names the
# element ("exclusive gateway 'Approved?' (Gateway_1)"). Messages with variable parts follow below.
_REWRITES = [
    ("No start event found",
     "{what} has no start event: add one (a plain start event, or a message or timer start event)"),
    ("A SubWorkflow Must contain an End event", "{what} has no end event: add one inside the subprocess"),
    ("Multiple outgoing flows are not supported",
     "{what} has several outgoing sequence flows, and the engine does not split implicitly after an activity "
     "or event: lead them into a parallel gateway (take all paths) or an exclusive gateway with conditions "
     "(take one path)"),
    ("Non-default exclusive outgoing sequence flow without condition",
     "{what} leaves a gateway without a condition and is not the default flow of that gateway: give it a "
     "condition (a Python expression) or make it the default flow"),
    ("Time Specification Error. Unknown Time Specification",
     "{what} is a timer without a date, duration or cycle: set one, as a Python expression (e.g. \"PT1H\" "
     "in quotes)"),
    ("A multiinstance task must specify a cardinality",
     "{what} is multi-instance but says neither how many instances nor over what: set a loop cardinality or "
     "camunda:collection (with camunda:elementVariable)"),
    ("Invalid Script Task",
     "{what} has no inline script: write the Python code in the task itself (external script resources are "
     "not supported)"),
    ("There is no support implemented for this task type",
     "{what} is of a type this engine does not support: model the behaviour with tasks, events, gateways "
     "(exclusive, parallel, inclusive, event-based) and subprocesses"),
    ('No "calledElement" attribute for Call Activity',
     "{what} does not say which process it calls: set calledElement to the id of that process"),
    ("Conditional event definition with missing condition",
     "{what} is a conditional event without a condition: set its condition (a Python expression)"),
]


def _explain_validation(raw: str, what: str, element, bundle: _Bundle, exc) -> str:
    """SpiffWorkflow's ValidationException texts, each rewritten to say what to change."""
    raw = " ".join(raw.split())
    for start, rewrite in _REWRITES:
        if raw.startswith(start):
            return rewrite.format(what=what)
    if raw.startswith("Exactly one start event is required in a SubWorkflow Task"):
        found = re.search(r"found (\d+)", raw)
        return (f"{what} must contain exactly one start event, but has {found.group(1) if found else 'several'}: "
                "give the subprocess a single plain start event (a collapsed subprocess needs its inner flow "
                "modelled too)")
    if raw.startswith("Time Specification Error"):
        detail = raw[len("Time Specification Error."):].strip().rstrip(".")
        return f"the timer of {what} cannot be read ({detail}): write its expression in Python, e.g. \"PT1H\""
    if raw.startswith("Cannot resolve dataInputAssociation") or raw.startswith("Cannot resolve dataOutputAssociation"):
        return _explain_data_association(raw, what, element)
    if raw.startswith("When looking for a task spec"):
        target = re.search(r"\(([^)]*)\)\s*$", raw)
        return (f"{what} has an outgoing sequence flow to '{target.group(1) if target else '?'}', which is not a "
                "flow node of the same process: reconnect the flow to an element of the process, or delete it")
    duplicate = re.match(r"Duplicate process ID: (.*)", raw)
    if duplicate:
        files = bundle.files_defining(duplicate.group(1))
        where = f" (in {' and '.join(files)})" if len(files) > 1 else ""
        return (f"the id '{duplicate.group(1)}' names more than one process or subprocess{where}: ids of "
                "processes and subprocesses must be unique within one deployment; rename one (and the call "
                "activities that call it)")
    missing_dmn = re.match(r'No DMN Diagram available with id "([^"]*)"', raw)
    if missing_dmn:
        return _explain_missing_decision(missing_dmn.group(1), what, bundle)
    missing_id = re.match(r"(Message|Signal|Error|Escalation|Correlation|Data Store) identifier is missing", raw)
    if missing_id:
        kind = missing_id.group(1).lower()
        return f"a {kind} element has no id: give every <{kind}> an id"
    # A message we have no better words for: SpiffWorkflow's own, naming the element.
    return f"{what}: {raw.rstrip('.')}" if getattr(exc, "id", None) else raw.rstrip(".")


def _explain_data_association(raw: str, what: str, element) -> str:
    """The exception's text is a repr of an lxml element; name the unresolved reference instead."""
    incoming = raw.startswith("Cannot resolve dataInputAssociation")
    path = "dataInputAssociation/bpmn:sourceRef" if incoming else "dataOutputAssociation/bpmn:targetRef"
    refs = []
    if element is not None:
        refs = [(ref.text or "").strip() for ref in element.xpath(f"./bpmn:{path}", namespaces={"bpmn": BPMN_NS})]
    named = ", ".join(f"'{ref}'" for ref in refs if ref) or "an element"
    direction = "reads from" if incoming else "writes to"
    return (f"{what} {direction} {named} through a data association, but that is not a data object of this "
            "process (data stores, and data objects of other processes or pools, are not supported): "
            "connect the association to a data object reference of the same process, or remove it")


def _explain_missing_reference(what: str, element, bundle: _Bundle, file: str | None) -> str | None:
    """Name the messageRef/signalRef/errorRef/escalationRef of `element` that points at nothing.

    SpiffWorkflow does not check these: an unresolved one ends in an AssertionError from its `one()`
    helper or a TypeError from a mistyped call on its error path (corpus: Trisotech writes prefixed
    references such as 'semantic:sid-…', which match no id). None when every reference resolves.
    """
    if element is None:
        return None
    for holder in [element, *element.iter()]:
        for attribute in ("messageRef", "signalRef", "errorRef", "escalationRef"):
            ref = holder.get(attribute)
            if ref and bundle.in_file(file, ref) is None:
                kind = attribute[: -len("Ref")]
                return (f"{what} refers to {kind} '{ref}', which is not defined in this file: point {attribute} "
                        f"at the id of a <bpmn:{kind}> (without a namespace prefix), or define it")
    return None


def _explain_missing_decision(decision_id: str, what: str, bundle: _Bundle) -> str:
    # SpiffWorkflow indexes a DMN file by its first decision only.
    in_files = [name for name in bundle.files_defining(decision_id) if name in bundle.dmn]
    if in_files:
        return (f"{what} calls decision '{decision_id}', which is not the first decision of {in_files[0]}; "
                "the engine can call only the first decision of each DMN file: move it to a file of its own")
    available = []
    for tree in bundle.dmn.values():
        first = tree.getroot().find("{*}decision")
        if first is not None and first.get("id"):
            available.append(first.get("id"))
    listed = ", ".join(f"'{d}'" for d in available) or "none"
    return (f"{what} calls decision '{decision_id}', which no .dmn file of this upload defines (decisions in the "
            f"upload: {listed}): add the DMN file to the upload, or correct camunda:decisionRef")


def _summary(problems: list[dict]) -> str:
    """One sentence for `detail`: the first problem, where it is, and how many more there are."""
    first = problems[0]
    where = ":".join(str(part) for part in (first.get("file"), first.get("line")) if part)
    if first.get("element_id"):
        where = f"{where} ({first['element_id']})".strip()
    location = f"{where}: " if where else ""
    more = f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})" if len(problems) > 1 else ""
    return f"the definition is not valid: {location}{first['message']}{more}"
