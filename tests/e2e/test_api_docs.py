"""The API reference in a real headless Chromium, reached from the front page: Swagger UI renders every
operation under the page's Content-Security-Policy, with no console error, no CSP violation and no request to
another origin, and "Try it out" works after "Authorize" with a bearer token."""
from __future__ import annotations

import pytest

from tests.e2e.server import Server
from tests.e2e.test_diagram import CHROMIUM_ARGS, OUTPUT

pytestmark = pytest.mark.e2e
# Recorded before any script of the page runs (Playwright injects it outside the page's policy).
WATCH_CSP = ("window.__violations = []; document.addEventListener('securitypolicyviolation', "
             "event => window.__violations.push(event.violatedDirective + ' ' + event.blockedURI));")


@pytest.fixture
def server(tmp_path, database_url):
    (tmp_path / "definitions").mkdir()
    running = Server(tmp_path, database_url, "docs-admin").start()
    try:
        yield running
    finally:
        running.stop()


def test_the_api_reference_renders_without_errors(server):
    from playwright.sync_api import sync_playwright

    _, document = server.request("GET", "/api/v1/openapi.json")
    operations = sum(1 for item in document["paths"].values() for method in item)
    OUTPUT.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})  # no token: the pages are public
            errors, elsewhere = [], []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("request", lambda request: None if request.url.startswith((server.base, "data:"))
                    else elsewhere.append(request.url))
            page.add_init_script(WATCH_CSP)

            assert page.goto(f"{server.base}/").status == 200
            page.screenshot(path=str(OUTPUT / "home.png"), full_page=True)
            page.click("a[href='/api/v1/docs']")
            page.wait_for_selector("body[data-rendered='true']", state="attached", timeout=30000)
            page.wait_for_selector(".opblock", timeout=30000)
            assert page.url == f"{server.base}/api/v1/docs"
            assert page.eval_on_selector_all(".opblock", "nodes => nodes.length") == operations
            page.screenshot(path=str(OUTPUT / "api-docs.png"))

            # An operation opened shows its example; Authorize takes the token, and "Try it out" uses it.
            page.click("#operations-definitions-definitions_list_definitions .opblock-summary-control")
            page.wait_for_selector("#operations-definitions-definitions_list_definitions .example", timeout=10000)
            page.click(".auth-wrapper .authorize")
            page.fill(".auth-container input[type='text'], .auth-container input[type='password']", server.token)
            page.click(".auth-btn-wrapper .authorize")
            page.click(".auth-btn-wrapper .btn-done")
            block = "#operations-definitions-definitions_list_definitions"
            page.click(f"{block} .try-out__btn")
            page.click(f"{block} .execute")
            page.wait_for_selector(f"{block} .live-responses-table tbody .response-col_status", timeout=15000)
            status = page.inner_text(f"{block} .live-responses-table tbody .response-col_status").strip()
            page.locator(block).screenshot(path=str(OUTPUT / "api-docs-try-it-out.png"))
            violations = page.evaluate("window.__violations")
        finally:
            browser.close()
    assert status == "200", status
    assert not violations, violations
    assert not errors, errors
    assert not elsewhere, f"the page asked another origin for {elsewhere}"
