"""GET /api/v1/insight/…: the figures of a period as JSON and as CSV, who may read them, what a wrong period is
answered with, and the page /insight that draws them; over the known history of tests/engine/test_insight.py."""
from __future__ import annotations

import csv
import io

import pytest

from tests.conftest import TOKENS, bearer
from tests.engine.test_insight import HOUR, START, make_history

WEEK = "from=2026-03-01T00:00:00Z&to=2026-03-08T00:00:00Z"
SERVICE_LEVEL_HEADER = ("workflow,priority,resolved,met,breached,without_target,p50_seconds,p90_seconds,open,"
                        "escalations,reclassifications")


@pytest.fixture
def client(app_factory):
    h, _ = make_history(app_factory, START)
    return h.driver.client


def get(client, path: str, role: str = "service-manager", **headers):
    return client.get(path, headers={**bearer(role), **headers})


def test_service_levels_as_json(client):
    response = get(client, f"/api/v1/insight/service-levels?{WEEK}&workflow=WF5&priority=P1")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.get_json() == {
        "from": "2026-03-01T00:00:00Z", "to": "2026-03-08T00:00:00Z", "workflow": "WF5", "priority": "P1",
        "by": "workflow-priority", "items": [
            {"workflow": "WF5", "priority": "P1", "resolved": 2, "met": 1, "breached": 1, "without_target": 0,
             "p50_seconds": int(3.5 * HOUR), "p90_seconds": 8 * HOUR, "open": 0, "escalations": 1,
             "reclassifications": 0}]}
    total = get(client, f"/api/v1/insight/service-levels?{WEEK}&by=total").get_json()
    assert total["by"] == "total" and total["items"] == [
        {"resolved": 4, "met": 2, "breached": 1, "without_target": 1, "p50_seconds": int(3.5 * HOUR),
         "p90_seconds": 10 * HOUR, "open": 3, "escalations": 1, "reclassifications": 1}]


def test_service_levels_as_csv_by_query_or_by_accept_header(client):
    by_query = get(client, f"/api/v1/insight/service-levels?{WEEK}&format=csv")
    by_header = get(client, f"/api/v1/insight/service-levels?{WEEK}", Accept="text/csv")
    for response in (by_query, by_header):
        assert response.status_code == 200 and response.mimetype == "text/csv"
        assert response.headers["Content-Disposition"] == (
            'attachment; filename="service-levels_20260301T000000Z_20260308T000000Z.csv"')
        assert response.get_data(as_text=True) == "\n".join([
            SERVICE_LEVEL_HEADER, "WF4,P2,0,0,0,0,,,1,0,0", "WF5,P1,2,1,1,0,12600,28800,0,1,0",
            "WF5,P2,0,0,0,0,,,1,0,0", "WF5,P3,1,1,0,0,36000,36000,0,0,0", "WF5,P4,0,0,0,0,,,1,0,0",
            "WF5,,1,0,0,1,9000,9000,0,0,1", ""])
    # JSON wins when the client takes either (a browser's */*), and ?format= wins over the header
    assert get(client, f"/api/v1/insight/service-levels?{WEEK}", Accept="*/*").mimetype == "application/json"
    assert get(client, f"/api/v1/insight/service-levels?{WEEK}&format=json",
               Accept="text/csv").mimetype == "application/json"
    by_priority = get(client, f"/api/v1/insight/service-levels?{WEEK}&by=priority&format=csv").get_data(as_text=True)
    assert by_priority.splitlines()[:2] == [SERVICE_LEVEL_HEADER.replace("workflow,", ""),
                                            "P1,2,1,1,0,12600,28800,0,1,0"]


def test_steps_and_backlog_as_json_and_csv(client):
    steps = get(client, f"/api/v1/insight/steps?{WEEK}&workflow=WF4").get_json()
    assert (steps["workflow"], steps["priority"]) == ("WF4", None)
    assert steps["items"][0] == {"process": "usm-frame-classify", "element_id": "Activity_Classify",
                                 "name": "Classify", "lane": "Service desk", "completed": 2, "p50_seconds": HOUR,
                                 "p90_seconds": HOUR}
    rows = list(csv.reader(io.StringIO(get(client, f"/api/v1/insight/steps?{WEEK}&format=csv").get_data(
        as_text=True))))
    assert rows[0] == ["process", "element_id", "name", "lane", "completed", "p50_seconds", "p90_seconds"]
    assert rows[2] == ["usm-frame-close", "Activity_EvaluateClose", "Evaluate & close", "Service desk", "4", "1800",
                       "3600"]
    assert len(rows) == 9
    backlog = get(client, f"/api/v1/insight/backlog?{WEEK}", role="auditor").get_json()
    assert [(lane["lane"], lane["tasks"], lane["oldest_since"]) for lane in backlog["items"]] == [
        ("Operations", 3, "2026-03-04T02:00:00Z"), ("Service desk", 1, "2026-03-05T02:00:00Z"),
        ("Workflow coordinator", 1, "2026-03-02T07:00:00Z")]
    assert get(client, f"/api/v1/insight/backlog?{WEEK}&format=csv", role="system").get_data(as_text=True) == (
        "lane,lane_role,tasks,open_calls,oldest_since,oldest_age_seconds\n"
        "Operations,operations,3,3,2026-03-04T02:00:00Z,338400\n"
        "Service desk,service-desk,1,1,2026-03-05T02:00:00Z,252000\n"
        "Workflow coordinator,workflow-coordinator,1,1,2026-03-02T07:00:00Z,493200\n")


def test_the_period_is_the_last_30_days_unless_given(client):
    # the history's clock stands where it left off: 06:00 on 8 March
    body = get(client, "/api/v1/insight/service-levels?by=total").get_json()
    assert (body["from"], body["to"]) == ("2026-02-06T06:00:00Z", "2026-03-08T06:00:00Z")
    assert body["items"][0]["resolved"] == 5  # Z too; G's plan was done after the week, so G is still open
    assert get(client, "/api/v1/insight/backlog?to=2026-03-02T04:00:00Z").get_json()["from"] == "2026-01-31T04:00:00Z"
    # a period that would start before the calendar does starts with it
    assert get(client, "/api/v1/insight/steps?to=0001-01-02T00:00:00Z").get_json()["from"] == "0001-01-01T00:00:00Z"


@pytest.mark.parametrize(("query", "field", "detail"), [
    ("from=yesterday", "from", "from must be an RFC 3339 time such as 2026-11-27T20:15:00Z"),
    ("to=2026-02-30T00:00:00Z", "to", "to must be an RFC 3339 time such as 2026-11-27T20:15:00Z"),
    ("from=2026-03-08T00:00:00Z&to=2026-03-01T00:00:00Z", "from",
     "the period is empty: from (2026-03-08T00:00:00Z) must be before to (2026-03-01T00:00:00Z)"),
    ("from=2026-03-01T00:00:00Z&to=2026-03-01T01:00:00%2B01:00", "from",
     "the period is empty: from (2026-03-01T00:00:00Z) must be before to (2026-03-01T00:00:00Z)"),
    ("workflow=WORKFLOW5", "workflow", "workflow must be 1 to 8 characters, such as WF3"),
    ("by=lane", "by", "by must be one of: workflow-priority, workflow, priority, total"),
    ("format=xlsx", "format", "format must be one of: json, csv"),
    ("priority=P%00", "priority", "the query parameter priority contains a NUL character (%00); remove it")])
def test_a_wrong_period_or_filter_is_refused_with_a_sentence(client, query, field, detail):
    response = get(client, f"/api/v1/insight/service-levels?{query}")
    assert response.status_code == 422 and response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["detail"] == detail and problem["errors"][0]["field"] == field


@pytest.mark.parametrize("path", ["/api/v1/insight/service-levels", "/api/v1/insight/steps",
                                  "/api/v1/insight/backlog", "/insight"])
def test_who_may_read_the_figures(client, path):
    assert client.get(path).status_code == 401
    for role in ("admin", "auditor", "system", "service-manager"):
        assert get(client, path, role).status_code == 200, role
    for role in ("designer", "requester", "none"):
        response = get(client, path, role)
        assert response.status_code == 403, role
        assert "this needs one of the roles: auditor, system, service-manager" in response.get_data(
            as_text=True).replace("This needs", "this needs")


def test_cases_are_found_by_call_number_and_workflow(client):
    found = get(client, "/api/v1/cases?call_number=SRQ-000003", role="requester").get_json()["items"]
    assert [case["data"]["call"]["number"] for case in found] == ["SRQ-000003"]
    found = get(client, "/api/v1/cases?workflow=WF4").get_json()["items"]
    assert [case["definition"] for case in found] == ["usm-recover"]
    assert get(client, "/api/v1/cases?call_number=SRQ-999999").get_json()["items"] == []


def test_the_page_draws_each_figure_beside_its_table(client):
    response = get(client, "/insight?from=2026-03-01T00:00&to=2026-03-08T00:00", role="service-manager")
    assert response.status_code == 200 and response.mimetype == "text/html"
    policy = response.headers["Content-Security-Policy"]
    assert "script-src" not in policy and "'unsafe-inline'" not in policy and "default-src 'none'" in policy
    html = response.get_data(as_text=True)
    assert html.count('<svg class="chart"') == 3 and ' style=' not in html and "<script" not in html
    # met and breached per priority: P1 has one of each, P3 one met, and E no target
    assert '<title>P1, met: 1</title>' in html and '<title>P1, breached: 1</title>' in html
    assert '<title>unclassified, untargeted: 1</title>' in html
    # p50 and p90 per workflow, in hours: WF5's calls took 2.5, 3.5, 8 and 10 h
    assert '<title>WF5, p50: 3.5 h</title>' in html and '<title>WF5, p90: 10 h</title>' in html
    assert '<title>Operations, tasks: 3</title>' in html
    assert '<th scope="row">P1</th><td>2</td><td>1</td><td>1</td><td>0</td><td>3.5 h</td><td>8.0 h</td>' in html
    assert ('href="/api/v1/insight/backlog?format=csv&amp;from=2026-03-01T00:00:00Z&amp;to=2026-03-08T00:00:00Z"'
            in html)
    assert 'value="2026-03-01T00:00"' in html and 'value="2026-03-08T00:00"' in html


def test_the_page_says_what_is_wrong_with_the_period(client):
    response = get(client, "/insight?from=2026-03-08T00:00&to=2026-03-01T00:00")
    assert response.status_code == 422 and response.mimetype == "text/html"
    assert ("The period is empty: from (2026-03-08T00:00:00Z) must be before to (2026-03-01T00:00:00Z)."
            in response.get_data(as_text=True))


def test_a_signed_in_browser_reads_the_page_and_the_csv(client):
    assert client.post("/login", data={"token": TOKENS["service-manager"]}).status_code == 303
    assert client.get("/insight").status_code == 200
    assert client.get(f"/api/v1/insight/steps?{WEEK}&format=csv").mimetype == "text/csv"
    client.post("/logout")
    page = client.get("/insight", headers={"Accept": "text/html"})
    assert page.status_code == 303 and page.headers["Location"].startswith("/login")
