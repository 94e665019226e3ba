"""Security headers on every response; the HTML page carries a Content-Security-Policy without inline script."""
from __future__ import annotations

from tests.conftest import APPROVAL, bearer, deploy

EXPECTED = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}


def test_json_responses_carry_the_headers(client):
    for response in (client.get("/healthz"), client.get("/api/v1/cases", headers=bearer("auditor")),
                     client.get("/api/v1/cases")):  # 200, 200 and a 401 problem
        for name, value in EXPECTED.items():
            assert response.headers[name] == value
        assert response.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
        assert response.headers["Cache-Control"] == "no-store"


def test_the_diagram_page_has_a_policy_without_inline_script(client):
    assert deploy(client, *APPROVAL).status_code == 201
    case = client.post("/api/v1/cases", json={"definition": "approval"}, headers=bearer("system")).get_json()
    page = client.get(f"/api/v1/cases/{case['id']}/diagram", headers=bearer("auditor"))
    assert page.status_code == 200 and page.mimetype == "text/html"
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    body = page.get_data(as_text=True)
    assert "<script>" not in body  # only src= scripts and a non-executed JSON block


def test_the_app_never_runs_in_debug_mode(app_factory, monkeypatch):
    monkeypatch.setenv("FLASK_DEBUG", "1")
    assert app_factory().debug is False


def test_a_hostile_business_key_is_escaped_on_the_page(client):
    assert deploy(client, *APPROVAL).status_code == 201
    hostile = "</script><img src=x onerror=alert(1)>"
    case = client.post("/api/v1/cases", json={"definition": "approval", "business_key": hostile},
                       headers=bearer("system")).get_json()
    body = client.get(f"/api/v1/cases/{case['id']}/diagram", headers=bearer("auditor")).get_data(as_text=True)
    assert "<img src=x" not in body and "&lt;img src=x" in body
