"""References written as QNames with the prefix of the file's own namespace (`messageRef="tns:Message_1"`,
as some modelers save them) resolve to the element of that id; a prefix of another namespace names a file
the engine does not read, and stays refused with its location."""
from __future__ import annotations

import pytest

from usm_engine.engine.errors import DefinitionInvalid
from tests.conftest import FIXTURES, fixture_files

PREFIXED = "camunda/prefixed_message.bpmn"


def test_a_message_referenced_with_the_files_own_prefix_is_waited_for_and_received(engine):
    engine.deploy(fixture_files(PREFIXED), "designer")
    case, _ = engine.start_case("prefixed_message", "system")
    assert case["status"] == "running"
    done = engine.send_message(case["id"], "issue_reported", {"summary": "printer on fire"}, "monitoring")
    assert done["status"] == "completed"
    assert done["data"]["issue_reported"] == {"summary": "printer on fire"}  # under the message's name


def test_the_stored_source_keeps_the_prefix_the_designer_wrote(engine):
    engine.deploy(fixture_files(PREFIXED), "designer")
    _, source = engine.definition_source("prefixed_message", 1)
    assert b'messageRef="tns:Message_Issue"' in source


def test_a_prefix_of_another_namespace_stays_unresolved_and_is_refused_with_its_line(engine):
    text = (FIXTURES / PREFIXED).read_text().replace(
        'xmlns:tns="http://usm-engine.org/tests/prefixed"',
        'xmlns:tns="http://usm-engine.org/tests/prefixed" xmlns:other="http://example.org/elsewhere"')
    text = text.replace('messageRef="tns:Message_Issue"', 'messageRef="other:Message_Issue"')
    with pytest.raises(DefinitionInvalid) as refused:
        engine.deploy([("prefixed_message.bpmn", text.encode())], "designer")
    [problem] = refused.value.errors
    assert problem["element_id"] == "Event_IssueReported" and problem["line"] == 8
    assert "'other:Message_Issue', which is not defined in this file" in problem["message"]
