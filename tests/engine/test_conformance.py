"""`usm conformance DIR`: every file deployed or refused with problems a person can act on, never a crash.
CI runs it over the 581-file corpus beside the repository (.ci/run); here it runs over a small folder of
our own, and over a file that makes the compiler crash, to show the command reports that as a fault."""
from __future__ import annotations

import json

from click.testing import CliRunner

from usm_engine.api.cli import main
from usm_engine.engine import conformance
from tests.conftest import FIXTURES

FOLDER = FIXTURES / "conformance"


def run(*args: str):
    return CliRunner().invoke(main, ["conformance", str(FOLDER), *args])


def test_each_file_is_deployed_or_refused_with_reasons():
    result = run("--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    outcomes = {r["file"]: r["outcome"] for r in report["results"]}
    assert outcomes == {"broken.bpmn": "refused", "entity.bpmn": "refused", "plain.bpmn": "deployed",
                        "calls/caller.bpmn": "deployed", "calls/orphan.bpmn": "refused",
                        "calls/sibling.bpmn": "deployed"}
    assert report["faults"] == [] and report["crashed"] == 0
    reasons = {r["file"]: r["reasons"] for r in report["results"]}
    assert reasons["entity.bpmn"] == ["DOCTYPE and ENTITY declarations are not allowed in uploaded XML"]
    assert reasons["calls/orphan.bpmn"][0].startswith("call activity … calls process …, which is neither")


def test_the_markdown_report_counts_per_folder():
    result = run()
    assert result.exit_code == 0
    assert result.output.startswith("# Conformance: 6 files, 3 deployed (0 with warnings), 3 refused, 0 too large, "
                                    "0 crashed, 0 faults")
    assert "| calls | 3 | 2 | 1 |" in result.output


def test_too_few_deployed_fails():
    result = run("--min-deployed", "4")
    assert result.exit_code == 1
    assert "3 deployed (at least 4 expected)" in result.output


def test_a_crash_is_a_fault(monkeypatch):
    def explode(bundle, known, *args):
        raise KeyError("decisionRef")

    monkeypatch.setattr(conformance, "compile_bundle", explode)
    result = run("--format", "json")
    assert result.exit_code == 1
    report = json.loads(result.output.split("\n6 faults")[0])
    assert report["crashed"] == 6
    assert report["faults"][0] == "broken.bpmn: crashed: KeyError: 'decisionRef'"
