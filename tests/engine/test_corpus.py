"""The conformance corpus: every externally authored BPMN file in ../shared/corpus is deployed or
rejected with clear problems, and never crashes the engine.

581 files from the OMG MIWG test suite, SpiffWorkflow and spiff-arena models, Camunda examples and
Modeler fixtures, and bpmn-js/bpmn-moddle fixtures (malformed, XXE and script probes included); see
shared/corpus/SOURCES.md. `-s` prints the table of deployed vs rejected files and rejection reasons.
"""
from __future__ import annotations

import functools
import json
import re
import time
from collections import Counter
from pathlib import Path

import pytest
from SpiffWorkflow.bpmn import BpmnWorkflow

from engine.deployment import CompiledDefinition, compile_bundle
from engine.errors import DefinitionInvalid, TooLarge
from engine.spiff_setup import spec_from_dict

# shared/ sits beside the repository (this file is <repo>/tests/engine/test_corpus.py), here and in CI.
CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"
CORPUS_FILES = sorted(CORPUS.rglob("*.bpmn")) if CORPUS.is_dir() else []

# What a message for a person must never contain: Python internals leaking through.
LEAKS = re.compile(r"<Element|NoneType|Traceback|object at 0x|\bFile \"|Error\(['\"]")
# Problems about the file as a whole (XML, safety, schema, root element) need no element id.
FILE_LEVEL = ("not well-formed XML", "DOCTYPE", "the file is", "elements are nested", "not a BPMN",
              "the root <definitions>", "this is a DMN document", "does not conform to the", "the upload contains no")

_PROCESS_ID = re.compile(rb"<(?:[\w.-]+:)?process\b[^>]*?\sid=\"([^\"]+)\"")
_CALLED = re.compile(rb"calledElement=\"([^\"]+)\"")


def _bundle_for(path: Path) -> list[tuple[str, bytes]]:
    """The file alone; with call activities or business rule tasks, also what they need from its folder.

    That is every .dmn file of the folder, and for each called process id the first (by name) sibling
    .bpmn that defines it, followed transitively. Taking *every* sibling instead would bundle unrelated
    models (miwg/ holds 21 reference models sharing ids like WFP-6-), and most files would then only be
    rejected for duplicate process ids.
    """
    content = path.read_bytes()
    bundle = [(path.name, content)]
    if b"callActivity" not in content and b"businessRuleTask" not in content:
        return bundle
    siblings = sorted(p for p in path.parent.iterdir() if p != path and p.suffix in (".bpmn", ".dmn"))
    bundle += [(p.name, p.read_bytes()) for p in siblings if p.suffix == ".dmn"]
    defines = {p: set(_PROCESS_ID.findall(p.read_bytes())) for p in siblings if p.suffix == ".bpmn"}
    have = set(_PROCESS_ID.findall(content))
    wanted = sorted(set(_CALLED.findall(content)) - have)
    while wanted:
        called = wanted.pop(0)
        provider = next((p for p, ids in defines.items() if called in ids), None)
        if provider is None or any(name == provider.name for name, _ in bundle):
            continue
        provided = provider.read_bytes()
        bundle.append((provider.name, provided))
        have |= defines[provider]
        wanted += sorted(set(_CALLED.findall(provided)) - have - set(wanted))
    return bundle


@functools.lru_cache(maxsize=None)
def _outcome(path: Path):
    """(uploaded names, compiled definitions or the exception, seconds); shared by both tests."""
    bundle = _bundle_for(path)
    started = time.perf_counter()
    try:
        result = compile_bundle(bundle, set())
    except (DefinitionInvalid, TooLarge) as exc:
        result = exc
    return [name for name, _ in bundle], result, time.perf_counter() - started


def _check_problem(problem: dict, names: list[str]) -> None:
    message = problem.get("message")
    assert isinstance(message, str) and message.strip(), problem
    assert not LEAKS.search(message), f"Python internals in a message for people: {message}"
    assert problem.get("file") in names, f"problem names a file that was not uploaded: {problem}"
    line = problem.get("line")
    assert line is None or (isinstance(line, int) and line >= 1), problem
    if not message.startswith(FILE_LEVEL):
        assert problem.get("element_id"), f"a problem about an element must name it: {problem}"


def _check_round_trip(definition: CompiledDefinition) -> None:
    for part in (definition.spec, definition.embedded, definition.meta):
        json.dumps(part)  # the store keeps them as JSON text
    spec = spec_from_dict(definition.spec)
    embedded = {name: spec_from_dict(sub) for name, sub in definition.embedded.items()}
    workflow = BpmnWorkflow(spec, embedded)
    assert workflow.spec.name == definition.key
    assert definition.bpmn_file in definition.sources and definition.hash


@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: str(p.relative_to(CORPUS)))
def test_corpus_file_deploys_or_is_rejected_clearly(path: Path):
    names, result, seconds = _outcome(path)
    assert seconds < 5, f"compiling took {seconds:.1f} s"
    if isinstance(result, TooLarge):
        assert result.detail
        return
    if isinstance(result, DefinitionInvalid):
        assert isinstance(result.detail, str) and result.detail.strip()
        assert not LEAKS.search(result.detail)
        assert result.errors, "a rejection must list its problems"
        for problem in result.errors:
            _check_problem(problem, names)
        return
    assert result, "compile_bundle returned no definition and raised nothing"
    for definition in result:
        _check_round_trip(definition)


def _reason(message: str) -> str:
    """A message without its particulars (names, ids, numbers) and without the advice after ': '."""
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "…", message)
    text = re.sub(r" \([^()]*\)", "", text)
    text = re.sub(r"\d+", "N", text)
    parts = text.split(": ")
    keep = 2 if parts[0].startswith(("does not conform to the", "not well-formed XML")) else 1
    return ": ".join(parts[:keep]).strip()


def test_corpus_summary(tmp_path_factory):
    assert CORPUS.is_dir(), f"the conformance corpus is missing: expected it at {CORPUS}"
    assert len(CORPUS_FILES) >= 581, f"expected the 581 corpus files, found {len(CORPUS_FILES)}"
    started = time.perf_counter()
    deployed, rejected, too_large = [], [], []
    reasons: Counter = Counter()
    examples: dict[str, str] = {}
    for path in CORPUS_FILES:
        _, result, _ = _outcome(path)
        relative = str(path.relative_to(CORPUS))
        if isinstance(result, TooLarge):
            too_large.append(relative)
        elif isinstance(result, DefinitionInvalid):
            rejected.append(relative)
            for reason in {_reason(problem["message"]) for problem in result.errors}:
                reasons[reason] += 1
                examples.setdefault(reason, relative)
        else:
            deployed.append(relative)
    seconds = time.perf_counter() - started

    folders = sorted({path.relative_to(CORPUS).parts[0] for path in CORPUS_FILES})
    deployed_set = set(deployed)
    lines = [f"# Corpus: {len(CORPUS_FILES)} files, {len(deployed)} deployed, {len(rejected)} rejected, "
             f"{len(too_large)} too large", "", "| folder | files | deployed | rejected |", "|---|---|---|---|"]
    for folder in folders:
        in_folder = [str(p.relative_to(CORPUS)) for p in CORPUS_FILES if p.relative_to(CORPUS).parts[0] == folder]
        ok = sum(1 for name in in_folder if name in deployed_set)
        lines.append(f"| {folder} | {len(in_folder)} | {ok} | {len(in_folder) - ok} |")
    lines += ["", "## Rejection reasons (files whose problems include the reason)", "",
              "| files | reason | example |", "|---|---|---|"]
    lines += [f"| {count} | {reason} | `{examples[reason]}` |" for reason, count in reasons.most_common()]
    table = "\n".join(lines) + "\n"
    out = tmp_path_factory.getbasetemp() / "corpus_summary.md"
    out.write_text(table)
    print(f"\n{table}\n(written to {out}; summary pass {seconds:.1f} s)")

    assert len(deployed) + len(rejected) + len(too_large) == len(CORPUS_FILES)
    # A floor, not a target: fewer deployable files means the engine got stricter by accident.
    assert len(deployed) >= 200, f"only {len(deployed)} corpus files deploy"
