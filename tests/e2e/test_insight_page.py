"""The service-level page (/insight) in a real headless Chromium against a real `usm serve` of the USM definitions,
over the known history of tests/engine/test_insight.py laid down in the last days (on an injected clock, before
the server starts): a service manager signs in with the keyboard, sees three charts each beside its table,
narrows the period to one workflow with the keyboard, and downloads a CSV. No console error, no CSP violation;
a full-page screenshot in test-output/page-insight.png."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.e2e.test_diagram import OUTPUT
from tests.e2e.test_pages import browser_page, tab_to, usm_server
from tests.engine.test_insight import make_history

pytestmark = pytest.mark.e2e
MANAGER_TOKEN = "insight-manager-token"


@pytest.fixture
def server(tmp_path, database_url, app_factory):
    today = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
    make_history(app_factory, today - timedelta(days=8))  # all of it, to its last step, before now
    with usm_server(tmp_path, database_url, "insight-admin", {"morgan": ("service-manager", MANAGER_TOKEN)}) as running:
        yield running


def test_a_service_manager_reads_the_service_levels(server):
    OUTPUT.mkdir(exist_ok=True)
    with browser_page() as (page, errors):
        assert page.goto(f"{server.base}/insight").status == 200
        assert page.url == f"{server.base}/login?next=/insight", page.url
        tab_to(page, "token")
        page.keyboard.type(MANAGER_TOKEN)
        page.keyboard.press("Enter")
        page.wait_for_url(f"{server.base}/insight")
        assert page.locator("h1").inner_text() == "Service levels"
        assert page.eval_on_selector_all("svg.chart", "nodes => nodes.map(n => n.id)") == [
            "met-chart", "time-chart", "backlog-chart"]
        # each chart has its bars (drawn to scale) and a table beside it with the same figures
        assert page.locator("#met-chart rect.bar-met").count() == 3  # P1, P2 (Z, two days earlier) and P3
        assert page.locator("#met-chart rect.bar-breached").count() == 1
        assert page.locator("#met-table tbody th").all_inner_texts() == ["P1", "P2", "P3", "P4", "unclassified"]
        assert page.locator("#time-table tbody th").all_inner_texts() == ["WF4", "WF5"]
        assert page.locator("#backlog-table tbody th").all_inner_texts() == [
            "Operations", "Service desk", "Workflow coordinator"]
        chart, table = (page.locator(selector).bounding_box() for selector in ("#met-chart", "#met-table"))
        assert table["x"] >= chart["x"] + chart["width"], "the table stands beside its chart"
        page.screenshot(path=str(OUTPUT / "page-insight.png"), full_page=True)
        violations = page.evaluate("window.__violations")

        tab_to(page, "workflow")
        page.keyboard.type("WF5")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert "workflow=WF5" in page.url
        assert page.locator("#time-table tbody th").all_inner_texts() == ["WF5"]
        assert page.locator("#backlog-table tbody th").all_inner_texts() == ["Operations"]
        with page.expect_download() as download:
            page.click("#steps-table caption a")
        lines = Path(download.value.path()).read_text().splitlines()
        assert lines[0] == "process,element_id,name,lane,completed,p50_seconds,p90_seconds" and len(lines) == 7
        violations += page.evaluate("window.__violations")
    assert not violations, violations
    assert not errors, errors
