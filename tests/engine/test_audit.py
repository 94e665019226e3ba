"""The audit trail records what the engine did, and any change made behind its back shows."""
from __future__ import annotations

from itertools import pairwise

import pytest
from sqlalchemy import text

from usm_engine.engine.clock import FixedClock
from usm_engine.engine.service import Engine, EngineSettings
from tests.conftest import APPROVAL, fixture_files

ANYONE = lambda lane: True  # noqa: E731 - authorization is the API's concern, not these tests'


def run_approval(engine, clock, approved=True):
    engine.deploy(fixture_files(*APPROVAL), "dana")
    clock.advance(minutes=1)
    case, _ = engine.start_case("approval", "crm", data={"ref": 7}, business_key="REQ-7")
    clock.advance(minutes=5)
    case = engine.complete_task(case["tasks"][0]["id"], {"item": "pen", "quantity": 3}, "alice", ANYONE)
    clock.advance(hours=2)
    case = engine.complete_task(case["tasks"][0]["id"], {"approved": approved}, "bob", ANYONE)
    return case


def test_trail_matches_what_happened_event_by_event(clocked_engine):
    engine, clock = clocked_engine
    case = run_approval(engine, clock)
    trail = engine.trail(case["id"], {})
    summary = [(e["seq"], e["type"], e["actor"], e["element_id"], e["lane"], e["data_changes"]) for e in trail]
    assert summary == [
        (1, "case_started", "crm", None, None, {"ref": [None, 7]}),
        (2, "event_passed", "system", "StartEvent_Request", "Requester", {}),
        (3, "task_ready", "system", "Activity_Submit", "Requester", {}),
        (4, "task_completed", "alice", "Activity_Submit", "Requester", {"item": [None, "pen"], "quantity": [None, 3]}),
        (5, "task_ready", "system", "Activity_Decide", "Service manager", {}),
        (6, "task_completed", "bob", "Activity_Decide", "Service manager", {"approved": [None, True]}),
        (7, "gateway_taken", "system", "Gateway_Approved", "Service manager", {}),
        (8, "activity_completed", "system", "Activity_Record", "Service manager",
         {"outcome": [None, "approved"], "total": [None, 30]}),
        (9, "event_passed", "system", "EndEvent_Approved", "Service manager", {}),
        (10, "case_completed", "system", None, None, {}),
    ]
    assert [e["at"] for e in trail] == ["2026-01-01T00:01:00Z"] * 3 + ["2026-01-01T00:06:00Z"] * 2 + \
        ["2026-01-01T02:06:00Z"] * 5
    gateway = trail[6]
    assert gateway["details"]["targets"] == ["Activity_Record"]
    assert gateway["details"]["flows"] == ["Flow_Yes"]
    assert {(e["definition"], e["version"]) for e in trail} == {("approval", 1)}
    assert len({e["definition_hash"] for e in trail}) == 1 and len(trail[0]["definition_hash"]) == 64
    assert trail[0]["details"] == {"business_key": "REQ-7"}
    assert trail[3]["element_name"] == "Submit request"
    # element events say which definition the element belongs to (here always the case's own)
    assert [e.get("element_definition") for e in trail] == [None] + ["approval"] * 8 + [None]
    # hash chain: each event links to the one before it
    assert trail[0]["prev_hash"] == "0" * 64
    assert all(later["prev_hash"] == earlier["hash"] for earlier, later in pairwise(trail))


def test_rejected_path_records_the_other_flow(clocked_engine):
    engine, clock = clocked_engine
    case = run_approval(engine, clock, approved=False)
    gateway = [e for e in engine.trail(case["id"], {}) if e["type"] == "gateway_taken"][0]
    assert gateway["details"]["flows"] == ["Flow_No"]


def test_trail_filters(clocked_engine):
    engine, clock = clocked_engine
    case = run_approval(engine, clock)
    assert [e["seq"] for e in engine.trail(case["id"], {"actor": "alice"})] == [4]
    assert [e["type"] for e in engine.trail(case["id"], {"element": "Activity_Decide"})] == \
        ["task_ready", "task_completed"]


def test_deployments_are_recorded_in_their_own_chain(clocked_engine):
    engine, clock = clocked_engine
    engine.deploy(fixture_files(*APPROVAL), "dana")
    exported = list(engine.export_events())
    assert [(e["type"], e["actor"], e["definition"], e["version"]) for e in exported] == [
        ("definition_deployed", "dana", "approval", 1)]


# --- tampering: each kind of change made directly in the database is detected ------------------------

def _tamper(engine, *statements, **values):
    with engine.db.writer.begin() as conn:
        if engine.db.url.startswith("postgresql"):
            conn.execute(text("ALTER TABLE events DISABLE TRIGGER USER"))
        for statement in statements:
            conn.execute(text(statement), values)
        if engine.db.url.startswith("postgresql"):
            conn.execute(text("ALTER TABLE events ENABLE TRIGGER USER"))


@pytest.fixture
def finished_case(clocked_engine):
    engine, clock = clocked_engine
    case = run_approval(engine, clock)
    assert engine.verify_trails() == {"ok": True, "cases": 1, "events": 11}
    return engine, case["id"]


def test_edited_event_is_detected(finished_case):
    engine, case_id = finished_case
    _tamper(engine, f"UPDATE events SET actor = 'mallory' WHERE chain = '{case_id}' AND seq = 6")
    result = engine.verify_trails()
    assert result["ok"] is False
    assert result["broken"]["case_id"] == case_id and result["broken"]["seq"] == 6
    assert "changed" in result["broken"]["reason"]


def test_edited_data_changes_are_detected(finished_case):
    engine, case_id = finished_case
    _tamper(engine, f"""UPDATE events SET data_changes = '{{"approved": [null, false]}}'
                        WHERE chain = '{case_id}' AND seq = 6""")
    assert engine.verify_trails()["broken"]["seq"] == 6


def test_deleted_event_is_detected(finished_case):
    engine, case_id = finished_case
    _tamper(engine, f"DELETE FROM events WHERE chain = '{case_id}' AND seq = 4")
    broken = engine.verify_trails()["broken"]
    assert broken["case_id"] == case_id and broken["seq"] == 5
    assert "deleted" in broken["reason"]


def test_deleted_last_event_is_detected(finished_case):
    engine, case_id = finished_case
    _tamper(engine, f"DELETE FROM events WHERE chain = '{case_id}' AND seq = 10")
    broken = engine.verify_trails()["broken"]
    assert broken["case_id"] == case_id and "end" in broken["reason"]


def test_deleted_trail_is_detected(finished_case):
    engine, case_id = finished_case
    _tamper(engine, f"DELETE FROM events WHERE chain = '{case_id}'")
    broken = engine.verify_trails()["broken"]
    assert broken["case_id"] == case_id and "deleted" in broken["reason"]


def test_deleted_newest_deployment_is_detected(finished_case):
    # The deployments' chain keeps its head like a case row does, so its end cannot be cut off unseen.
    engine, _ = finished_case
    _tamper(engine, "DELETE FROM events WHERE chain = 'definitions' AND seq = 1")
    broken = engine.verify_trails()["broken"]
    assert broken["chain"] == "definitions" and broken["case_id"] is None
    assert "deleted" in broken["reason"]


def test_verification_in_pages_covers_every_chain_once(clocked_engine):
    engine, clock = clocked_engine
    ids = sorted(run_approval(engine, clock)["id"] for _ in range(3))
    whole = engine.verify_trails()
    first = engine.verify_trails(None, 2)
    assert (first["ok"], first["cases"], first["next"]) == (True, 2, ids[1])
    second = engine.verify_trails(first["next"], 2)
    assert (second["ok"], second["cases"], second["next"]) == (True, 1, None)
    assert first["events"] + second["events"] == whole["events"]  # the deployments only on the first page
    _tamper(engine, f"UPDATE events SET actor = 'mallory' WHERE chain = '{ids[2]}' AND seq = 3")
    assert engine.verify_trails(None, 2)["ok"] is True  # not on this page
    assert engine.verify_trails(ids[1], 2)["broken"]["case_id"] == ids[2]


def test_reordered_events_are_detected(finished_case):
    engine, case_id = finished_case
    _tamper(engine,
            f"UPDATE events SET seq = 1000 WHERE chain = '{case_id}' AND seq = 4",
            f"UPDATE events SET seq = 4 WHERE chain = '{case_id}' AND seq = 5",
            f"UPDATE events SET seq = 5 WHERE chain = '{case_id}' AND seq = 1000")
    broken = engine.verify_trails()["broken"]
    assert broken["case_id"] == case_id and broken["seq"] == 4


def test_inserted_event_is_detected(finished_case):
    engine, case_id = finished_case
    row = engine.trail(case_id, {})[-1]
    _tamper(engine, f"""INSERT INTO events (chain, seq, at, type, actor, data_changes, details, hash)
                        VALUES ('{case_id}', 11, '2026-01-01 03:00:00', 'task_completed', 'mallory', '{{}}', '{{}}',
                                :hash)""", hash=b"\xff" * 32)
    broken = engine.verify_trails()["broken"]
    assert broken["case_id"] == case_id and broken["seq"] == 11
    assert engine.trail(case_id, {})[-1]["prev_hash"] == row["hash"]  # it claims to follow the last event


def test_inserted_event_with_a_recomputed_hash_is_detected(finished_case):
    """Someone who knows the algorithm can forge a valid-looking event at the end; the case row's
    record of where its trail ends still gives it away."""
    from usm_engine.engine.audit import chain_hash

    engine, case_id = finished_case
    last = engine.trail(case_id, {})[-1]
    forged = {**last, "seq": 11, "type": "task_completed", "actor": "mallory", "data_changes": {}, "details": {}}
    digest = chain_hash(forged, last["hash"])
    _tamper(engine, f"""INSERT INTO events (chain, seq, at, type, actor, element_id, element_name, lane,
                        definition, version, data_changes, details, hash)
                        VALUES ('{case_id}', 11, '2026-01-01 02:06:00', 'task_completed', 'mallory',
                                NULL, NULL, NULL, 'approval', 1, '{{}}', '{{}}', :hash)""", hash=bytes.fromhex(digest))
    assert engine.trail(case_id, {})[-1] == {**forged, "prev_hash": last["hash"], "hash": digest}
    broken = engine.verify_trails()["broken"]
    assert broken["case_id"] == case_id and "end" in broken["reason"]


def test_a_changed_definition_hash_is_detected(finished_case):
    """An event's definition hash is read from the definitions row of its version (the event row keeps none):
    changing that row changes what the events' hashes cover."""
    engine, case_id = finished_case
    _tamper(engine, "UPDATE definitions SET hash = :forged", forged="f" * 64)
    broken = engine.verify_trails()["broken"]
    assert broken["seq"] == 1 and "changed" in broken["reason"]


def test_an_event_given_another_definition_hash_is_detected(finished_case):
    engine, case_id = finished_case
    _tamper(engine, f"UPDATE events SET definition_hash = :forged WHERE chain = '{case_id}' AND seq = 3",
            forged="f" * 64)
    assert engine.trail(case_id, {})[2]["definition_hash"] == "f" * 64
    broken = engine.verify_trails()["broken"]
    assert (broken["case_id"], broken["seq"]) == (case_id, 3)


def test_events_cannot_be_updated_or_deleted_on_postgresql(database_url):
    from sqlalchemy.exc import DBAPIError

    from tests.conftest import postgres_url_or_skip, reset_postgres

    url = postgres_url_or_skip()
    reset_postgres(url)
    engine = Engine(EngineSettings(url), clock=FixedClock())
    engine.migrate()
    try:
        run_approval(engine, engine.clock)
        for statement in ("UPDATE events SET actor = 'mallory'", "DELETE FROM events", "TRUNCATE events"):
            with pytest.raises(DBAPIError) as raised:
                with engine.db.writer.begin() as conn:
                    conn.execute(text(statement))
            assert "append-only" in str(raised.value)
        assert engine.verify_trails()["ok"] is True
    finally:
        engine.close()
