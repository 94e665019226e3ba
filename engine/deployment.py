"""Turn uploaded files into definition versions, or into a list of problems naming file, line and element.

Everything that can be checked is checked here, at deploy time, so that a case never meets a problem a
designer could have been told about: well-formed and safe XML, the BPMN/DMN XSDs, SpiffWorkflow's own
parse, forms that are valid JSON Schemas, and call activities whose called process exists.
A deployment is all or nothing: one problem anywhere and nothing is compiled.
"""
from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass, field

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from lxml import etree
from SpiffWorkflow.bpmn.parser.BpmnParser import BpmnValidator
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.specs.mixins.subworkflow_task import SubWorkflowTask
from SpiffWorkflow.camunda.specs.business_rule_task import BusinessRuleTask
from SpiffWorkflow.dmn.parser.BpmnDmnParser import SCHEMAS as DMN_SCHEMAS
from SpiffWorkflow.exceptions import SpiffWorkflowException

from .errors import DefinitionInvalid, TooLarge
from .spiff_setup import new_parser, spec_to_dict, xsd_validator
from .xml_safety import UnsafeXml, parse_untrusted

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
# The parser recurses once per element along a path (SPIFF_NOTES pitfall 29); give long but sane
# diagrams room instead of failing at 489 tasks.
PARSE_RECURSION_LIMIT = 6000


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
    problem = {"file": file, "line": line if isinstance(line, int) else None,
               "element_id": element_id or None, "message": message}
    return problem


class _Bundle:
    """The files of one upload, parsed and indexed so that problems can be located."""

    def __init__(self):
        self.bpmn: dict[str, etree._ElementTree] = {}
        self.dmn: dict[str, etree._ElementTree] = {}
        self.forms: dict[str, dict] = {}
        self.raw: dict[str, bytes] = {}
        self.problems: list[dict] = []
        self._lines: dict[str, tuple[str, int]] = {}

    def locate(self, element_id: str | None) -> tuple[str | None, int | None]:
        if element_id and element_id in self._lines:
            return self._lines[element_id]
        return None, None

    def index_ids(self, filename: str, tree) -> None:
        for element in tree.iter():
            if isinstance(element.tag, str):
                element_id = element.get("id")
                if element_id and element_id not in self._lines:
                    self._lines[element_id] = (filename, element.sourceline)


_dmn_validators: dict[str, BpmnValidator] = {}


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
            _load_dmn(bundle, filename, content)
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
        bundle.problems.append(_problem(filename, f"the form is not a valid JSON Schema: {exc.message}"))
        return
    bundle.forms[filename] = schema


def _load_xml(bundle: _Bundle, filename: str, content: bytes):
    try:
        return parse_untrusted(content)
    except UnsafeXml as exc:
        bundle.problems.append(_problem(filename, str(exc), exc.line))
        return None


def _load_dmn(bundle: _Bundle, filename: str, content: bytes) -> None:
    tree = _load_xml(bundle, filename, content)
    if tree is None:
        return
    root = tree.getroot()
    namespace = etree.QName(root).namespace
    if etree.QName(root).localname != "definitions" or _dmn_validator(namespace or "") is None:
        bundle.problems.append(_problem(filename, "not a DMN document: the root element must be a DMN 1.1–1.3 "
                                                  "<definitions>", root.sourceline))
        return
    try:
        _dmn_validator(namespace).validate(root, filename)
    except ValidationException as exc:
        bundle.problems.append(_problem(filename, f"does not conform to the DMN schema: {exc}",
                                        exc.line_number))
        return
    bundle.dmn[filename] = tree
    bundle.index_ids(filename, tree)


def _load_bpmn(bundle: _Bundle, filename: str, content: bytes, limits: Limits) -> None:
    tree = _load_xml(bundle, filename, content)
    if tree is None:
        return
    root = tree.getroot()
    if root.tag != f"{{{BPMN_NS}}}definitions":
        bundle.problems.append(_problem(
            filename, f"not a BPMN 2.0 document: the root element is <{etree.QName(root).localname}> in "
                      f"namespace '{etree.QName(root).namespace}', expected <definitions> in '{BPMN_NS}'",
            root.sourceline))
        return
    elements = sum(1 for _ in root.iter())
    if elements > limits.max_elements:
        raise TooLarge(f"{filename} has {elements} XML elements; the limit is {limits.max_elements}")
    try:
        xsd_validator().validate(tree, filename)
    except ValidationException as exc:
        bundle.problems.append(_problem(filename, f"does not conform to the BPMN 2.0 schema: {exc}",
                                        exc.line_number))
        return
    bundle.bpmn[filename] = tree
    bundle.index_ids(filename, tree)


def _spiff_problem(bundle: _Bundle, exc: Exception, default_file: str | None) -> dict:
    element_id = getattr(exc, "id", None) or None
    file, line = bundle.locate(element_id)
    exc_line = getattr(exc, "line_number", None)
    message = str(exc.args[0]) if getattr(exc, "args", None) else str(exc)
    if isinstance(exc, RecursionError) or "RecursionError" in message:
        message = ("the process is too long to parse in one piece; split it into call activities")
    return _problem(getattr(exc, "file_name", None) or file or default_file, message,
                    exc_line if isinstance(exc_line, int) else line, element_id)


def compile_bundle(files: list[tuple[str, bytes]], deployed_keys: set[str],
                   limits: Limits | None = None) -> list[CompiledDefinition]:
    """Validate and compile an upload. `deployed_keys` are processes already deployed that call
    activities may refer to. Raises DefinitionInvalid listing every problem found."""
    limits = limits or Limits()
    bundle = _load_files(files, limits)
    if bundle.problems:
        raise DefinitionInvalid(_summary(bundle.problems), bundle.problems)
    if not bundle.bpmn:
        raise DefinitionInvalid("the upload holds no BPMN file (.bpmn)",
                                [_problem(None, "upload at least one .bpmn file")])

    parser = new_parser()
    old_limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old_limit, PARSE_RECURSION_LIMIT))
    try:
        return _compile(parser, bundle, deployed_keys)
    finally:
        sys.setrecursionlimit(old_limit)


def _compile(parser, bundle: _Bundle, deployed_keys: set[str]) -> list[CompiledDefinition]:
    problems = bundle.problems
    for filename, tree in bundle.dmn.items():
        try:
            parser.add_dmn_xml(tree.getroot(), filename)
        except (SpiffWorkflowException, ValueError, KeyError, AttributeError, TypeError) as exc:
            problems.append(_spiff_problem(bundle, exc, filename))
    for filename, tree in bundle.bpmn.items():
        try:
            parser.add_bpmn_xml(tree, filename)
        except (SpiffWorkflowException, ValueError, KeyError, AttributeError, TypeError) as exc:
            problems.append(_spiff_problem(bundle, exc, filename))
    if problems:
        raise DefinitionInvalid(_summary(problems), problems)

    top_level = {pid for pid, pp in parser.process_parsers.items()
                 if etree.QName(pp.node).localname == "process"}
    executable = [pid for pid in parser.get_process_ids() if pid in top_level]
    if not executable:
        message = ('no executable process: mark the process to run with isExecutable="true" '
                   '(bpmn.io and Camunda Modeler default to false)')
        raise DefinitionInvalid(message, [_problem(next(iter(bundle.bpmn)), message)])

    compiled = []
    for pid in executable:
        try:
            definition = _compile_process(parser, bundle, pid, top_level, deployed_keys | set(executable))
        except (SpiffWorkflowException, RecursionError, ValueError, KeyError, AttributeError,
                TypeError, NotImplementedError, IndexError, AssertionError) as exc:
            problems.append(_spiff_problem(bundle, exc, parser.process_parsers[pid].filename))
            continue
        if isinstance(definition, list):
            problems.extend(definition)
        else:
            compiled.append(definition)
    if problems:
        raise DefinitionInvalid(_summary(problems), problems)
    return compiled


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
                    file, line = bundle.locate(task_spec.bpmn_id)
                    problems.append(_problem(file, f"call activity '{task_spec.bpmn_name or task_spec.bpmn_id}' "
                                                   f"calls process '{called}', which is neither in this "
                                                   f"upload nor deployed", line, task_spec.bpmn_id))
                calls.add(called)
            elif called not in embedded:
                embedded[called] = parser.get_spec(called)
                pending.append(embedded[called])

    user_tasks, forms_used, dmn_used = [], set(), set()
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
                decision_file = _dmn_file_of(parser, task_spec)
                if decision_file:
                    dmn_used.add(decision_file)
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
                    file, line = bundle.locate(bpmn_id)
                    problems.append(_problem(file, f"user task '{task_spec.bpmn_name or bpmn_id}' names the form "
                                                   f"'{form_key}', which is not in the upload (send the JSON "
                                                   f"Schema file with the diagram)", line, bpmn_id))
                    continue
                schema = bundle.forms[form_key]
                forms_used.add(form_key)
            user_tasks.append({"element_id": bpmn_id, "name": task_spec.bpmn_name, "lane": task_spec.lane,
                               "documentation": task_spec.documentation, "form_key": form_key, "form": schema,
                               "process": current.name})
    if problems:
        return problems

    bpmn_file = process_parser.filename
    sources = {bpmn_file: bundle.raw[bpmn_file]}
    for name in sorted(forms_used | dmn_used):
        sources[name] = bundle.raw[name]
    digest = hashlib.sha256()
    for name in sorted(sources):
        digest.update(name.encode() + b"\0" + hashlib.sha256(sources[name]).digest())
    meta = {"user_tasks": user_tasks, "lanes": sorted(lanes), "calls": sorted(calls),
            "elements": elements, "embedded": sorted(embedded)}
    return CompiledDefinition(
        key=pid, name=process_parser.get_name() or pid, hash=digest.hexdigest(), bpmn_file=bpmn_file,
        sources=sources, spec=spec_to_dict(spec),
        embedded={name: spec_to_dict(sub) for name, sub in embedded.items()}, meta=meta)


def _dmn_file_of(parser, task_spec) -> str | None:
    decision_ids = [d for d, dmn_parser in parser.dmn_parsers.items()
                    if getattr(task_spec.dmnEngine, "decision_table", None) is not None
                    and dmn_parser.decision is not None
                    and dmn_parser.decision.decisionTables
                    and dmn_parser.decision.decisionTables[0] is task_spec.dmnEngine.decision_table]
    if decision_ids:
        return parser.dmn_parsers[decision_ids[0]].filename
    return None


def _summary(problems: list[dict]) -> str:
    first = problems[0]
    where = ":".join(str(part) for part in (first.get("file"), first.get("line")) if part)
    element = f" {first['element_id']}:" if first.get("element_id") else ""
    more = f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})" if len(problems) > 1 else ""
    return f"the definition is not valid: {where}:{element} {first['message']}{more}".replace(": :", ":")
