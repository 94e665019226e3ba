"""The trail over HTTP: JSON and CSV, filters, verification, and a 5xx always logged with its traceback."""
from __future__ import annotations

import csv
import io
import logging

import pytest

from usm_engine.engine.clock import FixedClock
from tests.conftest import APPROVAL, bearer, deploy

AUDITOR = bearer("auditor")


def finished_case(client, clock):
    assert deploy(client, *APPROVAL).status_code == 201
    case = client.post("/api/v1/cases", json={"definition": "approval"}, headers=bearer("system")).get_json()
    clock.advance(hours=1)
    case = client.post(f"/api/v1/tasks/{case['tasks'][0]['id']}/complete",
                       json={"data": {"item": "pen", "quantity": 2}}, headers=bearer("requester")).get_json()
    clock.advance(hours=1)
    client.post(f"/api/v1/tasks/{case['tasks'][0]['id']}/complete", json={"data": {"approved": True}},
                headers=bearer("service-manager"))
    return case["id"]


def test_trail_as_json_and_csv_with_filters(app_factory):
    clock = FixedClock()
    client = app_factory(clock=clock).test_client()
    case_id = finished_case(client, clock)
    trail = client.get(f"/api/v1/cases/{case_id}/trail", headers=AUDITOR).get_json()["items"]
    assert [e["seq"] for e in trail] == list(range(1, len(trail) + 1))
    completed = [(e["actor"], e["element_id"]) for e in trail if e["type"] == "task_completed"]
    assert completed == [("requester-user", "Activity_Submit"), ("service-manager-user", "Activity_Decide")]

    by_actor = client.get(f"/api/v1/cases/{case_id}/trail?actor=requester-user", headers=AUDITOR).get_json()["items"]
    assert [e["type"] for e in by_actor] == ["task_completed"]
    by_element = client.get(f"/api/v1/cases/{case_id}/trail?element=Activity_Decide", headers=AUDITOR).get_json()
    assert [e["type"] for e in by_element["items"]] == ["task_ready", "task_completed"]
    window = client.get(f"/api/v1/cases/{case_id}/trail?since=2026-01-01T00:30:00Z&until=2026-01-01T01:30:00Z",
                        headers=AUDITOR).get_json()["items"]
    assert {e["at"] for e in window} == {"2026-01-01T01:00:00Z"}
    bad = client.get(f"/api/v1/cases/{case_id}/trail?since=yesterday", headers=AUDITOR)
    assert bad.status_code == 422 and "RFC 3339" in bad.get_json()["detail"]

    exported = client.get(f"/api/v1/cases/{case_id}/trail?format=csv", headers=AUDITOR)
    assert exported.status_code == 200 and exported.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(exported.get_data(as_text=True))))
    assert [row["hash"] for row in rows] == [e["hash"] for e in trail]
    assert rows[3]["data_changes"] == '{"item": [null, "pen"], "quantity": [null, 2]}'

    assert client.get("/api/v1/audit/verify", headers=AUDITOR).get_json() == {
        "ok": True, "cases": 1, "events": len(trail) + 1, "next": None}  # + the deployment


def test_unknown_case_trail_is_404(client):
    response = client.get("/api/v1/cases/no-such-case/trail", headers=AUDITOR)
    assert response.status_code == 404 and "no-such-case" in response.get_json()["detail"]


@pytest.mark.provokes_5xx
def test_a_server_error_is_logged_with_its_traceback(app, caplog):
    """5xx responses are bugs: the client gets a plain problem, the log gets the traceback."""
    app.view_functions["meta.healthz"] = lambda: 1 / 0
    client = app.test_client()
    with caplog.at_level(logging.ERROR):
        response = client.get("/healthz")
    assert response.status_code == 500 and response.mimetype == "application/problem+json"
    assert "ZeroDivisionError" not in response.get_data(as_text=True)
    assert any(record.exc_info and record.exc_info[0] is ZeroDivisionError for record in caplog.records)


def test_a_trail_with_an_event_deleted_behind_the_engines_back_reads_with_a_null_prev_hash(app_factory):
    """The event after the gap has no event before it to link to: its prev_hash is null, as the contract says,
    and verification names the case."""
    from jsonschema import Draft202012Validator
    from sqlalchemy import text

    from usm_engine.api.schemas import EVENT

    clock = FixedClock()
    app = app_factory(clock=clock)
    client, engine = app.test_client(), app.extensions["usm_engine"]
    case_id = finished_case(client, clock)
    with engine.db.writer.begin() as conn:
        if not engine.db.is_sqlite:
            conn.execute(text("ALTER TABLE events DISABLE TRIGGER USER"))
        conn.execute(text("DELETE FROM events WHERE chain = :case AND seq = 3"), {"case": case_id})
        if not engine.db.is_sqlite:
            conn.execute(text("ALTER TABLE events ENABLE TRIGGER USER"))
    trail = client.get(f"/api/v1/cases/{case_id}/trail", headers=AUDITOR).get_json()["items"]
    after_gap = next(event for event in trail if event["seq"] == 4)
    assert after_gap["prev_hash"] is None
    validator = Draft202012Validator(EVENT)
    assert [list(validator.iter_errors(event)) for event in trail] == [[] for _ in trail]
    verified = client.get("/api/v1/audit/verify", headers=AUDITOR).get_json()
    assert verified["ok"] is False and verified["broken"]["case_id"] == case_id
