"""Kill the server with SIGKILL in the middle of a load of completions, restart it, and show that nothing
is half-written: every case's row, task rows and trail agree, every trail verifies, and clients that
retry with their Idempotency-Key create nothing twice."""
from __future__ import annotations

import http.client
import json
import shutil
import threading
import time
import uuid

import pytest
from sqlalchemy import func, select

from usm_engine.engine.schema import cases, events, tasks
from usm_engine.engine.service import Engine, EngineSettings
from tests.conftest import APPROVAL, FIXTURES
from tests.e2e.server import Server

pytestmark = pytest.mark.e2e
CLIENTS = 6
ATTEMPTS = []  # failed completions, shown when an assertion fails


def drive_one(server, key: str) -> None:
    """Start (with an idempotency key) and push one case as far as it goes; tolerate a dying server."""
    status, case = server.request("POST", "/api/v1/cases", {"definition": "approval", "business_key": key},
                                  headers={"Idempotency-Key": key})
    if status not in (200, 201):
        return
    answers = {"Activity_Submit": {"item": "pen", "quantity": 1}, "Activity_Decide": {"approved": True}}
    for _ in range(2):
        ready = case.get("tasks") or []
        if not ready:
            return
        data = answers[ready[0]["element_id"]]  # a retried case may already be further along
        status, answer = server.request("POST", f"/api/v1/tasks/{ready[0]['id']}/complete", {"data": data})
        if status != 200:
            ATTEMPTS.append((key, status, answer))
            return
        case = answer


def load(server, keys: list[str], stop: threading.Event) -> None:
    while not stop.is_set():
        key = f"crash-{uuid.uuid4()}"
        keys.append(key)
        try:
            drive_one(server, key)
        except (OSError, http.client.HTTPException):
            return  # the server is gone


def test_sigkill_mid_load_loses_and_duplicates_nothing(tmp_path, database_url):
    (tmp_path / "definitions").mkdir()
    for name in APPROVAL:
        shutil.copy(FIXTURES / name, tmp_path / "definitions" / name)
    server = Server(tmp_path, database_url, "crash-admin")
    server.args += ["--no-worker"]
    server.start()
    keys: list[str] = []
    stop = threading.Event()
    clients = [threading.Thread(target=load, args=(server, keys, stop)) for _ in range(CLIENTS)]
    for client in clients:
        client.start()
    time.sleep(2.5)
    server.kill()  # mid-load: requests are in flight
    stop.set()
    for client in clients:
        client.join(30)
    assert len(keys) > 20, "the load did not get going"

    # Restart; every client retries every case it ever tried, with the same Idempotency-Key.
    restarted = Server(tmp_path, database_url, "crash-admin")
    restarted.args += ["--no-worker"]
    restarted.start()
    try:
        for key in keys:
            drive_one(restarted, key)
        for key in keys:  # once more: everything is done, nothing new may appear
            status, case = restarted.request("POST", "/api/v1/cases", {"definition": "approval", "business_key": key},
                                             headers={"Idempotency-Key": key})
            attempts = [a for a in ATTEMPTS if a[0] == key]
            assert status == 200 and case["status"] == "completed", (key, status, case, attempts)
        status, verification = restarted.request("GET", "/api/v1/audit/verify")
        assert status == 200 and verification["ok"] is True, verification
    finally:
        restarted.stop()
    assert "Traceback" not in restarted.log()

    engine = Engine(EngineSettings(database_url))
    try:
        with engine.db.reader.connect() as conn:
            per_key = dict(conn.execute(select(cases.c.business_key, func.count())
                                        .group_by(cases.c.business_key)).all())
            assert per_key == {key: 1 for key in keys}  # one case per logical case, however often retried
            rows = list(conn.execute(select(cases)))
            for row in rows:
                task_states = sorted(conn.execute(select(tasks.c.element_id, tasks.c.state)
                                                  .where(tasks.c.case_id == row.id)).all())
                assert task_states == [("Activity_Decide", "completed"), ("Activity_Submit", "completed")], row.id
                event_count = conn.execute(select(func.count()).where(events.c.chain == row.id)).scalar_one()
                assert event_count == row.event_seq
                # the row agrees with the projections and the trail: nothing half-written (a finished case
                # keeps no engine state, so the status and the emptied state came in one write)
                assert row.status == "completed" and row.state == ""
                last = conn.execute(select(events.c.type).where(events.c.chain == row.id)
                                    .order_by(events.c.seq.desc()).limit(1)).scalar_one()
                assert last == "case_completed"
                assert json.loads(row.data)["approved"] is True
    finally:
        engine.close()
