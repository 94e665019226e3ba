"""The diagram page in a real headless Chromium: exactly the executed elements and flows are marked."""
from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import APPROVAL, FIXTURES
from tests.e2e.server import Server

pytestmark = pytest.mark.e2e
OUTPUT = Path(__file__).resolve().parents[2] / "test-output"
ELEMENT_IDS = "nodes => nodes.map(n => n.getAttribute('data-element-id'))"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


@contextmanager
def serving(tmp_path, database_url, names):
    """A real `usm serve` whose definitions/ holds these fixture files."""
    (tmp_path / "definitions").mkdir()
    for name in names:
        shutil.copy(FIXTURES / name, tmp_path / "definitions" / name)
    with Server(tmp_path, database_url, "diagram-admin").start() as running:
        yield running


@pytest.fixture
def server(tmp_path, database_url):
    with serving(tmp_path, database_url, APPROVAL) as running:
        yield running


@contextmanager
def diagram_page(server):
    """A headless Chromium page that sends the server's token, and the script errors it reports."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(extra_http_headers={"Authorization": f"Bearer {server.token}"},
                                    viewport={"width": 1600, "height": 900})
            errors = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            yield page, errors
        finally:
            browser.close()


def drive(server, approved: bool | None):
    _, case = server.request("POST", "/api/v1/cases", {"definition": "approval", "business_key": "D-1"})
    _, case = server.request("POST", f"/api/v1/tasks/{case['tasks'][0]['id']}/complete",
                             {"data": {"item": "desk", "quantity": 2}})
    if approved is not None:
        _, case = server.request("POST", f"/api/v1/tasks/{case['tasks'][0]['id']}/complete",
                                 {"data": {"approved": approved}})
    return case


def render(server, case_id: str, name: str) -> dict:
    OUTPUT.mkdir(exist_ok=True)
    with diagram_page(server) as (page, errors):
        response = page.goto(f"{server.base}/api/v1/cases/{case_id}/diagram")
        assert response.status == 200
        assert "script-src 'self'" in response.headers["content-security-policy"]
        page.wait_for_selector("body[data-rendered]", state="attached", timeout=20000)
        assert page.get_attribute("body", "data-rendered") == "true", errors
        marked = page.eval_on_selector_all(".usm-executed", ELEMENT_IDS)
        current = page.eval_on_selector_all(".usm-current", ELEMENT_IDS)
        drawn = page.eval_on_selector_all("g.djs-element", "nodes => nodes.length")
        screenshot = OUTPUT / f"diagram-{name}.png"
        page.screenshot(path=str(screenshot), full_page=True)
        page.click("a[data-element='Activity_Decide']")
        focused = page.eval_on_selector_all(".usm-focus", ELEMENT_IDS)
        return {"marked": set(marked), "current": set(current), "drawn": drawn, "errors": errors,
                "screenshot": screenshot, "focused": focused}


def test_completed_case_marks_exactly_the_executed_path(server):
    case = drive(server, approved=True)
    assert case["status"] == "completed"
    result = render(server, case["id"], "approved")
    assert result["marked"] == {
        "StartEvent_Request", "Activity_Submit", "Activity_Decide", "Gateway_Approved", "Activity_Record",
        "EndEvent_Approved",
        "Flow_ToSubmit", "Flow_ToDecide", "Flow_ToGateway", "Flow_Yes", "Flow_ToEndApproved"}
    assert result["current"] == set()
    assert result["drawn"] > len(result["marked"])  # the rest of the diagram is drawn but not marked
    assert result["focused"] == ["Activity_Decide"]  # a trail row leads to its element
    assert result["screenshot"].stat().st_size > 10_000
    assert not result["errors"], result["errors"]


def test_rejected_case_marks_the_other_branch(server):
    case = drive(server, approved=False)
    result = render(server, case["id"], "rejected")
    assert "Flow_No" in result["marked"] and "EndEvent_Rejected" in result["marked"]
    assert not {"Flow_Yes", "Activity_Record", "EndEvent_Approved"} & result["marked"]


def test_running_case_marks_where_it_stands(server):
    case = drive(server, approved=None)
    result = render(server, case["id"], "running")
    assert result["current"] == {"Activity_Decide"}
    assert result["marked"] == {"StartEvent_Request", "Activity_Submit", "Flow_ToSubmit", "Flow_ToDecide"}


@pytest.fixture
def called_server(tmp_path, database_url):
    with serving(tmp_path, database_url, ("ids_main.bpmn", "ids_sub.bpmn")) as running:
        yield running


def test_a_called_definition_is_drawn_on_its_own_diagram(called_server):
    """ids_main calls ids_sub; both use the same element ids. Each diagram marks its own path, and a trail
    row of the called definition switches to its diagram."""
    server = called_server
    _, case = server.request("POST", "/api/v1/cases", {"definition": "ids_main"})
    _, case = server.request("POST", f"/api/v1/tasks/{case['tasks'][0]['id']}/complete", {"data": {"quantity": 20}})
    with diagram_page(server) as (page, errors):
        assert page.goto(f"{server.base}/api/v1/cases/{case['id']}/diagram").status == 200
        page.wait_for_selector("body[data-rendered='true'][data-shown='ids_main']", state="attached", timeout=20000)
        assert page.eval_on_selector_all("#processes button", "nodes => nodes.map(n => n.textContent)") == [
            "ids_main v1", "ids_sub v1"]
        assert set(page.eval_on_selector_all(".usm-executed", ELEMENT_IDS)) == {
            "StartEvent_1", "Task_1", "Gateway_1", "Flow_1", "Flow_2", "Flow_3"}
        assert page.eval_on_selector_all(".usm-current", ELEMENT_IDS) == ["Call_1"]
        page.click("#processes button[data-definition='ids_sub']")
        page.wait_for_selector("body[data-rendered='true'][data-shown='ids_sub']", state="attached", timeout=20000)
        assert set(page.eval_on_selector_all(".usm-executed", ELEMENT_IDS)) == {"StartEvent_1", "Flow_1"}
        assert page.eval_on_selector_all(".usm-current", ELEMENT_IDS) == ["Task_1"]
        page.screenshot(path=str(OUTPUT / "diagram-called.png"), full_page=True)
        # a row about the caller's Task_1 goes back to the caller's diagram and focuses it there
        page.click("a[data-element='Task_1'][data-definition='ids_main']")
        page.wait_for_selector("body[data-rendered='true'][data-shown='ids_main']", state="attached", timeout=20000)
        page.wait_for_selector(".usm-focus", state="attached", timeout=5000)
        assert page.eval_on_selector_all(".usm-focus", ELEMENT_IDS) == ["Task_1"]
        assert not errors, errors
