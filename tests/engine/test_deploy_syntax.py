"""Every script and expression a case could run is compiled at deploy: one the sandbox would not run is a
warning at its element (file, line, id), so the designer hears of it before a case stops there."""
from __future__ import annotations

from tests.conftest import FIXTURES

ANYONE = lambda lane: True  # noqa: E731 - authorization is the API's concern, not these tests'
PREPOST = FIXTURES / "spiff_scripts" / "prepost.bpmn"


def test_a_condition_and_a_post_script_that_are_not_python_are_located_warnings_and_the_case_stops_there(engine):
    text = (PREPOST.read_text().replace("<bpmn:conditionExpression>total &gt; 100</bpmn:conditionExpression>",
                                        "<bpmn:conditionExpression>total over 100</bpmn:conditionExpression>")
            .replace("total = qty * price", "total = qty x price"))
    _, [item] = engine.deploy([("prepost.bpmn", text.encode())], "designer")
    found = [(w["line"], w["element_id"], w["message"]) for w in item["warnings"] if "not Python" in w["message"]]
    assert [(line, element) for line, element, _ in found] == [(9, "Activity_Order"), (16, "Gateway_Total")]
    assert found[0][2].startswith("user task 'Take the order' (Activity_Order): its post-script "
                                  "'total = qty x price' is not Python the sandbox runs (")
    assert found[1][2].endswith("a case that reaches it stops there with an incident; correct it, or write it "
                                "in Python")
    case, _ = engine.start_case("spiff_prepost", "system", data={"customer": "Ann", "items": []})
    failed = engine.complete_task(case["tasks"][0]["id"], {"qty": 1, "price": 2}, "alice", ANYONE)
    assert failed["status"] == "error" and failed["incident"]["element_id"] == "Activity_Order"


def test_python_scripts_and_expressions_give_no_such_warning(engine):
    _, [item] = engine.deploy([("prepost.bpmn", PREPOST.read_bytes())], "designer")
    assert not [w for w in item["warnings"] if "not Python" in w["message"]]
