"""Operators' view: /metrics counts what happens (requests by route and status, latency, cases started,
tasks completed, incidents, timers fired and their lateness); logs are JSON lines with the request id,
the case and the actor, never a token or case data."""
from __future__ import annotations

import io
import json
import logging

from prometheus_client.parser import text_string_to_metric_families

from usm_engine.api import logs
from usm_engine.engine.clock import FixedClock
from tests.conftest import APPROVAL, TOKENS, bearer, deploy, fixture_files

SYSTEM = bearer("system")


def scrape(client) -> dict[tuple, float]:
    response = client.get("/metrics")  # no token: like /healthz, for the monitoring system
    assert response.status_code == 200 and response.mimetype == "text/plain"
    found = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_requests_cases_tasks_and_incidents(client):
    before = scrape(client)
    assert deploy(client, *APPROVAL).status_code == 201
    case = client.post("/api/v1/cases", json={"definition": "approval"}, headers=SYSTEM).get_json()
    task = case["tasks"][0]["id"]
    assert client.post(f"/api/v1/tasks/{task}/complete", json={"data": {"item": "pen", "quantity": 2}},
                       headers=SYSTEM).status_code == 200
    assert client.post(f"/api/v1/tasks/{task}/complete", json={"data": {}}, headers=SYSTEM).status_code == 409
    assert deploy(client, "failing_condition.bpmn").status_code == 201
    client.post("/api/v1/cases", json={"definition": "failing_condition"}, headers=SYSTEM)
    after = scrape(client)

    def grew(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    complete = {"method": "POST", "route": "/api/v1/tasks/<task_id>/complete"}
    assert grew("usm_http_requests_total", **complete, status="200") == 1
    assert grew("usm_http_requests_total", **complete, status="409") == 1
    assert grew("usm_http_request_seconds_count", **complete) == 2
    assert grew("usm_cases_started_total", definition="approval") == 1
    assert grew("usm_tasks_completed_total", definition="approval") == 1
    assert grew("usm_incidents_total", definition="failing_condition") == 1
    assert not [key for key in after if "task_id" in str(key) and "<task_id>" not in str(key)]  # no ids


def test_metrics_count_timers_fired_and_how_late(app_factory):
    clock = FixedClock()
    app = app_factory(clock=clock)
    client, engine = app.test_client(), app.extensions["usm_engine"]
    before = scrape(client)
    engine.deploy(fixture_files("timers.bpmn"), "designer")
    engine.start_case("timers", "system", data={"resolution_target": "PT8H"})
    clock.advance(minutes=65)  # the reminder was due after 60: five minutes late
    assert engine.fire_due_timers() == 1
    after = scrape(client)
    assert value(after, "usm_timers_fired_total", definition="timers") - value(
        before, "usm_timers_fired_total", definition="timers") == 1
    late = value(after, "usm_timer_lateness_seconds_sum") - value(before, "usm_timer_lateness_seconds_sum")
    assert late == 300


def test_a_request_logs_one_json_line_with_request_id_case_and_actor(client):
    stream = io.StringIO()
    logs.configure()
    logging.getLogger().handlers[0].stream = stream
    try:
        assert deploy(client, *APPROVAL).status_code == 201
        case = client.post("/api/v1/cases", json={"definition": "approval", "data": {"secret": "s3cr3t"}},
                           headers=SYSTEM).get_json()
        stream.truncate(0)
        stream.seek(0)
        response = client.get(f"/api/v1/cases/{case['id']}", headers={**SYSTEM, "X-Request-Id": "req-42"})
        assert response.headers["X-Request-Id"] == "req-42"
        made = client.get("/api/v1/cases", headers={**SYSTEM, "X-Request-Id": "bad id with spaces"})
        assert len(made.headers["X-Request-Id"]) == 32  # a client's unusable id is replaced by one of ours
    finally:
        logging.getLogger().handlers.clear()
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    [first] = [line for line in lines if line.get("request_id") == "req-42"]
    assert first["logger"] == "usm.requests" and first["level"] == "INFO"
    assert (first["method"], first["status"], first["case_id"], first["actor"]) == (
        "GET", 200, case["id"], "system-user")
    text = stream.getvalue()
    assert TOKENS["system"] not in text and "s3cr3t" not in text


def test_log_lines_tell_the_time_as_the_standard_library_would_and_gunicorns_lines_still_format():
    kept = logging._srcfile  # configure() switches off the caller lookup for the whole process
    try:
        logs.configure()
        formatter = logging.getLogger().handlers[0].formatter
        standard = logging.Formatter()
        for created in (1765000000.0, 1765000000.5, 1765000000.999, 1765000001.0005, 1765000061.25, 1765000000.25):
            record = logging.LogRecord("usm.requests", logging.INFO, __file__, 1, "GET /x 200", None, None)
            record.created, record.msecs = created, int((created - int(created)) * 1000) + 0.0
            assert formatter.formatTime(record) == standard.formatTime(record)
        assert json.loads(formatter.format(record))["time"] == standard.formatTime(record)
        # gunicorn's own handlers print the process id, which a record must still carry
        record = logging.LogRecord("gunicorn.error", logging.INFO, __file__, 1, "Booting worker", None, None)
        assert logging.Formatter("[%(process)d] [%(levelname)s] %(message)s").format(record).endswith(
            "[INFO] Booting worker")
    finally:
        logging.getLogger().handlers.clear()
        logging._srcfile = kept
