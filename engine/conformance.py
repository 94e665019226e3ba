"""Conformance over a folder of BPMN files written by others: each is deployed (compiled as a deployment
would) or refused with problems a person can act on, and none crashes the engine.

What counts as a fault: an exception other than a refusal; a refusal without problems; a problem
without a message, naming a file that was not uploaded, about an element without naming it, or with
Python internals in its words; a compiled definition that does not restore; more than five seconds for
one file. `usm conformance DIR` prints the report and exits 1 on any fault.

Then each deployed file's startable definitions are started and driven (conformance_run.py), and a case
that crashes the engine is a fault too; `--no-run` leaves that out.
"""
from __future__ import annotations

import json
import re
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from SpiffWorkflow.bpmn import BpmnWorkflow

from . import conformance_cases
from .conformance_run import CaseResult, drive_file, template_database
from .deploy_schema import BPMN_NS
from .deployment import CompiledDefinition, compile_bundle
from .errors import DefinitionInvalid, TooLarge
from .spiff_setup import spec_from_dict
from .xml_safety import UnsafeXml, parse_untrusted

# What a message for a person must never contain: Python internals leaking through.
LEAKS = re.compile(r"<Element|NoneType|Traceback|object at 0x|\bFile \"|Error\(['\"]")
# Problems about the file as a whole (XML, safety, schema, root element) need no element id.
FILE_LEVEL = ("not well-formed XML", "DOCTYPE", "the file is", "elements are nested", "not a BPMN",
              "the root <definitions>", "this is a DMN document", "does not conform to the", "the upload contains no")
SECONDS_PER_FILE = 5

_PROCESS_ID = re.compile(rb"<(?:[\w.-]+:)?process\b[^>]*?\sid=\"([^\"]+)\"")
_CALLED = re.compile(rb"calledElement=\"([^\"]+)\"")
_DECISION_ID = re.compile(rb"<(?:[\w.-]+:)?decision\b[^>]*?\sid=\"([^\"]+)\"")
# camunda:decisionRef, or spiffworkflow:calledDecisionId as SpiffWorkflow's modeler writes it.
_DECIDED = re.compile(rb"decisionRef=\"([^\"]+)\"|calledDecisionId>\s*([^<\s]+)\s*<")


@dataclass
class FileResult:
    file: str                       # relative to the folder
    outcome: str                    # deployed | refused | too large | crashed
    seconds: float
    reasons: list[str] = field(default_factory=list)   # of a refusal, without particulars
    faults: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # of a deployment, without particulars
    executable: bool = False        # has a process marked executable (or not marked): one meant to run


@dataclass
class Report:
    results: list[FileResult]
    cases: list[CaseResult] | None = None   # None: cases were not run (--no-run)
    not_started: int = 0                    # startable definitions only: called ones, several message starts
    run_seconds: float = 0.0

    @property
    def faults(self) -> list[str]:
        return ([f"{r.file}: {fault}" for r in self.results for fault in r.faults]
                + conformance_cases.case_faults(self.cases or []))

    def count(self, outcome: str) -> int:
        return sum(1 for r in self.results if r.outcome == outcome)

    def with_warnings(self) -> int:
        return sum(1 for r in self.results if r.outcome == "deployed" and r.warnings)

    def executable(self, outcome: str | None = None) -> int:
        """Files with a process meant to run (the ones a deployment can succeed for), with this outcome."""
        return sum(1 for r in self.results if r.executable and outcome in (None, r.outcome))

    def as_dict(self) -> dict:
        counts = {outcome: self.count(outcome) for outcome in ("deployed", "refused", "too large", "crashed")}
        return {"files": len(self.results), **counts, "deployed_with_warnings": self.with_warnings(),
                "executable_files": self.executable(), "executable_deployed": self.executable("deployed"),
                "faults": self.faults,
                "results": [r.__dict__ for r in self.results],
                **({} if self.cases is None else
                   {"cases": conformance_cases.as_dict(self.cases, self.not_started, self.run_seconds)})}

    def markdown(self) -> str:
        lines = [f"# Conformance: {len(self.results)} files, {self.count('deployed')} deployed "
                 f"({self.with_warnings()} with warnings), "
                 f"{self.count('refused')} refused, {self.count('too large')} too large, "
                 f"{self.count('crashed')} crashed, {len(self.faults)} faults", "",
                 f"Files with an executable process: {self.executable()}, of which {self.executable('deployed')} "
                 "deployed.", "",
                 "| folder | files | deployed | refused | executable | executable deployed |",
                 "|---|---|---|---|---|---|"]
        by_folder: dict[str, list[FileResult]] = {}
        for result in self.results:
            by_folder.setdefault(result.file.split("/")[0] if "/" in result.file else ".", []).append(result)
        for folder, results in sorted(by_folder.items()):
            deployed = sum(1 for r in results if r.outcome == "deployed")
            executable = [r for r in results if r.executable]
            lines.append(f"| {folder} | {len(results)} | {deployed} | {len(results) - deployed} | {len(executable)} | "
                         f"{sum(1 for r in executable if r.outcome == 'deployed')} |")
        lines += _tally("Refusal reasons (files whose problems include the reason)",
                        [(r.file, r.reasons) for r in self.results])
        lines += _tally("Warnings (deployed files whose warnings include the reason)",
                        [(r.file, r.warnings) for r in self.results if r.outcome == "deployed"])
        if self.cases is not None:
            lines += conformance_cases.markdown(self.cases, self.not_started, self.run_seconds)
        if self.faults:
            lines += ["", "## Faults", ""] + [f"- {fault}" for fault in self.faults]
        return "\n".join(lines) + "\n"


def _tally(title: str, found: list[tuple[str, list[str]]]) -> list[str]:
    """A section counting the files per reason, most frequent first, each with an example file."""
    counts: Counter[str] = Counter()
    examples: dict[str, str] = {}
    for file, reasons in found:
        for reason in set(reasons):
            counts[reason] += 1
            examples.setdefault(reason, file)
    return ["", f"## {title}", "", "| files | reason | example |", "|---|---|---|",
            *(f"| {count} | {reason} | `{examples[reason]}` |" for reason, count in counts.most_common())]


def run(folder: Path, drive: bool = True) -> Report:
    files = sorted(folder.rglob("*.bpmn"))
    processes = ProcessIndex(folder, files)
    report = Report([check(path, folder, processes) for path in files])
    if drive:
        drive_deployed(report, folder, processes)
    return report


class ProcessIndex:
    """Which .bpmn files under the folder define which process ids, read once per run: a call activity
    may call a process kept in another folder of the tree, which a user would upload with it."""

    def __init__(self, folder: Path, files: list[Path]) -> None:
        self.folder = folder
        self.defines = {path: set(_PROCESS_ID.findall(path.read_bytes())) for path in files}
        # A business rule task's decision may be kept in another folder of the tree too.
        self.decides = {path: set(_DECISION_ID.findall(path.read_bytes())) for path in sorted(folder.rglob("*.dmn"))}

    def provider(self, called: bytes, caller: Path) -> Path | None:
        """The file defining process `called` nearest to `caller`: a sibling first, then the one sharing the
        longest part of its path, then the first by name; None when no file defines it."""
        return _nearest([path for path, ids in self.defines.items() if called in ids and path != caller], caller)

    def decision_provider(self, decision: bytes, caller: Path) -> Path | None:
        """The .dmn file defining `decision` nearest to `caller`, as provider() finds a process."""
        return _nearest([path for path, ids in self.decides.items() if decision in ids], caller)


def _nearest(found: list[Path], caller: Path) -> Path | None:
    return min(found, key=lambda path: (-_shared(path.parent, caller.parent), path.as_posix()), default=None)


def _shared(one: Path, other: Path) -> int:
    """How many leading folders two paths share."""
    count = 0
    for a, b in zip(one.parts, other.parts, strict=False):
        if a != b:
            break
        count += 1
    return count


def drive_deployed(report: Report, folder: Path, processes: ProcessIndex | None = None) -> None:
    """Start and drive the cases of every deployed file, each file on an engine of its own."""
    started = time.perf_counter()
    report.cases = []
    with tempfile.TemporaryDirectory(prefix="usm-conformance-") as scratch:
        template = template_database(Path(scratch))
        for result in report.results:
            if result.outcome == "deployed":
                driven = drive_file(bundle_for(folder / result.file, processes), result.file, template)
                report.cases += driven.cases
                report.not_started += len(driven.not_started)
    report.run_seconds = time.perf_counter() - started


def check(path: Path, folder: Path, processes: ProcessIndex | None = None) -> FileResult:
    result = _outcome(path, folder, processes)
    result.executable = has_executable_process(path.read_bytes())
    return result


def has_executable_process(content: bytes) -> bool:
    """Whether the file holds a process SpiffWorkflow takes as executable (isExecutable true or absent)."""
    try:
        root = parse_untrusted(content).getroot()
    except UnsafeXml:
        return False
    return any(process.get("isExecutable", "true") == "true" for process in root.iterchildren(f"{{{BPMN_NS}}}process"))


def _outcome(path: Path, folder: Path, processes: ProcessIndex | None) -> FileResult:
    bundle = bundle_for(path, processes)
    names = [name for name, _ in bundle]
    relative = path.relative_to(folder).as_posix()
    started = time.perf_counter()
    try:
        compiled = compile_bundle(bundle, set())
    except TooLarge as exc:
        result = FileResult(relative, "too large", time.perf_counter() - started,
                            faults=[] if exc.detail else ["refused as too large without saying why"])
    except DefinitionInvalid as exc:
        result = FileResult(relative, "refused", time.perf_counter() - started,
                            reasons=[reason(problem.get("message") or "") for problem in exc.errors],
                            faults=refusal_faults(exc, names))
    except Exception as exc:  # noqa: BLE001 - a crash is what this looks for
        result = FileResult(relative, "crashed", time.perf_counter() - started,
                            faults=[f"crashed: {type(exc).__name__}: {exc}"])
    else:
        result = FileResult(relative, "deployed", time.perf_counter() - started,
                            faults=[fault for definition in compiled for fault in restore_faults(definition)],
                            warnings=sorted({reason(w["message"]) for d in compiled for w in d.warnings}))
    if result.seconds > SECONDS_PER_FILE:
        result.faults.append(f"took {result.seconds:.1f} s (the limit is {SECONDS_PER_FILE})")
    return result


def bundle_for(path: Path, processes: ProcessIndex | None = None) -> list[tuple[str, bytes]]:
    """The file with the form files it names; with call activities or business rule tasks, also what
    they need.

    That is every .dmn file of its folder, and for each called process id the file that defines it,
    followed transitively: a sibling .bpmn first (by name), else, given the run's `processes`, the
    nearest file of the whole folder tree. Taking every sibling instead would bundle unrelated models that
    share process ids, and most files would then only be refused for duplicate ids."""
    content = path.read_bytes()
    bundle = [(path.name, content)]
    # The JSON Schema files its user tasks name (camunda:formKey="x.json"), as an upload would carry them.
    bundle += [(p.name, p.read_bytes()) for p in sorted(path.parent.glob("*.json"))
               if f'"{p.name}"'.encode() in content]
    if b"callActivity" not in content and b"businessRuleTask" not in content:
        return bundle
    siblings = sorted(p for p in path.parent.iterdir() if p != path and p.suffix in (".bpmn", ".dmn"))
    bundle += [(p.name, p.read_bytes()) for p in siblings if p.suffix == ".dmn"]
    defines = {p: set(_PROCESS_ID.findall(p.read_bytes())) for p in siblings if p.suffix == ".bpmn"}
    have = set(_PROCESS_ID.findall(content))
    wanted = sorted(set(_CALLED.findall(content)) - have)
    taken = {path}
    while wanted:
        called = wanted.pop(0)
        provider = next((p for p, ids in defines.items() if called in ids), None)
        if provider is None and processes is not None:
            provider = processes.provider(called, path)
        if provider is None or provider in taken:
            continue
        taken.add(provider)
        provided = provider.read_bytes()
        bundle.append((_upload_name(provider, bundle, processes), provided))
        have |= defines.get(provider) or set(_PROCESS_ID.findall(provided))
        wanted += sorted(set(_CALLED.findall(provided)) - have - set(wanted))
    if processes is not None:
        bundle += _decisions(bundle, path, processes)
    return bundle


def _decisions(bundle: list[tuple[str, bytes]], caller: Path, processes: ProcessIndex) -> list[tuple[str, bytes]]:
    """The .dmn files under the folder that define the decisions the bundle's business rule tasks call and
    none of its .dmn files defines, nearest to `caller` first, as a user would upload them with it."""
    have = {found for name, content in bundle if name.endswith(".dmn") for found in _DECISION_ID.findall(content)}
    wanted = {ref or spiff for name, content in bundle if name.endswith(".bpmn")
              for ref, spiff in _DECIDED.findall(content)} - have
    added: list[tuple[str, bytes]] = []
    for decision in sorted(wanted):
        provider = processes.decision_provider(decision, caller)
        if provider is None or decision in have:
            continue
        have |= processes.decides[provider]
        added.append((_upload_name(provider, bundle + added, processes), provider.read_bytes()))
    return added


def _upload_name(provider: Path, bundle: list[tuple[str, bytes]], processes: ProcessIndex | None) -> str:
    """The file's name in the upload; its path under the folder when another file of the upload has that name."""
    if processes is None or all(name != provider.name for name, _ in bundle):
        return provider.name
    return provider.relative_to(processes.folder).as_posix()


def refusal_faults(exc: DefinitionInvalid, names: list[str]) -> list[str]:
    faults = []
    if not (isinstance(exc.detail, str) and exc.detail.strip()) or LEAKS.search(exc.detail):
        faults.append(f"refusal without a clear sentence: {exc.detail!r}")
    if not exc.errors:
        faults.append("a refusal without problems")
    for problem in exc.errors:
        message = problem.get("message")
        if not (isinstance(message, str) and message.strip()):
            faults.append(f"a problem without a message: {problem}")
            continue
        if LEAKS.search(message):
            faults.append(f"Python internals in a message for people: {message}")
        if problem.get("file") not in names:
            faults.append(f"a problem names a file that was not uploaded: {problem}")
        line = problem.get("line")
        if not (line is None or (isinstance(line, int) and line >= 1)):
            faults.append(f"a problem with an impossible line: {problem}")
        if not message.startswith(FILE_LEVEL) and not problem.get("element_id"):
            faults.append(f"a problem about an element does not name it: {problem}")
    return faults


def restore_faults(definition: CompiledDefinition) -> list[str]:
    try:
        for part in (definition.spec, definition.embedded, definition.meta):
            json.dumps(part)  # the store keeps them as JSON text
        spec = spec_from_dict(definition.spec)
        embedded = {name: spec_from_dict(sub) for name, sub in definition.embedded.items()}
        workflow = BpmnWorkflow(spec, embedded)
    except Exception as exc:  # noqa: BLE001 - a stored version that cannot run is the fault reported
        return [f"'{definition.key}' compiles but does not restore: {type(exc).__name__}: {exc}"]
    if workflow.spec.name != definition.key or definition.bpmn_file not in definition.sources:
        return [f"'{definition.key}' restores as something else"]
    return []


def reason(message: str) -> str:
    """A message without its particulars (names, ids, numbers) and without the advice after ': '."""
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "…", message)
    text = re.sub(r" \([^()]*\)", "", text)
    text = re.sub(r"\d+", "N", text)
    parts = text.split(": ")
    keep = 2 if parts[0].startswith(("does not conform to the", "not well-formed XML")) else 1
    return ": ".join(parts[:keep]).strip()
