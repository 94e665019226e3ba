"""A gateway whose conditions are XPath on a data object (BPMN 2.0's default expression language) deploys and
takes the branch the data object says, both ways; XPath outside the subset is refused at deploy, located."""
from __future__ import annotations

import pytest

from usm_engine.engine.errors import DefinitionInvalid
from tests.conftest import FIXTURES

ANYONE = lambda lane: True  # noqa: E731 - authorization is the API's concern, not these tests'
FILE = "xpath_approval.bpmn"


def upload(text: str | None = None) -> list[tuple[str, bytes]]:
    return [(FILE, (text if text is not None else (FIXTURES / FILE).read_text()).encode())]


@pytest.mark.parametrize(("approved", "end"), [(True, "End_Paid"), (False, "End_Returned")])
def test_the_data_object_the_task_writes_picks_the_branch(engine, approved, end):
    engine.deploy(upload(), "designer")
    case, _ = engine.start_case("xpath_approval", "system")
    [task] = case["tasks"]
    assert engine.get_task(task["id"])["form"]["required"] == ["DataObject_Approved"]
    done = engine.complete_task(task["id"], {"DataObject_Approved": approved}, "alice", ANYONE)
    assert done["status"] == "completed"
    ended = [e["element_id"] for e in engine.trail(case["id"], {}) if e["type"] == "event_passed"]
    assert ended[-1] == end


def test_xpath_outside_the_subset_is_refused_at_deploy_with_its_place(engine):
    text = (FIXTURES / FILE).read_text().replace("not(bpmn:getDataObject('approved'))",
                                                 "count(bpmn:getDataObject('approved')) = 0")
    with pytest.raises(DefinitionInvalid) as raised:
        engine.deploy(upload(text), "designer")
    [problem] = raised.value.errors
    assert (problem["file"], problem["element_id"]) == (FILE, "Flow_No")
    assert "XPath (BPMN 2.0's default expression language)" in problem["message"]
    assert "a function call (count(…)) is not translated" in problem["message"]
