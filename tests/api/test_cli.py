"""The `usm` command's own words: help that is not cut off, a clear refusal before a pointless request,
and a verification summary in plain English."""
from __future__ import annotations

from click.testing import CliRunner

from usm_engine.api.cli import main
from tests.conftest import fixture_files


def test_help_lists_every_command_in_whole_sentences():
    result = CliRunner().invoke(main, ["--help"], terminal_width=200)
    assert result.exit_code == 0
    commands = result.output.split("Commands:")[1].strip().splitlines()
    assert len(commands) == 10  # 8, `diff` and `cases`
    for line in commands:
        assert line.rstrip().endswith(".") and "..." not in line, line


def test_deploy_to_a_server_without_a_token_says_what_is_missing(monkeypatch):
    monkeypatch.delenv("USM_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("USM_TOKEN", raising=False)
    result = CliRunner().invoke(main, ["deploy", "definitions", "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 2
    assert "needs a token with the designer role: pass --token, or set USM_TOKEN or USM_ADMIN_TOKEN" in result.output


def test_audit_verify_counts_in_words(engine, monkeypatch, database_url):
    engine.deploy(fixture_files("simple.bpmn"), "designer")
    engine.start_case("simple", "system")
    monkeypatch.setenv("USM_DATABASE_URL", database_url)
    result = CliRunner().invoke(main, ["audit", "verify"])
    assert result.exit_code == 0, result.output
    events = engine.verify_trails()["events"]
    assert result.output == f"ok: every hash chain verifies ({events} events in 1 case and the deployments)\n"
