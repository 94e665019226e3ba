"""The pages for people in a real headless Chromium against a real `usm serve` of the USM definitions, with
calls taken in by the service desk (POST /api/v1/messages call_received) and driven through their forms, so
that there are parent and child cases with call records: an auditor signs in with the keyboard, searches by
business key and by call number, opens a case, follows the link to the case it started, and opens the
compliance, definitions and tasks pages; a service-desk holder sees its own tasks and a 403 page for
compliance. No console error, no CSP violation; full-page screenshots in test-output/page-*.png."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import pytest

from usm_engine.api.auth import token_entry
from tests.e2e.server import Server
from tests.e2e.test_api_docs import WATCH_CSP
from tests.e2e.test_diagram import CHROMIUM_ARGS, OUTPUT

pytestmark = pytest.mark.e2e
DEFINITIONS = Path(__file__).resolve().parents[2] / "definitions"
TOKENS = {"audrey": ("auditor", "pages-auditor-token"), "sam": ("service-desk", "pages-service-desk-token")}


@contextmanager
def usm_server(tmp_path, database_url, admin_token: str, tokens: dict[str, tuple[str, str]]):
    """`usm serve` on the USM definitions with a tokens file of {user: (role, token)}."""
    (tmp_path / "tokens.toml").write_text("".join(token_entry(user, [role], token)
                                                  for user, (role, token) in tokens.items()))
    running = Server(tmp_path, database_url, admin_token, definitions=DEFINITIONS)
    running.env["USM_TOKENS_FILE"] = str(tmp_path / "tokens.toml")
    with running.start(timeout=90):
        yield running


@pytest.fixture
def server(tmp_path, database_url):
    with usm_server(tmp_path, database_url, "pages-admin", TOKENS) as running:
        yield running


def take_call(server, business_key: str, call_class: str) -> tuple[dict, dict]:
    """A call taken in at the service desk and registered: (the usm-call case, the process case it started)."""
    status, call = server.request("POST", "/api/v1/messages", {"name": "call_received", "business_key": business_key,
                                                               "data": {"request": {"requester": "ann@example.org",
                                                                                    "summary": "printer down"}}})
    assert status == 201, call
    status, call = server.request("POST", f"/api/v1/tasks/{call['tasks'][0]['id']}/complete", {"data": {
        "requester": "ann@example.org", "summary": "printer down on floor 3", "call_class": call_class}})
    assert status == 200 and call["status"] == "completed", call
    _, call = server.request("GET", f"/api/v1/cases/{call['id']}")
    _, process = server.request("GET", f"/api/v1/cases/{call['child_cases'][0]}")
    return call, process


@contextmanager
def browser_page():
    """A page of a person (no token header) and what went wrong in it: script errors and CSP violations."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.add_init_script(WATCH_CSP)
            yield page, errors
        finally:
            browser.close()


def tab_to(page, element_id: str, presses: int = 40) -> None:
    """Press Tab until the element has the focus: it is reached with the keyboard alone."""
    for _ in range(presses):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement && document.activeElement.id") == element_id:
            return
    raise AssertionError(f"#{element_id} is not reached with Tab")


def sign_in(page, server, path: str, user: str) -> list[str]:
    assert page.goto(f"{server.base}{path}").status == 200
    assert page.url.startswith(f"{server.base}/login?next="), page.url
    tab_to(page, "token")
    page.keyboard.type(TOKENS[user][1])
    page.keyboard.press("Enter")
    page.wait_for_url(f"{server.base}{path}")
    return page.evaluate("window.__violations")


def search(page, field: str, value: str) -> list[str]:
    """Search the cases by one field, with the keyboard; the case links of the results."""
    tab_to(page, field)
    page.keyboard.type(value)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    return page.eval_on_selector_all("#results tbody a", "nodes => nodes.map(n => n.getAttribute('href'))")


def shot(page, name: str) -> list[str]:
    page.screenshot(path=str(OUTPUT / f"page-{name}.png"), full_page=True)
    return page.evaluate("window.__violations")


def test_an_auditor_finds_a_call_and_follows_its_cases(server):
    first_call, incident = take_call(server, "CALL-1", "incident")
    _, request = take_call(server, "CALL-2", "no change to managed infrastructure")
    status, incident = server.request("POST", f"/api/v1/tasks/{incident['tasks'][0]['id']}/complete",
                                      {"data": {"intake_decision": "accept", "notes": "<b>urgent</b>"}})
    assert status == 200, incident
    number = incident["data"]["call"]["number"]
    _, recover = server.request("GET", "/api/v1/definitions/usm-recover")
    assert number.startswith("INC-") and request["data"]["call"]["number"].startswith("SRQ-")
    OUTPUT.mkdir(exist_ok=True)
    with browser_page() as (page, errors):
        violations = sign_in(page, server, "/cases", "audrey")
        assert search(page, "business_key", "CALL-1") == [f"/cases/{first_call['id']}"]
        assert page.input_value("#business_key") == "CALL-1"
        page.goto(f"{server.base}/cases")
        assert search(page, "call_number", number) == [f"/cases/{incident['id']}"]
        page.goto(f"{server.base}/cases")
        violations += shot(page, "cases")
        assert page.locator("#results tbody tr").count() >= 4

        page.click(f"#results a[href='/cases/{first_call['id']}']")  # the call the service desk registered
        page.wait_for_url(f"{server.base}/cases/{first_call['id']}")
        page.click(f"#children a[href='/cases/{incident['id']}']")  # to the process it started
        page.wait_for_url(f"{server.base}/cases/{incident['id']}")
        assert number in page.inner_text("#call") and "incident" in page.inner_text("#call")
        assert page.inner_text("#parent").startswith("CALL-1")
        assert "<b>urgent</b>" in page.inner_text("pre.data")  # the data as text, not as markup
        violations += shot(page, "case")

        page.click("nav.site a[href='/compliance']")
        page.wait_for_url(f"{server.base}/compliance")
        assert page.locator("table.compliance tbody tr").count() > 10
        violations += shot(page, "compliance")

        page.click("nav.site a[href='/definitions']")
        page.wait_for_url(f"{server.base}/definitions")
        assert page.locator("#definitions a[href='/definitions/usm-recover']").count() == 1
        violations += shot(page, "definitions")
        page.click("#definitions a[href='/definitions/usm-recover']")
        page.wait_for_selector("body[data-rendered]", state="attached", timeout=20000)
        assert page.get_attribute("body", "data-rendered") == "true", errors
        assert page.eval_on_selector_all("#canvas g.djs-element", "nodes => nodes.length") > 10
        assert page.locator("section.form").count() == len(recover["user_tasks"]) > 0  # each with its form
        violations += shot(page, "definition")

        page.click("nav.site a[href='/tasks']")
        page.wait_for_url(f"{server.base}/tasks")
        assert page.locator(f"#tasks a[href='/cases/{request['id']}']").count() == 1
        violations += shot(page, "tasks")
    assert not violations, violations
    assert not errors, errors


def test_a_service_desk_holder_sees_its_tasks_and_no_compliance(server):
    _, incident = take_call(server, "CALL-3", "incident")
    with browser_page() as (page, errors):
        violations = sign_in(page, server, "/tasks", "sam")
        assert "service-desk" in page.inner_text("main")
        assert page.locator(f"#tasks a[href='/cases/{incident['id']}']").count() == 1
        assert page.goto(f"{server.base}/compliance").status == 403
        assert "needs one of the roles: auditor, system" in page.inner_text("main")
        violations += page.evaluate("window.__violations")
    assert not violations, violations
    # Chromium reports the refused page itself on the console; nothing else may go wrong.
    assert errors == ["Failed to load resource: the server responded with a status of 403 (FORBIDDEN)"], errors
