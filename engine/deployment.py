"""Turn uploaded files into definition versions, or into a list of problems naming file, line and element.

Everything that can be checked is checked here, at deploy time, so that a case never meets a problem a
designer could have been told about: well-formed and safe XML, the BPMN/DMN XSDs, SpiffWorkflow's own
parse, forms that are valid JSON Schemas, call activities whose called process exists, and specs that
the serializer can store and restore.
A deployment is all or nothing: one problem anywhere and nothing is compiled.

Uploads come from any modeler (`usm conformance` runs CI over a corpus of 581 of them), so every
failure must end as a problem a person can act on, and none may crash or hang the engine.
SpiffWorkflow's messages are terse, some of its failures are bare KeyErrors or reprs of lxml elements,
its exceptions carry the element id but no line, and on a few inputs it loops forever. Hence three
layers: reading and checking the files before SpiffWorkflow sees them (deploy_files.py), the parse
itself with every exception caught (here), and deploy_explanations.py, which turns what the parser
raises into located, actionable problems.
"""
from __future__ import annotations

import hashlib
import logging
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field

from lxml import etree
from SpiffWorkflow.bpmn.specs.defaults import ServiceTask
from SpiffWorkflow.bpmn.specs.mixins.subworkflow_task import SubWorkflowTask
from SpiffWorkflow.camunda.specs.business_rule_task import BusinessRuleTask

from .compliance import is_compliance_file
from .errors import DefinitionInvalid
from .spec_adjustments import adjust_spec, flow_index
from .spiff_setup import new_parser, spec_to_dict

log = logging.getLogger(__name__)

from .deploy_explanations import _spiff_problem
from .deploy_files import (BPMN_NS, CAMUNDA_NS, PARSE_RECURSION_LIMIT, Limits, _Bundle, _describe, _label, _line,
                           _load_files, _problem)

# Ids, names and lane names are stored in columns of this width.
MAX_NAME_LENGTH = 255


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
    for what, text in (("id", pid), ("name", process_parser.get_name())):
        if text and len(text) > MAX_NAME_LENGTH:
            file, element = bundle.element(pid, process_parser.filename)
            problems.append(_problem(file, f"the process {what} is {len(text)} characters long; the limit is "
                                           f"{MAX_NAME_LENGTH}", _line(element), pid[:MAX_NAME_LENGTH]))

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
    external_tasks: list[dict] = []
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
            for what, text in (("id", bpmn_id), ("name", task_spec.bpmn_name), ("lane name", task_spec.lane)):
                if text and len(text) > MAX_NAME_LENGTH:
                    file, element = bundle.element(bpmn_id, current.file)
                    problems.append(_problem(file, f"the {what} of {_describe(element) if element is not None else bpmn_id}"
                                                   f" is {len(text)} characters long; the limit is {MAX_NAME_LENGTH}",
                                             _line(element), bpmn_id[:MAX_NAME_LENGTH]))
            if task_spec.lane:
                lanes.add(task_spec.lane)
            if isinstance(task_spec, BusinessRuleTask):
                decisions.append(_decision_of(parser, bundle, current.file, bpmn_id))
            if isinstance(task_spec, ServiceTask):
                external = _external_task(bundle, current, bpmn_id, problems)
                if external:
                    external_tasks.append(external)
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
    # Camunda Modeler's "Startable" box: unticked, the process is meant only to be called by others.
    startable = (process_parser.node.get(f"{{{CAMUNDA_NS}}}isStartableInTasklist") or "true").strip() != "false"
    meta = {"user_tasks": user_tasks, "external_tasks": external_tasks, "lanes": sorted(lanes), "calls": sorted(calls),
            "startable": startable,
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


def _external_task(bundle: _Bundle, current, bpmn_id: str, problems: list) -> dict | None:
    """A service task with camunda:type="external" waits for a worker that fetches its topic
    (POST /api/v1/external-tasks/lock). Other service tasks have no implementation here."""
    file, element = bundle.element(bpmn_id, current.file)
    if element is None or element.get(f"{{{CAMUNDA_NS}}}type") != "external":
        return None
    topic = (element.get(f"{{{CAMUNDA_NS}}}topic") or "").strip()
    if not topic or len(topic) > MAX_NAME_LENGTH:
        problems.append(_problem(
            file, f"external service task {_label(element, element_id=bpmn_id)} needs a camunda:topic of 1 to "
                  f"{MAX_NAME_LENGTH} characters: the name workers fetch its jobs by (Camunda Modeler: "
                  "Implementation → External → Topic)", _line(element), bpmn_id))
        return None
    return {"process": current.name, "element_id": bpmn_id, "topic": topic}


def _decision_of(parser, bundle: _Bundle, file: str | None, bpmn_id: str) -> dict:
    """Which decision (and .dmn file) a business rule task evaluates, read from its decisionRef."""
    _, element = bundle.element(bpmn_id, file)
    decision_id = element.get(f"{{{CAMUNDA_NS}}}decisionRef") if element is not None else None
    dmn_parser = parser.dmn_parsers.get(decision_id)
    return {"element_id": bpmn_id, "decision_id": decision_id,
            "file": dmn_parser.filename if dmn_parser is not None else None}


def _summary(problems: list[dict]) -> str:
    """One sentence for `detail`: the first problem, where it is, and how many more there are."""
    first = problems[0]
    where = ":".join(str(part) for part in (first.get("file"), first.get("line")) if part)
    if first.get("element_id"):
        where = f"{where} ({first['element_id']})".strip()
    location = f"{where}: " if where else ""
    more = f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})" if len(problems) > 1 else ""
    return f"the definition is not valid: {location}{first['message']}{more}"
