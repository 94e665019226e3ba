"""Signing in from a real headless Chromium against a real `usm serve` of two workers (which must share the
session secret): a case's diagram sends the browser to /login, the token brings it back to the drawn path,
and after signing out the diagram sends it to /login again. No console error, no CSP violation."""
from __future__ import annotations

import shutil
from urllib.parse import parse_qs, urlsplit

import pytest

from usm_engine.api.auth import token_entry
from tests.conftest import APPROVAL, FIXTURES
from tests.e2e.server import Server
from tests.e2e.test_api_docs import WATCH_CSP
from tests.e2e.test_diagram import CHROMIUM_ARGS, ELEMENT_IDS, OUTPUT, drive

pytestmark = pytest.mark.e2e
AUDITOR_TOKEN = "sign-in-auditor-token"
APPROVED_PATH = {"StartEvent_Request", "Activity_Submit", "Activity_Decide", "Gateway_Approved", "Activity_Record",
                 "EndEvent_Approved", "Flow_ToSubmit", "Flow_ToDecide", "Flow_ToGateway", "Flow_Yes",
                 "Flow_ToEndApproved"}


@pytest.fixture
def server(tmp_path, database_url):
    (tmp_path / "definitions").mkdir()
    for name in APPROVAL:
        shutil.copy(FIXTURES / name, tmp_path / "definitions" / name)
    (tmp_path / "tokens.toml").write_text(token_entry("audrey", ["auditor"], AUDITOR_TOKEN))
    running = Server(tmp_path, database_url, "sign-in-admin")
    running.env["USM_TOKENS_FILE"] = str(tmp_path / "tokens.toml")
    running.env.pop("USM_SESSION_SECRET", None)  # `usm serve` makes one and shares it with its workers
    running.args[running.args.index("--workers") + 1] = "2"
    running.start()
    try:
        yield running
    finally:
        running.stop()


def on_login_page(page, server, diagram: str) -> None:
    url = urlsplit(page.url)
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{server.base}/login", page.url
    assert parse_qs(url.query)["next"] == [diagram]


def test_sign_in_shows_the_diagram_and_sign_out_ends_it(server):
    from playwright.sync_api import sync_playwright

    case = drive(server, approved=True)
    diagram = f"/api/v1/cases/{case['id']}/diagram"
    OUTPUT.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 900})  # no token header: a person
            errors = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.add_init_script(WATCH_CSP)

            response = page.goto(f"{server.base}{diagram}")
            assert response.status == 200 and "form-action 'self'" in response.headers["content-security-policy"]
            on_login_page(page, server, diagram)
            assert page.locator("label[for='token']").inner_text() == "Token"
            page.focus("#token")  # reached and filled with the keyboard alone
            page.keyboard.type(AUDITOR_TOKEN)
            page.screenshot(path=str(OUTPUT / "sign-in.png"), full_page=True)
            page.keyboard.press("Enter")
            page.wait_for_url(f"{server.base}{diagram}")
            page.wait_for_selector("body[data-rendered]", state="attached", timeout=20000)
            assert page.get_attribute("body", "data-rendered") == "true", errors
            assert set(page.eval_on_selector_all(".usm-executed", ELEMENT_IDS)) == APPROVED_PATH
            assert page.eval_on_selector_all(".usm-current", ELEMENT_IDS) == []
            page.screenshot(path=str(OUTPUT / "signed-in-diagram.png"), full_page=True)
            violations = page.evaluate("window.__violations")
            cookie = next(c for c in page.context.cookies() if c["name"] == "usm_session")
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and AUDITOR_TOKEN not in cookie["value"]

            # Several reads, served by either worker: the cookie verifies in both.
            for _ in range(6):
                assert page.goto(f"{server.base}/api/v1/cases").status == 200

            page.goto(f"{server.base}/")
            assert "Signed in as audrey" in page.inner_text("header")
            page.click("header button[type='submit']")  # Sign out
            page.wait_for_url(f"{server.base}/login")
            violations += page.evaluate("window.__violations")
            assert page.goto(f"{server.base}{diagram}").status == 200
            on_login_page(page, server, diagram)
            assert not [c for c in page.context.cookies() if c["name"] == "usm_session"]
            violations += page.evaluate("window.__violations")
        finally:
            browser.close()
    assert not violations, violations
    assert not errors, errors
