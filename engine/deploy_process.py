"""One executable process of a parsed upload: checked against what the engine can run and store, and
packaged as a definition version. Part of deployment (see deployment.py)."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from SpiffWorkflow.bpmn.parser.ProcessParser import ProcessParser
from SpiffWorkflow.bpmn.specs.bpmn_process_spec import BpmnProcessSpec
from SpiffWorkflow.bpmn.specs.defaults import ServiceTask
from SpiffWorkflow.bpmn.specs.mixins.subworkflow_task import SubWorkflowTask
from SpiffWorkflow.camunda.specs.business_rule_task import BusinessRuleTask
from SpiffWorkflow.specs.base import TaskSpec

from .deploy_files import BPMN_NS, CAMUNDA_NS, Bundle
from .deploy_ids import designer_id
from .deploy_problems import DeployProblem, describe, label, source_line
from .deploy_syntax import syntax_warnings
from .deploy_warnings import JSON_FORM, user_task_warnings
from .multi_instance import literal_cardinality
from .spec_adjustments import adjust_spec, flow_index
from .start_inputs import spec_writes, start_inputs, with_inputs_of_called
from .spiff_forms import FORM_PROPERTY, spiff_form_file
from .spiff_setup import Parser, spec_to_dict
from .task_outputs import data_links, with_declared_outputs
from .worker_tasks import connector_warning, literal_parameters, worker_topic

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
    warnings: list[dict] = field(default_factory=list)  # of its file: what deploys, but not as drawn


@dataclass
class _Walk:
    """A process with the subprocesses embedded in it, and the processes it calls."""

    specs: list[BpmnProcessSpec]
    embedded: dict[str, BpmnProcessSpec]
    calls: set[str]


@dataclass
class _Tasks:
    """What the task specs of a process tell its version's meta."""

    user_tasks: list[dict] = field(default_factory=list)
    forms_used: set[str] = field(default_factory=set)
    external_tasks: list[dict] = field(default_factory=list)
    decisions: list[dict] = field(default_factory=list)
    lanes: set[str] = field(default_factory=set)
    elements: dict[str, dict] = field(default_factory=dict)


def compile_process(parser: Parser, bundle: Bundle, pid: str, top_level: set[str], callable_keys: set[str],
                    max_instances: int, written: set[str]) -> CompiledDefinition | list[DeployProblem]:
    """The top-level process `pid` as a version, or the problems that stop it. `callable_keys` are the
    processes a call activity may call (deployed before, or executable in this upload); `max_instances`
    the most instances a multi-instance activity may ask for; `written` every name the upload sets
    (start_inputs.upload_writes)."""
    process_parser = parser.process_parsers[pid]
    problems: list[DeployProblem] = []
    for what, text in (("id", pid), ("name", process_parser.get_name())):
        if text and len(text) > MAX_NAME_LENGTH:
            file, element = bundle.element(pid, process_parser.filename)
            problems.append(DeployProblem(file, f"the process {what} is {len(text)} characters long; the limit is "
                                                f"{MAX_NAME_LENGTH}", source_line(element), pid[:MAX_NAME_LENGTH]))
    walk = _walk(parser, bundle, parser.get_spec(pid), top_level, callable_keys, problems)
    flows = _adjust(parser, walk.specs)
    tasks = _tasks(parser, bundle, walk.specs, problems)
    _instance_ceiling(bundle, walk.specs, max_instances, problems)
    bundle.warn(syntax_warnings(bundle, walk.specs))
    if problems:
        return problems
    inputs: dict = {}
    if walk.calls <= set(parser.process_parsers):  # what a process deployed before sets is not known here
        written = written.union(*(spec_writes(spec) for spec in walk.specs))
        inputs, warnings = start_inputs(bundle, walk.specs, written, process_parser.filename)
        bundle.warn(warnings)
        # SpiffWorkflow gives a called process its caller's data: what it reads that nothing sets comes with
        # the caller's case too (the called definition's own deploy warns of each read).
        for specs in _called(parser, walk.calls, top_level):
            passed, _ = start_inputs(bundle, specs, written.union(*(spec_writes(spec) for spec in specs)),
                                     process_parser.filename)
            inputs = with_inputs_of_called(inputs, passed)
    return _package(bundle, pid, process_parser, walk, flows, tasks, inputs)


def _called(parser: Parser, calls: set[str], top_level: set[str]) -> list[list[BpmnProcessSpec]]:
    """Each process the calls reach in this upload, directly or through the processes they call, with the
    subprocesses embedded in it."""
    found: list[list[BpmnProcessSpec]] = []
    pending, seen = sorted(calls), set(calls)
    while pending:
        specs = [parser.get_spec(pending.pop())]
        for current in specs:
            for task_spec in current.task_specs.values():
                called = task_spec.spec if isinstance(task_spec, SubWorkflowTask) else None
                if called is None or called not in parser.process_parsers or called in seen:
                    continue
                seen.add(called)
                if called in top_level:
                    pending.append(called)
                else:
                    specs.append(parser.get_spec(called))
        found.append(specs)
    return found


def _walk(parser: Parser, bundle: Bundle, spec: BpmnProcessSpec, top_level: set[str], callable_keys: set[str],
          problems: list[DeployProblem]) -> _Walk:
    """The process and the subprocesses embedded in it. Called top-level processes are their own
    definitions, pinned per case at start, so that each is deployed and versioned once."""
    walk = _Walk([], {}, set())
    pending = [spec]
    while pending:
        current = pending.pop()
        _show_designer_ids(current)
        walk.specs.append(current)
        for task_spec in current.task_specs.values():
            if not isinstance(task_spec, SubWorkflowTask):
                continue
            called = task_spec.spec
            if called in top_level or called not in parser.process_parsers:
                if called not in callable_keys:
                    file, element = bundle.element(task_spec.bpmn_id, current.file)
                    name = label(element, name=task_spec.bpmn_name, element_id=task_spec.bpmn_id)
                    problems.append(DeployProblem(
                        file, f"call activity {name} calls process '{called}', which is neither in this upload nor "
                              f"deployed: add the file that defines process '{called}' to the upload, deploy it "
                              "first, or correct calledElement", source_line(element), task_spec.bpmn_id))
                walk.calls.add(called)
            elif called not in walk.embedded:
                walk.embedded[called] = parser.get_spec(called)
                pending.append(walk.embedded[called])
    return walk


def _show_designer_ids(spec: BpmnProcessSpec) -> None:
    """Give back the ids deploy_ids.py marked for the parser: what people see is the designer's id."""
    for task_spec in spec.task_specs.values():
        if getattr(task_spec, "bpmn_id", None):
            task_spec.bpmn_id = designer_id(task_spec.bpmn_id)


def _adjust(parser: Parser, specs: list[BpmnProcessSpec]) -> dict[str, dict[str, str]]:
    """Adjust the specs to run as drawn (spec_adjustments.py); returns the sequence flows by source."""
    flows: dict[str, dict[str, str]] = {}
    for current in specs:
        node = parser.process_parsers[current.name].node
        adjust_spec(current, node)
        for source, targets in flow_index(node).items():
            flows.setdefault(designer_id(source), {}).update(
                {designer_id(target): flow for target, flow in targets.items()})
    return flows


def _instance_ceiling(bundle: Bundle, specs: list[BpmnProcessSpec], max_instances: int,
                      problems: list[DeployProblem]) -> None:
    """Multi-instance activities whose loop cardinality is a number above the ceiling: every case reaching
    one would be refused, so the designer hears it now. Expressions and collections are counted when a
    case begins the activity (multi_instance.py). A literal collection cannot be written: the Camunda
    flavour reads loopCardinality as a number or the name of a collection, camunda:collection as a name."""
    for current in specs:
        for task_spec in current.task_specs.values():
            asked = literal_cardinality(task_spec)
            if asked is None or asked <= max_instances:
                continue
            file, element = bundle.element(task_spec.bpmn_id, current.file)
            what = describe(element) if element is not None else f"'{task_spec.bpmn_id}'"
            where = element.find(f"{{{BPMN_NS}}}multiInstanceLoopCharacteristics/{{{BPMN_NS}}}loopCardinality") \
                if element is not None else None
            problems.append(DeployProblem(
                file, f"{what} asks for {asked} instances (its loop cardinality); the limit is {max_instances} "
                      "(setting USM_MAX_INSTANCES): split the work into batches of at most that many, or have an "
                      "operator raise USM_MAX_INSTANCES",
                source_line(where if where is not None else element), task_spec.bpmn_id))


def _tasks(parser: Parser, bundle: Bundle, specs: list[BpmnProcessSpec], problems: list[DeployProblem]) -> _Tasks:
    tasks = _Tasks()
    for current in specs:
        for task_spec in current.task_specs.values():
            bpmn_id = getattr(task_spec, "bpmn_id", None)
            if not bpmn_id:
                continue
            tasks.elements[bpmn_id] = {"name": task_spec.bpmn_name, "lane": task_spec.lane,
                                       "type": type(task_spec).__name__}
            for what, text in (("id", bpmn_id), ("name", task_spec.bpmn_name), ("lane name", task_spec.lane)):
                if text and len(text) > MAX_NAME_LENGTH:
                    file, element = bundle.element(bpmn_id, current.file)
                    named = describe(element) if element is not None else bpmn_id
                    problems.append(DeployProblem(file, f"the {what} of {named} is {len(text)} characters long; "
                                                        f"the limit is {MAX_NAME_LENGTH}",
                                                  source_line(element), bpmn_id[:MAX_NAME_LENGTH]))
            if task_spec.lane:
                tasks.lanes.add(task_spec.lane)
            if isinstance(task_spec, BusinessRuleTask):
                tasks.decisions.append(_decision_of(parser, bundle, current.file, bpmn_id))
            if isinstance(task_spec, ServiceTask):
                external = _external_task(bundle, current, bpmn_id, problems)
                if external:
                    tasks.external_tasks.append(external)
            if task_spec.manual:
                _user_task(bundle, current, task_spec, tasks, problems)
    return tasks


def _user_task(bundle: Bundle, current: BpmnProcessSpec, task_spec: TaskSpec, tasks: _Tasks,
               problems: list[DeployProblem]) -> None:
    """A user or manual task, with the form (JSON Schema) it names."""
    bpmn_id = task_spec.bpmn_id
    form_key = getattr(getattr(task_spec, "form", None), "key", None)
    file, element = bundle.element(bpmn_id, current.file)
    if element is not None:
        bundle.warn(user_task_warnings(file, element, task_spec.lane, form_key))
    schema = None
    # Only `.json` form keys are ours; Camunda's own keys (embedded:app:…, camunda-forms:…) are
    # left alone so such diagrams still deploy, with an open form and a warning saying so.
    if form_key and not form_key.lower().endswith(JSON_FORM):
        form_key = None
    if not form_key and element is not None:
        form_key = _spiff_form(bundle, file, element)
    if form_key:
        if form_key not in bundle.forms:
            problems.append(DeployProblem(
                file, f"user task {label(element, name=task_spec.bpmn_name, element_id=bpmn_id)} names "
                      f"the form '{form_key}', which is not in the upload: send the JSON Schema file "
                      "with the diagram, or correct camunda:formKey", source_line(element), bpmn_id))
            return
        schema = bundle.forms[form_key]
        tasks.forms_used.add(form_key)
    links = data_links(element, lambda ref: bundle.element(ref, file)[1]) if element is not None else {}
    tasks.user_tasks.append({"element_id": bpmn_id, "name": task_spec.bpmn_name, "lane": task_spec.lane,
                             "documentation": task_spec.documentation, "form_key": form_key,
                             "form": with_declared_outputs(schema, task_spec, links), "process": current.name,
                             **({"data_links": links} if links else {})})


def _spiff_form(bundle: Bundle, file: str | None, element: Any) -> str | None:
    """The form a user task names the SpiffWorkflow modeler's way, when the upload carries it (spiff_forms.py)."""
    named = spiff_form_file(element)
    if named is None or named in bundle.forms:
        return named
    bundle.warn([DeployProblem(file, f"{describe(element)} names the form '{named}' (spiffworkflow:property "
                                     f"{FORM_PROPERTY}), which is not in the upload: the task takes any data; send "
                                     "the JSON Schema file with the diagram to have what is entered checked",
                               source_line(element), element.get("id"))])
    return None


def _external_task(bundle: Bundle, current: BpmnProcessSpec, bpmn_id: str,
                   problems: list[DeployProblem]) -> dict | None:
    """A service task with camunda:type="external" waits for a worker that locks jobs of its topic.
    Other service tasks have no implementation here."""
    file, element = bundle.element(bpmn_id, current.file)
    if element is not None and element.get(f"{{{CAMUNDA_NS}}}type") != "external":
        return _worker_task(bundle, file, element, current.name, bpmn_id)
    if element is None:
        return None
    topic = (element.get(f"{{{CAMUNDA_NS}}}topic") or "").strip()
    if not topic or len(topic) > MAX_NAME_LENGTH:
        problems.append(DeployProblem(
            file, f"external service task {label(element, element_id=bpmn_id)} needs a camunda:topic of 1 to "
                  f"{MAX_NAME_LENGTH} characters: the name workers fetch its jobs by (Camunda Modeler: "
                  "Implementation → External → Topic)", source_line(element), bpmn_id))
        return None
    return {"process": current.name, "element_id": bpmn_id, "topic": topic}


def _worker_task(bundle: Bundle, file: str | None, element: Any, process: str, bpmn_id: str) -> dict | None:
    """A Camunda 8 job or a SpiffWorkflow connector call: an external task on the topic it names (worker_tasks.py)."""
    found = worker_topic(element)
    if found is None:
        return None
    topic, kind = found
    task: dict[str, Any] = {"process": process, "element_id": bpmn_id, "topic": topic}
    if kind != "zeebe":  # a Camunda 8 job is a worker's by nature: exactly what is drawn
        bundle.warn([DeployProblem(file, connector_warning(element, topic, kind), source_line(element), bpmn_id)])
    if kind == "spiff":
        task["parameters"] = literal_parameters(element)
    return task


def _decision_of(parser: Parser, bundle: Bundle, file: str | None, bpmn_id: str) -> dict:
    """Which decision (and .dmn file) a business rule task evaluates, read from its decisionRef."""
    _, element = bundle.element(bpmn_id, file)
    decision_id = element.get(f"{{{CAMUNDA_NS}}}decisionRef") if element is not None else None
    dmn_parser = parser.dmn_parsers.get(decision_id)
    return {"element_id": bpmn_id, "decision_id": decision_id,
            "file": dmn_parser.filename if dmn_parser is not None else None}


def _package(bundle: Bundle, pid: str, process_parser: ProcessParser, walk: _Walk,
             flows: dict[str, dict[str, str]], tasks: _Tasks, inputs: dict) -> CompiledDefinition | list[DeployProblem]:
    """The version: its source files, their hash, its meta and the specs as JSON (if they can be stored)."""
    bpmn_file = process_parser.filename
    dmn_used = {d["file"] for d in tasks.decisions if d["file"]}
    sources = {bpmn_file: bundle.raw[bpmn_file]}
    for name in sorted(tasks.forms_used | dmn_used):
        sources[name] = bundle.raw[name]
    # The hash covers the exact bytes of every file the version is built from, so re-deploying an
    # identical upload is recognised, and any edit (even whitespace) makes a new version.
    digest = hashlib.sha256()
    for name in sorted(sources):
        digest.update(name.encode() + b"\0" + hashlib.sha256(sources[name]).digest())
    # Camunda Modeler's "Startable" box: unticked, the process is meant only to be called by others.
    startable = (process_parser.node.get(f"{{{CAMUNDA_NS}}}isStartableInTasklist") or "true").strip() != "false"
    meta = {"user_tasks": tasks.user_tasks, "external_tasks": tasks.external_tasks, "lanes": sorted(tasks.lanes),
            "calls": sorted(walk.calls), "startable": startable, "elements": tasks.elements,
            "embedded": sorted(walk.embedded), "flows": flows,
            "decisions": sorted(tasks.decisions, key=lambda d: (d["element_id"], d["decision_id"] or "")),
            **({"start_inputs": inputs} if inputs else {})}
    spec_dict = spec_to_dict(walk.specs[0])
    embedded_dicts = {name: spec_to_dict(sub) for name, sub in walk.embedded.items()}
    unstorable = _unstorable(bundle, bpmn_file, [spec_dict, *embedded_dicts.values()])
    if unstorable:
        return unstorable
    return CompiledDefinition(
        key=pid, name=process_parser.get_name() or pid, hash=digest.hexdigest(), bpmn_file=bpmn_file,
        sources=sources, spec=spec_dict, embedded=embedded_dicts, meta=meta)


def _unstorable(bundle: Bundle, file: str, spec_dicts: list[dict]) -> list[DeployProblem]:
    """Elements whose spec the serializer could not turn into JSON, so the version could not be stored.

    The serializer leaves objects it has no converter for in the dict instead of failing: CamundaParser
    parses what it does not override with the plain BPMN classes, some of whose converters CAMUNDA_CONFIG
    removes (send, receive and service tasks, once such a case, are parsed in the Camunda flavour now:
    spiff_setup.py). Without this check json.dumps would fail in the store, after validation said yes.
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
            what = describe(element) if element is not None else f"'{element_id}'"
            problems.append(DeployProblem(file_of, f"{what} cannot be stored by this engine: its {bad} has no "
                                                   "serialization; model it differently",
                                          source_line(element), element_id))
    return problems


def _first_non_json(value: Any) -> str | None:
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
