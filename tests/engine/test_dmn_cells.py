"""DMN cells in FEEL, as Camunda Modeler's table editor writes them (true/false/null, value lists, ranges,
not(...)), decide as they read: SpiffWorkflow alone failed on `true` when a case reached the decision, never
matched a list, and could not read a range. The stored file stays as uploaded."""
from __future__ import annotations

import pytest

from usm_engine.engine import store
from usm_engine.engine.dmn_cells import as_python
from tests.conftest import fixture_files

FILES = ("dmn_cells/rated.bpmn", "dmn_cells/rate.dmn")


@pytest.mark.parametrize("cell, python", [
    ("true", "True"), ("false", "False"), ("null", "None"),
    ('"EU","CH"', " in ('EU', 'CH')"), ("1, 2.5, -3", " in (1, 2.5, -3)"),
    ('not("EU")', " not in ('EU',)"), ('not("EU","CH")', " not in ('EU', 'CH',)"),
    ("[0..1000]", "0 <= ? <= 1000"), ("(1000..5000]", "1000 < ? <= 5000"), ("[1 .. 5)", "1 <= ? < 5"),
    # Already the same in Python, or not one of the forms: left as written.
    ('"EU"', None), ("< 10", None), ("10", None), ("-", None), ("amount * 2", None), ("[a..b]", None),
])
def test_a_feel_cell_reads_as_its_python(cell, python):
    assert as_python(cell) == python


def test_an_output_cell_has_only_its_literals_read():
    assert (as_python("false", output=True), as_python('"a","b"', output=True)) == ("False", None)


@pytest.mark.parametrize("data, rate, review", [
    ({"member": True, "region": "CH", "amount": 1000}, "member-europe-small", False),
    ({"member": True, "region": "US", "amount": 1000.5}, "member-world-medium", True),
    ({"member": True, "region": "EU", "amount": 1000.5}, "other", True),  # a list's value is not "not" it
    ({"member": False, "region": "EU", "amount": 99}, "guest-tiny", None),
    ({"member": False, "region": "EU", "amount": 100}, "other", True),
])
def test_the_decision_takes_the_rule_its_feel_cells_say(engine, data, rate, review):
    engine.deploy(fixture_files(*FILES), "designer")
    case, _ = engine.start_case("rated", "system", data=data)
    assert (case["status"], case["data"]["rate"], case["data"]["review"]) == ("completed", rate, review)


def test_the_stored_decision_file_is_the_one_uploaded(engine):
    engine.deploy(fixture_files(*FILES), "designer")
    with engine.db.reader.connect() as conn:
        row = store.find_definition(conn, "rated", 1)
        stored = store.definition_file(conn, row.id, "dmn_cells/rate.dmn")
    assert stored == dict(fixture_files(*FILES))["dmn_cells/rate.dmn"]  # `true`, lists and ranges as written
