"""The pages for people (api/routes/pages*.py): server-rendered, no inline script, a strict policy, each page
showing what its reader could GET through the API, to a browser signed in with the cookie or a client with a
bearer token; a browser without a session goes to /login, a lane holder gets a readable 403 page where the
API refuses it, and every filter of the case search really narrows it."""
from __future__ import annotations

import re
from datetime import datetime, timezone
from urllib.parse import parse_qs, urlsplit

import pytest
from markupsafe import escape

from usm_engine.engine.clock import FixedClock
from tests.api.test_docs_pages import BROWSER, Page, assert_strict_policy
from tests.conftest import APPROVAL, TOKENS, bearer, deploy

HOSTILE = "<script>alert(1)</script>"
PAGES = ["/cases", "/cases/{first}", "/cases/{child}", "/tasks", "/definitions", "/definitions/approval",
         "/compliance", "/compliance/compliance:8.1"]
NAV = ["/", "/cases", "/tasks", "/compliance", "/definitions", "/insight", "/api/v1/docs"]


def _start(client, definition: str, business_key: str | None = None, data: dict | None = None) -> dict:
    response = client.post("/api/v1/cases", json={"definition": definition, "business_key": business_key,
                                                  "data": data or {}}, headers=bearer("system"))
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def _complete(client, case: dict, data: dict) -> dict:
    response = client.post(f"/api/v1/tasks/{case['tasks'][0]['id']}/complete", json={"data": data},
                           headers=bearer("system"))
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


@pytest.fixture
def clock():
    return FixedClock(datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc))


@pytest.fixture
def world(app_factory, clock):
    """Five cases on four days: REQ-1 (a call INC-000007 on WF4, completed, so compliance 8.1 finds it), REQ-2
    (SRQ-000001 on WF5, running), one with a hostile business key, and a case that handed a risk over to a
    child case (RSK-000001)."""
    client = app_factory(clock=clock).test_client()
    assert deploy(client, *APPROVAL, "compliance.toml", "handoff_parent.bpmn", "handoff_risk.bpmn").status_code == 201
    first = _start(client, "approval", "REQ-1", {"call": {
        "number": "INC-000007", "type": "incident", "status": "in progress", "priority": "P2", "workflow": "WF4"}})
    first = _complete(client, _complete(client, first, {"item": "desk", "quantity": 2}), {"approved": True})
    clock.advance(days=1)
    second = _start(client, "approval", "REQ-2", {"call": {"number": "SRQ-000001", "type": "service request",
                                                           "workflow": "WF5"}})
    clock.advance(days=1)
    hostile = _start(client, "approval", HOSTILE, {"note": HOSTILE})
    clock.advance(days=1)
    parent = _complete(client, _start(client, "handoff_parent", data={"number": "INC-000001"}),
                       {"risk_summary": "disk nearly full"})
    child = client.get(f"/api/v1/cases/{parent['id']}", headers=bearer("auditor")).get_json()["child_cases"][0]
    found = {"client": client, "first": first["id"], "second": second["id"], "hostile": hostile["id"],
             "parent": parent["id"], "child": child}
    # Oldest first, and by id among cases of the same moment: the parent and the child it started.
    found["all"] = [found["first"], found["second"], found["hostile"], *sorted([parent["id"], child])]
    return found


def sign_in(client, role: str) -> None:
    assert client.post("/login", data={"token": TOKENS[role]}).status_code == 303


def page(client, path: str, status: int = 200, **headers) -> tuple[str, Page]:
    response = client.get(path, headers={"Accept": BROWSER, **headers})
    assert response.status_code == status, (path, response.status_code, response.get_data(as_text=True)[:400])
    assert response.mimetype == "text/html"
    assert_strict_policy(response, scripts=path.startswith("/definitions/") and status == 200)  # the picture
    html = response.get_data(as_text=True)
    return html, Page(html)


def case_links(parsed: Page) -> list[str]:
    return [link.removeprefix("/cases/") for link in parsed.links if re.fullmatch(r"/cases/[0-9a-f-]{36}", link)]


# --- every page, for an auditor ---------------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["cookie", "bearer"])
def test_every_page_answers_an_auditor(world, how):
    client = world["client"]
    headers = bearer("auditor") if how == "bearer" else {}
    if how == "cookie":
        sign_in(client, "auditor")
    for template in PAGES:
        path = template.format(**world)
        html, parsed = page(client, path, **headers)
        assert parsed.links[0] == "#main" and "main" in parsed.attributes, path  # the skip link comes first
        nav = html[html.index('<nav class="site"'):html.index("</nav>")]
        assert Page(nav).links == NAV, path
        assert ("Signed in as auditor-user" in html) == (how == "cookie"), path
        if path != "/definitions/approval":  # the one page with a script: the picture (below)
            assert not parsed.scripts, path
        assert 'aria-current="page"' in html, path


def test_the_cases_page_lists_the_cases_with_their_call(world):
    client = world["client"]
    sign_in(client, "auditor")
    html, parsed = page(client, "/cases")
    assert case_links(parsed) == world["all"]
    assert "INC-000007" in html and "SRQ-000001" in html and "RSK-000001" in html and "WF4" in html
    labels = set(re.findall(r'<label for="([a-z_]+)">', html))
    fields = {"business_key", "call_number", "definition", "status", "workflow", "created_after", "created_before"}
    assert labels == fields and all(name in parsed.attributes for name in fields)  # each field has its label
    assert 'method="get" action="/cases"' in html


def test_the_case_page_shows_the_call_data_links_trail_and_diagram(world):
    client = world["client"]
    sign_in(client, "auditor")
    html, parsed = page(client, f"/cases/{world['first']}")
    call = html[html.index('id="call"'):html.index("</dl>", html.index('id="call"'))]
    for text in ("INC-000007", "incident", "in progress", "P2", "WF4"):
        assert f"<dd>{text}</dd>" in call, text
    assert f"/api/v1/cases/{world['first']}/diagram" in parsed.links
    assert "<h2>Trail</h2>" in html and "task completed" in html and "Decide" in html
    assert "&#34;quantity&#34;: 2" in html  # the data, as indented JSON

    html, parsed = page(client, f"/cases/{world['parent']}")
    assert case_links(parsed) == [world["child"]] and "RSK-000001" in html  # the child, by its call number
    html, parsed = page(client, f"/cases/{world['child']}")
    assert case_links(parsed) == [world["parent"]] and "handoff_parent" in html  # back to the parent
    assert "Assess risk" in html and "/api/v1/tasks/" in html  # its ready task, and where its form is


def test_the_case_page_shows_an_incident_with_its_element(app_factory):
    client = app_factory().test_client()
    assert deploy(client, "failing_condition.bpmn").status_code == 201
    case = client.post("/api/v1/cases", json={"definition": "failing_condition"}, headers=bearer("system"))
    case = case.get_json()
    if case["status"] != "error":  # the condition is read after the first task
        case = _complete(client, case, {})
    assert case["status"] == "error", case
    html, _ = page(client, f"/cases/{case['id']}", **bearer("auditor"))
    incident = html[html.index('class="incident"'):html.index("</section>", html.index('class="incident"'))]
    assert case["incident"]["element_id"] in incident and "What to do" in incident
    assert str(escape(case["incident"]["message"])) in incident


def test_compliance_goes_from_requirement_to_activities_to_cases(world):
    client = world["client"]
    sign_in(client, "auditor")
    html, parsed = page(client, "/compliance")
    assert "ISO/IEC 20000-1:2018" in html and "Decide" in html and "Submit request" in html
    assert "/compliance/compliance:8.1" in parsed.links and "/compliance/compliance:7.5.1" in parsed.links
    html, parsed = page(client, "/compliance/compliance:8.1")
    assert "Operational planning and control" in html and "Activity_Record" in html
    assert case_links(parsed) == [world["first"]]  # the only case that got to Decide
    html, parsed = page(client, "/compliance/compliance:9.9", 404)
    assert "No requirement &#39;compliance:9.9&#39;" in html and "/compliance" in parsed.links


def test_definitions_show_versions_startability_forms_and_picture(world):
    client = world["client"]
    sign_in(client, "auditor")
    html, parsed = page(client, "/definitions")
    assert {"/definitions/approval", "/definitions/handoff_parent", "/definitions/handoff_risk"} <= set(parsed.links)
    html, parsed = page(client, "/definitions/approval")
    assert "yes, at its start event" in html and "/api/v1/definitions/approval/versions/1/bpmn" in parsed.links
    for field in ("item", "quantity", "approved", "comment"):
        assert f"<code>{field}</code>" in html, field
    assert "Submit request" in html and "Service manager" in html
    sources = [script["src"] for script in parsed.scripts]
    assert sources == [None, "/assets/bpmn-js/bpmn-navigated-viewer.production.min.js", "/assets/usm/diagram.js"]
    block = parsed.scripts[0]["text"]
    assert '<script type="application/json" id="picture-data">' in html and "bpmn:definitions" in block
    assert "</" not in block  # escaped, so the BPMN cannot end the block early
    assert 'id="canvas"' in html
    html, _ = page(client, "/definitions/nothing-here", 404)
    assert "No definition with key &#39;nothing-here&#39; is deployed." in html


def test_tasks_show_every_ready_task_to_an_auditor(world):
    client = world["client"]
    sign_in(client, "auditor")
    html, parsed = page(client, "/tasks")
    assert set(case_links(parsed)) == {world["second"], world["hostile"], world["child"]}
    assert "SRQ-000001" in html and "POST /api/v1/tasks/&lt;id&gt;/complete" in html


# --- who sees what -----------------------------------------------------------------------------------------------

def test_nobody_unsigned_sees_a_page(world):
    client = world["client"]
    for template in PAGES:
        path = template.format(**world)
        sent = client.get(path, headers={"Accept": BROWSER})
        assert sent.status_code == 303, path
        location = urlsplit(sent.headers["Location"])
        assert location.path == "/login" and parse_qs(location.query)["next"] == [path], path
        refused = client.get(path)  # not a browser: the API's 401
        assert refused.status_code == 401 and refused.mimetype == "application/problem+json", path
        assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401, path


def test_a_lane_holder_sees_its_tasks_and_what_the_api_lets_it_read(world):
    client = world["client"]
    sign_in(client, "service-manager")
    html, parsed = page(client, "/tasks")
    assert case_links(parsed) == [] and "<code>service-manager</code>" in html  # no Decide task is ready
    sign_in(client, "requester")
    html, parsed = page(client, "/tasks")
    assert set(case_links(parsed)) == {world["second"], world["hostile"]}  # their Submit tasks; not Assess risk
    html, parsed = page(client, f"/cases/{world['first']}")  # GET /api/v1/cases/{id} is anyone's
    assert "INC-000007" in html and "<h2>Trail</h2>" not in html
    assert f"/api/v1/cases/{world['first']}/diagram" not in parsed.links  # the diagram is the auditors'
    for path in ("/compliance", "/compliance/compliance:8.1"):
        html, parsed = page(client, path, 403)
        assert "This needs one of the roles: auditor, system; your token has: requester." in html, path
        assert "/login?next=" in html and "/tasks" in parsed.links  # sign in otherwise, or go to the work
    for path in ("/cases", "/definitions", "/definitions/approval"):
        page(client, path)


# --- the search ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("query, expected", [
    ("business_key=REQ-2", ["second"]),
    ("call_number=INC-000007", ["first"]),
    ("call_number=RSK-000001", ["child"]),
    ("definition=handoff_risk", ["child"]),
    ("status=completed", ["first", "parent"]),
    ("workflow=WF5", ["second"]),
    ("created_after=2026-03-02&created_before=2026-03-03", ["second"]),
    ("created_after=2026-03-03T00:00:00Z&definition=approval", ["hostile"]),
    ("created_before=2026-03-02", ["first"]),
    ("definition=approval&status=running&business_key=REQ-2", ["second"]),
    ("business_key=&call_number=&definition=&status=&workflow=&created_after=&created_before=",
     ["all"]),  # the form sent with every field left empty
    ("business_key=nobody", []),
])
def test_each_filter_narrows_the_search(world, query, expected):
    client = world["client"]
    html, parsed = page(client, f"/cases?{query}", **bearer("auditor"))
    assert case_links(parsed) == (world["all"] if expected == ["all"] else [world[name] for name in expected])
    if not expected:
        assert "No case matches this search." in html
    for name, value in parse_qs(query).items():  # the form shows the search it made
        if name in ("business_key", "call_number", "workflow"):
            assert f'name="{name}" type="search" value="{value[0]}"' in html


def test_the_search_pages_through_every_case(world):
    client = world["client"]
    sign_in(client, "auditor")
    seen, path, pages = [], "/cases?limit=2&definition=&status=", 0
    while path:
        html, parsed = page(client, path)
        pages += 1
        links = case_links(parsed)
        assert 1 <= len(links) <= 2
        seen += links
        following = [link for link in parsed.links if "cursor=" in link and link != path]
        if pages > 1:
            assert "/cases?limit=2" in parsed.links  # back to the first page, with the same search
        path = following[0] if following else None
        if path:
            assert parse_qs(urlsplit(path).query)["limit"] == ["2"] and "status=" not in path
    assert pages == 3 and seen == world["all"]
    narrowed = page(client, "/cases?limit=1&definition=approval")[1]
    second_page = [link for link in narrowed.links if "cursor=" in link][0]
    assert "definition=approval" in second_page
    assert case_links(page(client, second_page)[1]) == [world["second"]]


@pytest.mark.parametrize("query, sentence", [
    ("created_after=soon", "created_after must be an RFC 3339 time such as 2026-11-27T20:15:00Z."),
    ("status=sleeping", "Status must be one of: running, completed, cancelled, error, suspended."),
    ("limit=0", "Limit must be a whole number from 1 to 500."),
    ("cursor=zzz", "The cursor is not one this server handed out; start again without it."),
])
def test_a_search_that_cannot_be_made_says_why(world, query, sentence):
    html, parsed = page(world["client"], f"/cases?{query}", 422, **bearer("auditor"))
    assert sentence in html and "/cases" in parsed.links


# --- escaping and errors --------------------------------------------------------------------------------------------

def test_a_hostile_business_key_and_data_are_text(world):
    client = world["client"]
    sign_in(client, "auditor")
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    for path in ("/cases", f"/cases/{world['hostile']}", "/tasks", f"/cases?business_key={HOSTILE}"):
        html, parsed = page(client, path)
        assert HOSTILE not in html and escaped in html, path
        assert all(script["src"] for script in parsed.scripts), path
    assert case_links(page(client, f"/cases?business_key={HOSTILE}")[1]) == [world["hostile"]]


def test_an_unknown_case_is_a_404_page(world):
    html, parsed = page(world["client"], "/cases/nope", 404, **bearer("auditor"))
    assert "<h1>Not found</h1>" in html and "No case with id &#39;nope&#39;." in html and "/cases" in parsed.links


def test_the_pages_change_nothing(world):
    client = world["client"]
    sign_in(client, "admin")
    for path in ("/cases", f"/cases/{world['first']}", "/tasks"):
        assert client.post(path, headers={"Accept": BROWSER}).status_code == 405, path
    assert client.get(f"/api/v1/cases/{world['second']}", headers=bearer("auditor")).get_json()["status"] == "running"
