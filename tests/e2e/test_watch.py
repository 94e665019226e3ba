"""`usm serve --watch`, the designer's loop, as a real server: a saved change becomes a new version within
seconds, and a file that does not deploy is reported as file:line: element: message while the server goes
on serving the versions it had."""
from __future__ import annotations

import re
import shutil
import time

import pytest

from tests.conftest import APPROVAL, FIXTURES
from tests.e2e.server import Server

pytestmark = pytest.mark.e2e

BOUND = 15  # seconds; the watcher looks once a second

BROKEN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="Definitions_broken" targetNamespace="http://x.org/b">
  <bpmn:process id="broken" isExecutable="true">
    <bpmn:startEvent id="StartEvent_1"><bpmn:outgoing>Flow_1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="Activity_Fill" name="Fill in" camunda:formKey="missing.schema.json">
      <bpmn:incoming>Flow_1</bpmn:incoming><bpmn:outgoing>Flow_2</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:endEvent id="EndEvent_1"><bpmn:incoming>Flow_2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="Flow_1" sourceRef="StartEvent_1" targetRef="Activity_Fill" />
    <bpmn:sequenceFlow id="Flow_2" sourceRef="Activity_Fill" targetRef="EndEvent_1" />
  </bpmn:process>
</bpmn:definitions>
"""


def wait_for(condition, what: str, server: Server) -> None:
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    pytest.fail(f"{what} did not happen within {BOUND} s; the server's log:\n{server.log()}")


def test_watch_redeploys_a_changed_file_and_reports_one_that_does_not_deploy(tmp_path, database_url):
    definitions = tmp_path / "definitions"
    definitions.mkdir()
    for name in APPROVAL:
        shutil.copy(FIXTURES / name, definitions / name)
    server = Server(tmp_path, database_url, "e2e-admin", timer_worker=False)
    server.args.append("--watch")
    server.start()
    try:
        assert server.request("GET", "/api/v1/definitions/approval")[1]["version"] == 1
        bpmn = definitions / "approval.bpmn"
        bpmn.write_text(bpmn.read_text().replace('name="Decide"', 'name="Decide now"'))
        wait_for(lambda: server.request("GET", "/api/v1/definitions/approval")[1]["version"] == 2,
                 "a new version of approval", server)
        detail = server.request("GET", "/api/v1/definitions/approval")[1]
        assert "Decide now" in [task["name"] for task in detail["user_tasks"]]
        wait_for(lambda: "new version of approval v2" in server.log(), "the redeploy message", server)

        (definitions / "broken.bpmn").write_text(BROKEN)
        line = BROKEN.splitlines().index(next(t for t in BROKEN.splitlines() if "Activity_Fill" in t)) + 1
        expected = re.compile(rf"^{re.escape(str(definitions))}/broken\.bpmn:{line}: Activity_Fill: .*missing\.schema"
                              r"\.json", re.MULTILINE)
        wait_for(lambda: expected.search(server.log()) is not None, "the problem report", server)
        assert "does not deploy; the server keeps the versions it had" in server.log()
        assert server.request_ok()
        status, detail = server.request("GET", "/api/v1/definitions/approval")
        assert status == 200 and detail["version"] == 2
        assert server.request("GET", "/api/v1/definitions/broken")[0] == 404

        # Fixed (here: removed), the folder deploys again; nothing in it is new.
        (definitions / "broken.bpmn").unlink()
        wait_for(lambda: "no definition changed" in server.log(), "the redeploy after the fix", server)
        assert server.request_ok()
    finally:
        server.stop()
    assert "Traceback" not in server.log()
