"""Migration 0011 (the trail keeps hashes as bytes and no copies): a trail written in the old layout reads,
exports and verifies exactly as before once migrated, and the engine goes on appending to it."""
from __future__ import annotations

import json
from datetime import datetime

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from usm_engine.engine.audit import GENESIS, chain_hash
from usm_engine.engine.database import MIGRATIONS_DIR
from tests.engine.test_audit import ANYONE, run_approval

LEGACY = "legacy-chain"  # written by hand in the old layout: its definition hash is not its definition's


def migrate(engine, revision: str, then=None) -> None:
    """Move the schema to `revision` (down or up) in one transaction; `then(conn)` runs in it afterwards."""
    engine.db.dispose()
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.db.writer.begin() as connection:
        config.attributes["connection"] = connection
        current = connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        (command.downgrade if revision < current else command.upgrade)(config, revision)
        if then is not None:
            then(connection)


def legacy_events() -> list[dict]:
    """Two events as the old layout stored them: one sealed with a definition hash that is not the deployed
    version's, one naming no definition."""
    rows, previous = [], GENESIS
    for seq, (definition, version, definition_hash) in enumerate(
            [("approval", 1, "a" * 64), (None, None, None)], start=1):
        event = {"seq": seq, "at": "2026-01-01T00:00:00Z", "case_id": LEGACY, "type": "note", "actor": "old",
                 "element_id": None, "element_name": None, "lane": None, "definition": definition,
                 "version": version, "definition_hash": definition_hash, "data_changes": {"n": [None, seq]},
                 "details": {"é": "ü"}}
        digest = chain_hash(event, previous)
        rows.append({**event, "prev_hash": previous, "hash": digest})
        previous = digest
    return rows


def insert_old_layout(conn, events: list[dict]) -> None:
    for event in events:
        conn.execute(text("""
            INSERT INTO events (chain, seq, at, case_id, type, actor, element_id, element_name, lane, definition,
                                version, definition_hash, data_changes, details, prev_hash, hash)
            VALUES (:case_id, :seq, :at, :case_id, :type, :actor, :element_id, :element_name, :lane, :definition,
                    :version, :definition_hash, :data_changes, :details, :prev_hash, :hash)"""),
            {**event, "at": datetime(2026, 1, 1), "data_changes": json.dumps(event["data_changes"]),
             "details": json.dumps(event["details"])})


def test_an_old_trail_migrated_reads_exports_and_verifies_as_before(clocked_engine):
    engine, clock = clocked_engine
    done = run_approval(engine, clock)
    rejected = run_approval(engine, clock, approved=False)["id"]
    running, _ = engine.start_case("approval", "crm", business_key="REQ-8")
    before = {"export": list(engine.export_events()), "trail": engine.trail(done["id"], {}),
              "filtered": engine.trail(rejected, {"actor": "bob"}), "verify": engine.verify_trails()}
    assert before["verify"]["ok"] is True

    old_rows = []
    migrate(engine, "0010", then=lambda conn: (
        insert_old_layout(conn, legacy_events()),
        old_rows.extend(conn.execute(text(
            "SELECT chain, seq, case_id, definition_hash, prev_hash, hash FROM events")))))
    # The layout before 0011 kept what the public form shows, hex and all.
    exported = {(e["case_id"] or "definitions", e["seq"]): e for e in [*before["export"], *legacy_events()]}
    assert {(row.chain, row.seq): tuple(row[2:]) for row in old_rows} == {
        key: (e["case_id"], e["definition_hash"], e["prev_hash"], e["hash"]) for key, e in exported.items()}

    migrate(engine, "head")
    after = list(engine.export_events())
    # The same JSON, to the order of the keys (the export is in the database's order of chains either way).
    assert json.dumps([e for e in after if e["case_id"] != LEGACY]) == json.dumps(before["export"])
    assert [e for e in after if e["case_id"] == LEGACY] == legacy_events()
    assert engine.trail(done["id"], {}) == before["trail"]
    assert engine.trail(rejected, {"actor": "bob"}) == before["filtered"]
    assert engine.verify_trails() == {**before["verify"], "events": before["verify"]["events"] + 2}
    with engine.db.reader.connect() as conn:  # only the legacy event keeps a definition hash of its own
        kept = conn.execute(text("SELECT chain, seq, definition_hash FROM events WHERE definition_hash IS NOT NULL"))
        assert [tuple(row) for row in kept] == [(LEGACY, 1, "a" * 64)]

    # The engine appends to a migrated trail, and it still verifies.
    engine.complete_task(running["tasks"][0]["id"], {"item": "ink", "quantity": 1}, "alice", ANYONE)
    trail = engine.trail(running["id"], {})
    assert trail[3]["prev_hash"] == trail[2]["hash"] and trail[3]["type"] == "task_completed"
    assert engine.verify_trails()["ok"] is True


def test_migrating_back_restores_the_old_layout(clocked_engine):
    engine, clock = clocked_engine
    run_approval(engine, clock)
    exported = list(engine.export_events())
    rows = []
    migrate(engine, "0010", then=lambda conn: rows.extend(conn.execute(text(
        "SELECT COALESCE(case_id, ''), seq, definition_hash, prev_hash, hash FROM events"))))
    assert sorted(tuple(row) for row in rows) == sorted(
        (e["case_id"] or "", e["seq"], e["definition_hash"], e["prev_hash"], e["hash"]) for e in exported)
    migrate(engine, "head")
    assert json.dumps(list(engine.export_events())) == json.dumps(exported)
    assert engine.verify_trails()["ok"] is True
