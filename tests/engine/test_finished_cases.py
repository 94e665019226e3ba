"""A finished case keeps no engine state (most of its row), and nothing an auditor reads needs it: the case,
its trail, the drawing of its path, verification and exports work on it as before, and commands still
refuse it with a sentence."""
from __future__ import annotations

import pytest
from sqlalchemy import text

from usm_engine.engine.errors import Conflict
from tests.conftest import APPROVAL, fixture_files
from tests.engine.test_audit import ANYONE, run_approval


def stored_state(engine, case_id: str) -> str:
    with engine.db.reader.connect() as conn:
        return conn.execute(text("SELECT state FROM cases WHERE id = :id"), {"id": case_id}).scalar_one()


def test_a_completed_case_drops_its_state_and_stays_readable(clocked_engine):
    engine, clock = clocked_engine
    engine_case = run_approval(engine, clock)
    case_id = engine_case["id"]
    assert engine_case["status"] == "completed" and stored_state(engine, case_id) == ""

    assert engine.get_case(case_id)["data"]["approved"] is True
    trail = engine.trail(case_id, {})
    assert trail[-1]["type"] == "case_completed"
    picture = engine.case_diagram(case_id)
    assert "Activity_Decide" in picture["diagrams"][0]["executed"]
    assert engine.verify_trails() == {"ok": True, "cases": 1, "events": len(trail) + 1}  # + the deployment
    assert [e["seq"] for e in engine.export_events(case_id=case_id)] == [e["seq"] for e in trail]
    with pytest.raises(Conflict, match="completed"):
        engine.cancel_case(case_id, "alice")


def test_a_running_case_keeps_its_state_and_a_cancelled_one_drops_it(clocked_engine):
    engine, clock = clocked_engine
    engine.deploy(fixture_files(*APPROVAL), "dana")
    case, _ = engine.start_case("approval", "crm")
    assert stored_state(engine, case["id"]) != ""
    engine.complete_task(case["tasks"][0]["id"], {"item": "pen", "quantity": 3}, "alice", ANYONE)
    assert stored_state(engine, case["id"]) != ""
    assert engine.cancel_case(case["id"], "alice")["status"] == "cancelled"
    assert stored_state(engine, case["id"]) == ""
    assert engine.case_diagram(case["id"])["case"]["status"] == "cancelled"
