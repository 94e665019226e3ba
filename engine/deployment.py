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
itself with every exception caught (here, and deploy_process.py for each executable process), and
deploy_explanations.py, which turns what the parser raises into located, actionable problems. Every
problem is a DeployProblem (deploy_problems.py).
"""
from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from lxml import etree

from .compliance import is_compliance_file
from .deploy_explanations import spiff_problem
from .deploy_files import BPMN_NS, PARSE_RECURSION_LIMIT, Bundle, load_files
from .deploy_problems import DeployProblem, label, refusal
from .deploy_process import CompiledDefinition, compile_process
from .settings import EngineSettings, Limits
from .spiff_setup import Parser, new_parser
from .start_inputs import upload_writes

_recursion_lock = threading.Lock()
_recursion_users = 0
_recursion_saved = 0


@contextmanager
def _recursion_headroom() -> Iterator[None]:
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


def compile_bundle(files: list[tuple[str, bytes]], deployed_keys: set[str], limits: Limits | None = None,
                   max_instances: int = EngineSettings.max_instances) -> list[CompiledDefinition]:
    """Validate and compile an upload. `deployed_keys` are processes already deployed that call
    activities may refer to; `max_instances` is the most instances a multi-instance activity may ask for.
    Raises DefinitionInvalid listing every problem found. Compliance files (.toml) travel in the same
    uploads but are checked by engine/compliance.py, not here."""
    bundle = load_files([(name, content) for name, content in files if not is_compliance_file(name)],
                        limits or Limits())
    if bundle.problems:
        raise refusal(bundle.problems)
    if not bundle.bpmn:
        raise refusal([DeployProblem(None, "upload at least one .bpmn file")], "the upload holds no BPMN file (.bpmn)")

    parser = new_parser()
    with _recursion_headroom():
        return _compile(parser, bundle, deployed_keys, max_instances)


def _compile(parser: Parser, bundle: Bundle, deployed_keys: set[str], max_instances: int) -> list[CompiledDefinition]:
    problems = bundle.problems
    for filename, tree in bundle.dmn.items():
        try:
            parser.add_dmn_xml(tree.getroot(), filename)
        except Exception as exc:  # noqa: BLE001 - see spiff_problem: any parser failure is a rejection
            problems.append(spiff_problem(bundle, exc, filename))
    for filename, tree in bundle.bpmn.items():
        try:
            parser.add_bpmn_xml(tree, filename)
        except Exception as exc:  # noqa: BLE001
            problems.append(spiff_problem(bundle, exc, filename))
    if problems:
        raise refusal(problems)

    top_level = {pid for pid, pp in parser.process_parsers.items()
                 if etree.QName(pp.node).localname == "process"}
    executable = [pid for pid in parser.get_process_ids() if pid in top_level]
    if not executable:
        raise refusal(_no_executable_process(bundle))

    compiled = []
    written = upload_writes(bundle)
    for pid in executable:
        try:
            definition = compile_process(parser, bundle, pid, top_level, deployed_keys | set(executable),
                                         max_instances, written)
        except Exception as exc:  # noqa: BLE001
            problems.append(spiff_problem(bundle, exc, parser.process_parsers[pid].filename))
            continue
        if isinstance(definition, list):
            problems.extend(definition)
        else:
            definition.warnings = [w.as_dict() for w in bundle.warnings if w.file == definition.bpmn_file]
            compiled.append(definition)
    problems += _call_cycles(bundle, compiled)
    if problems:
        raise refusal(problems)
    return compiled


def _call_cycles(bundle: Bundle, compiled: list[CompiledDefinition]) -> list[DeployProblem]:
    """Call activities that call their own process, directly or through the upload's other processes.

    SpiffWorkflow does not find a process called from within itself when that process runs alone, and
    when it is called from another one it nests the call without end, so the command never returns: a
    case could only fail late for what the upload already says.
    """
    calls = {definition.key: set(definition.meta.get("calls", [])) for definition in compiled}
    problems = []
    for definition in compiled:
        reached, pending = set(), list(calls[definition.key])
        while pending:
            key = pending.pop()
            if key not in reached:
                reached.add(key)
                pending.extend(calls.get(key, ()))
        if definition.key not in reached:
            continue
        file, element = _calling_element(bundle, definition, calls)
        named = definition.name if definition.name != definition.key else None  # unnamed: its id, once
        problems.append(DeployProblem(
            file, f"process {label(name=named, element_id=definition.key)} calls itself (through call "
                  f"activity {label(element)}), which this engine cannot run: repeat the work with a loop or "
                  "a multi-instance activity instead", element.sourceline if element is not None else None,
            element.get("id") if element is not None else definition.key))
    return problems


def _calling_element(bundle: Bundle, definition: CompiledDefinition,
                     calls: dict[str, set[str]]) -> tuple[str, etree._Element | None]:
    """The first call activity of the definition's own file whose called process leads back to it."""
    tree = bundle.bpmn[definition.bpmn_file]
    for process in tree.getroot().iterchildren(f"{{{BPMN_NS}}}process"):
        if process.get("id") != definition.key:
            continue
        for activity in process.iter(f"{{{BPMN_NS}}}callActivity"):
            called, seen = activity.get("calledElement"), set()
            pending = [called] if called else []
            while pending:
                key = pending.pop()
                if key == definition.key:
                    return definition.bpmn_file, activity
                if key not in seen:
                    seen.add(key)
                    pending.extend(calls.get(key, ()))
    return definition.bpmn_file, None


def _no_executable_process(bundle: Bundle) -> list[DeployProblem]:
    """One problem per process that could run if marked executable, or one saying there is none."""
    problems = []
    for filename, tree in bundle.bpmn.items():
        for process in tree.getroot().iterchildren(f"{{{BPMN_NS}}}process"):
            problems.append(DeployProblem(
                filename, f"process {label(process)} is not executable, and the upload has no executable "
                          "process: set isExecutable=\"true\" on the process to run (bpmn.io and Camunda "
                          "Modeler default to false; in the modeler tick \"Executable\")",
                process.sourceline, process.get("id")))
    if not problems:
        filename, tree = next(iter(bundle.bpmn.items()))
        root = tree.getroot()
        problems.append(DeployProblem(filename, "the upload contains no <process> (a diagram with only a "
                                                "collaboration or choreography cannot run): model the process "
                                                "itself", root.sourceline, root.get("id")))
    return problems
