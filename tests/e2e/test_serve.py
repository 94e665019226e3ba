"""`usm serve` as a real process: it migrates, deploys definitions/ idempotently, and runs a case over HTTP."""
from __future__ import annotations

import json
import shutil

import pytest

from tests.conftest import APPROVAL, FIXTURES
from tests.e2e.server import Server

pytestmark = pytest.mark.e2e


@pytest.fixture
def workdir(tmp_path):
    definitions = tmp_path / "definitions"
    definitions.mkdir()
    for name in APPROVAL:
        shutil.copy(FIXTURES / name, definitions / name)
    return tmp_path


def test_serve_deploys_definitions_and_drives_a_case(workdir, database_url):
    server = Server(workdir, database_url, "e2e-admin").start()
    try:
        status, body = server.request("GET", "/api/v1/definitions")
        assert status == 200 and [(d["key"], d["version"]) for d in body["items"]] == [("approval", 1)]
        status, case = server.request("POST", "/api/v1/cases", {"definition": "approval", "business_key": "E2E-1"})
        assert status == 201 and case["status"] == "running"
        status, page = server.request("GET", f"/api/v1/tasks?case={case['id']}")
        assert status == 200 and [t["name"] for t in page["items"]] == ["Submit request"]
        status, case = server.request("POST", f"/api/v1/tasks/{page['items'][0]['id']}/complete",
                                      {"data": {"item": "chair", "quantity": 4}})
        assert status == 200 and [t["name"] for t in case["tasks"]] == ["Decide"]
        status, case = server.request("POST", f"/api/v1/tasks/{case['tasks'][0]['id']}/complete",
                                      {"data": {"approved": True}})
        assert status == 200 and case["status"] == "completed"
        assert case["data"]["total"] == 40
        status, problem = server.request("POST", f"/api/v1/tasks/{page['items'][0]['id']}/complete",
                                         {"data": {"item": "chair", "quantity": 4}})
        assert status == 409 and "not ready" in problem["detail"]
        # /metrics adds up every gunicorn worker and the timer worker of this server
        status, text = server.request("GET", "/metrics", headers={"Authorization": ""})
        assert status == 200
        assert 'usm_tasks_completed_total{definition="approval"} 2.0' in text
        assert 'usm_cases_started_total{definition="approval"} 1.0' in text
        assert ('usm_http_requests_total{method="POST",route="/api/v1/tasks/<task_id>/complete",status="409"} 1.0'
                in text)
    finally:
        server.stop()
    assert "Traceback" not in server.log()
    # the server's own log lines are JSON, with a request id
    logged = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    requests = [record for record in logged if record.get("logger") == "usm.requests"]
    assert requests and all(len(r["request_id"]) == 32 and r["status"] for r in requests)

    # A restart deploys the same files again: nothing new, the version stays 1.
    again = Server(workdir, database_url, "e2e-admin").start()
    try:
        status, body = again.request("GET", "/api/v1/definitions/approval")
        assert status == 200 and body["version"] == 1 and len(body["versions"]) == 1
    finally:
        again.stop()


def test_serve_refuses_to_start_on_invalid_definitions(workdir, database_url):
    (workdir / "definitions" / "broken.bpmn").write_text("<definitions>not closed")
    server = Server(workdir, database_url, "e2e-admin")
    with pytest.raises(RuntimeError) as raised:
        server.start(timeout=20)
    assert "broken.bpmn:1:" in str(raised.value)
    assert "does not deploy" in str(raised.value)


def test_the_worker_started_by_serve_fires_timers_on_time(workdir, database_url):
    import time

    shutil.copy(FIXTURES / "timers.bpmn", workdir / "definitions" / "timers.bpmn")
    server = Server(workdir, database_url, "e2e-admin").start()
    try:
        status, case = server.request("POST", "/api/v1/cases", {"definition": "timers",
                                                                "data": {"resolution_target": "PT1S"}})
        assert status == 201
        started = time.monotonic()
        names = []
        while time.monotonic() - started < 15:
            names = [t["name"] for t in server.request("GET", f"/api/v1/cases/{case['id']}")[1]["tasks"]]
            if names == ["Escalate"]:
                break
            time.sleep(0.2)
        assert names == ["Escalate"], server.log()
        assert time.monotonic() - started < 5  # due after 1 s; the worker looks every second
    finally:
        server.stop()


def worker_pids(server: Server) -> list[int]:
    """The timer workers `usm serve` runs: children of its master running `usm_engine.api.cli worker`."""
    import subprocess

    listed = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(server.process.pid)],
                            capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in listed.splitlines() if "usm_engine.api.cli worker" in line]


def test_serve_starts_its_timer_worker_again_when_it_dies(workdir, database_url):
    import os
    import signal
    import time

    server = Server(workdir, database_url, "e2e-admin").start()
    try:
        [first] = worker_pids(server)
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 30  # generous for a loaded machine: the keeper looks every second, then waits 3 s
        while time.monotonic() < deadline and worker_pids(server) in ([], [first]):
            time.sleep(0.2)
        [second] = worker_pids(server)
        assert second != first
        assert "the timer worker stopped; starting it again" in server.log()
        assert server.request("GET", "/healthz")[0] == 200
    finally:
        server.stop()
    assert worker_pids(server) == []  # stopping the server stops its worker
