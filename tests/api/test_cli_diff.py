"""`usm diff KEY V1 V2`: what changed between two deployed versions, read from USM_DATABASE_URL, as text
for a person or JSON for a machine, and one clear sentence for a key or version that does not exist."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from usm_engine.api.cli import main
from tests.conftest import FIXTURES


@pytest.fixture
def database(engine, monkeypatch, database_url):
    """Versions 1 and 2 of `order` (tests/fixtures/diff) in the database the command reads."""
    for folder in ("v1", "v2"):
        engine.deploy([(p.name, p.read_bytes()) for p in sorted((FIXTURES / "diff" / folder).iterdir())], "designer")
    monkeypatch.setenv("USM_DATABASE_URL", database_url)
    return engine


def test_text_lists_each_kind_of_change(database):
    result = CliRunner().invoke(main, ["diff", "order", "1", "2"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "order: version 1 → 2"
    for heading in ("elements", "sequence flows", "forms", "conditions, timers and scripts"):
        assert heading in lines
    assert "  + script task Activity_Check 'Check stock'" in lines
    assert "  ~ Flow_Yes: Gateway_Approved → Activity_Record: condition 'approved == True' → " \
           "'approved == True and in_stock'" in lines
    assert "      ~ field quantity: maximum 100 → 50" in lines


def test_json_is_the_engines_dict(database):
    result = CliRunner().invoke(main, ["diff", "order", "1", "2", "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body == database.diff_definition("order", 1, 2)
    assert (body["key"], body["from"], body["to"]) == ("order", 1, 2)
    assert [e["id"] for e in body["elements"]["removed"]] == ["EndEvent_Rejected"]


def test_the_same_version_twice_has_no_differences(database):
    result = CliRunner().invoke(main, ["diff", "order", "2", "2"])
    assert result.exit_code == 0
    assert result.output == "order: version 2 → 2\nno differences: both versions are built from the same files\n"
    body = json.loads(CliRunner().invoke(main, ["diff", "order", "2", "2", "--json"]).output)
    assert body["elements"] == {"added": [], "removed": [], "changed": []} and body["conditions"] == []


@pytest.mark.parametrize("arguments, sentence", [
    (["nope", "1", "2"], "Error: no definition with key 'nope' is deployed\n"),
    (["order", "1", "3"], "Error: definition 'order' has no version 3 (it has versions 1 to 2)\n"),
    (["order", "9", "1", "--json"], "Error: definition 'order' has no version 9 (it has versions 1 to 2)\n"),
])
def test_an_unknown_key_or_version_is_one_sentence_and_exit_1(database, arguments, sentence):
    result = CliRunner().invoke(main, ["diff", *arguments])
    assert result.exit_code == 1
    assert result.output == sentence


def test_a_version_must_be_a_number(database):
    result = CliRunner().invoke(main, ["diff", "order", "one", "2"])
    assert result.exit_code == 2
    assert "'one' is not a valid integer" in result.output
