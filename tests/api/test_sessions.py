"""Sign-in for people in a browser (api/sessions.py, api/routes/signin.py): a token pasted into /login becomes
a signed, expiring, HttpOnly, SameSite=Strict cookie that reads with the token's roles and changes nothing."""
from __future__ import annotations

from urllib.parse import parse_qs, quote, urlsplit

import pytest

from usm_engine.api.auth import token_digest, token_entry
from usm_engine.api.sessions import COOKIE, COOKIE_CANNOT_CHANGE
from usm_engine.engine.clock import FixedClock
from tests.api.test_docs_pages import BROWSER, Page, assert_strict_policy
from tests.conftest import APPROVAL, TOKENS, bearer, deploy

JSON = {"Accept": "application/json"}


def sign_in(client, role: str, next_path: str | None = None):
    data = {"token": TOKENS[role], **({"next": next_path} if next_path is not None else {})}
    return client.post("/login", data=data)


def set_cookie_header(response) -> str:
    headers = [value for value in response.headers.getlist("Set-Cookie") if value.startswith(f"{COOKIE}=")]
    assert len(headers) == 1, response.headers
    return headers[0]


def login_next(response) -> str:
    """The page a redirect to /login comes back to."""
    location = urlsplit(response.headers["Location"])
    assert location.path == "/login" and not location.netloc, location
    return parse_qs(location.query)["next"][0]


def cookie_value(client) -> str:
    return client.get_cookie(COOKIE).value


@pytest.fixture
def world(client):
    assert deploy(client, *APPROVAL).status_code == 201
    case = client.post("/api/v1/cases", json={"definition": "approval"}, headers=bearer("system")).get_json()
    return {"case": case["id"], "task": case["tasks"][0]["id"]}


# --- signing in ----------------------------------------------------------------------------------------------

def test_the_sign_in_page_is_a_plain_form_with_a_label_and_no_script(client):
    response = client.get("/login", headers={"Accept": BROWSER})
    assert response.status_code == 200 and response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    page = Page(html)
    assert not page.scripts and page.styles == 0 and page.stylesheets == ["/assets/usm/site.css"]
    assert page.links[0] == "#main" and "main" in page.attributes
    assert '<label for="token">Token</label>' in html and page.attributes["token"]["name"] == "token"
    assert 'method="post" action="/login"' in html and '<button type="submit">Sign in</button>' in html
    policy = assert_strict_policy(response, scripts=False)
    assert policy["form-action"] == ["'self'"]


def test_a_good_token_signs_in_and_goes_to_the_front_page(client):
    response = sign_in(client, "auditor")
    assert response.status_code == 303 and response.headers["Location"] == "/"
    header = set_cookie_header(response)
    assert "HttpOnly" in header and "SameSite=Strict" in header and "Path=/" in header
    assert "Max-Age=28800" in header and "Secure" not in header  # plain http: a Secure cookie would be lost
    value = cookie_value(client)
    assert TOKENS["auditor"] not in value and token_digest(TOKENS["auditor"]) not in value  # only a reference
    assert client.get("/api/v1/cases", headers=JSON).status_code == 200
    home = client.get("/", headers={"Accept": BROWSER}).get_data(as_text=True)
    assert "Signed in as auditor-user" in home and 'action="/logout"' in home and "Sign out" in home


@pytest.mark.parametrize("headers", [{"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},
                                     {"Origin": "https://evil.example"}])
def test_a_sign_in_form_sent_from_another_site_is_refused(client, headers):
    # Login CSRF: another site posting its own token would sign the person in as someone else.
    response = client.post("/login", data={"token": TOKENS["auditor"]}, headers=headers)
    assert response.status_code == 403 and "sent from another site" in response.get_data(as_text=True)
    assert client.get_cookie(COOKIE) is None


@pytest.mark.parametrize("headers", [{"Sec-Fetch-Site": "same-origin"}, {"Sec-Fetch-Site": "none"},
                                     {"Origin": "http://localhost"}, {}])
def test_a_sign_in_form_from_this_server_or_a_plain_client_works(client, headers):
    response = client.post("/login", data={"token": TOKENS["auditor"]}, headers=headers)
    assert response.status_code == 303 and client.get_cookie(COOKIE) is not None


def test_another_site_cannot_sign_a_person_out(client):
    sign_in(client, "auditor")
    assert client.post("/logout", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert client.get_cookie(COOKIE) is not None


def test_the_cookie_is_secure_over_https(app):
    client = app.test_client()
    response = client.post("/login", data={"token": TOKENS["admin"]}, base_url="https://localhost")
    assert response.status_code == 303
    header = set_cookie_header(response)
    assert "Secure" in header and "HttpOnly" in header and "SameSite=Strict" in header


@pytest.mark.parametrize("token", ["wrong-token", "", "   ", TOKENS["auditor"] + "x"])
def test_a_wrong_token_gets_the_page_again_with_401_and_no_cookie(client, token):
    response = client.post("/login", data={"token": token, "next": "/api/v1/cases"})
    assert response.status_code == 401 and response.mimetype == "text/html"
    assert not [value for value in response.headers.getlist("Set-Cookie") if value.startswith(f"{COOKIE}=")]
    html = response.get_data(as_text=True)
    assert "That token was not accepted" in html and "usm token create" in html
    assert Page(html).attributes["problem"]["role"] == "alert"
    assert 'name="next" value="/api/v1/cases"' in html  # kept for the next try
    assert client.get("/", headers={"Accept": BROWSER}).get_data(as_text=True).count("Signed in as") == 0


@pytest.mark.parametrize("target", ["//evil.example", "https://evil.example", "javascript:alert(1)",
                                    "/\\evil.example", "evil.example", "http:/evil.example", "/\t/evil.example",
                                    "", "%2F%2Fevil.example"])
def test_next_never_leaves_this_server(client, target):
    response = sign_in(client, "auditor", target)
    assert response.status_code == 303 and response.headers["Location"] == "/"
    page = client.get(f"/login?next={quote(target, safe='')}").get_data(as_text=True)
    assert 'name="next" value="/"' in page


def test_next_may_be_a_path_here_with_its_query(client):
    response = sign_in(client, "auditor", "/api/v1/cases?limit=5")
    assert response.headers["Location"] == "/api/v1/cases?limit=5"


# --- what the cookie may do ----------------------------------------------------------------------------------

def test_the_cookie_reads_with_the_roles_of_its_token(client, world):
    trail = f"/api/v1/cases/{world['case']}/trail"
    sign_in(client, "auditor")
    assert client.get(trail, headers=JSON).status_code == 200
    assert client.get(f"/api/v1/cases/{world['case']}/diagram", headers={"Accept": BROWSER}).status_code == 200
    sign_in(client, "requester")  # a lane role: the trail is for readers, as for the token
    assert client.get(trail, headers=bearer("requester")).status_code == 403
    refused = client.get(trail, headers=JSON)
    assert refused.status_code == 403 and "your token has: requester" in refused.get_json()["detail"]
    tasks = client.get("/api/v1/tasks", headers=JSON).get_json()["items"]  # a lane holder's worklist
    assert [task["lane"] for task in tasks] == ["Requester"]


def test_a_cookie_can_change_nothing(client, world):
    sign_in(client, "admin")
    before = client.get(f"/api/v1/cases/{world['case']}", headers=JSON).get_json()
    cases = len(client.get("/api/v1/cases", headers=JSON).get_json()["items"])
    attempts = [("POST", "/api/v1/cases", {"definition": "approval"}),
                ("POST", f"/api/v1/tasks/{world['task']}/complete", {"data": {"item": "pen", "quantity": 1}}),
                ("POST", f"/api/v1/cases/{world['case']}/cancel", {})]
    for method, path, body in attempts:
        for accept in (JSON, {"Accept": BROWSER}):  # a browser's form post is not redirected either
            response = client.open(path, method=method, json=body, headers=accept)
            assert response.status_code == 401, (path, response.status_code)
            assert response.mimetype == "application/problem+json"
            assert response.get_json()["detail"] == COOKIE_CANNOT_CHANGE
            assert "Bearer" in response.headers["WWW-Authenticate"]
    assert client.get(f"/api/v1/cases/{world['case']}", headers=JSON).get_json() == before
    assert len(client.get("/api/v1/cases", headers=JSON).get_json()["items"]) == cases
    # the bearer header still works beside the cookie
    assert client.post(f"/api/v1/cases/{world['case']}/cancel", json={}, headers=bearer("system")).status_code == 200


def test_a_bearer_header_always_wins_over_the_cookie(client, world):
    trail = f"/api/v1/cases/{world['case']}/trail"
    sign_in(client, "admin")
    assert client.get(trail, headers={"Authorization": "Bearer nonsense", **JSON}).status_code == 401
    assert client.get(trail, headers={**bearer("requester"), **JSON}).status_code == 403
    assert client.get(trail, headers={"Authorization": "Bearer nonsense", "Accept": BROWSER}).status_code == 401


# --- expiry, tampering, secrets, revocation ------------------------------------------------------------------

def test_the_session_expires_on_the_server_whatever_the_browser_keeps(app_factory):
    clock = FixedClock()
    client = app_factory(clock=clock).test_client()
    sign_in(client, "auditor")
    clock.advance(hours=7, minutes=59)
    assert client.get("/api/v1/cases", headers=JSON).status_code == 200
    clock.advance(minutes=1, seconds=1)
    assert client.get("/api/v1/cases", headers=JSON).status_code == 401  # the cookie is still sent


def test_usm_session_hours_sets_the_lifetime(app_factory):
    clock = FixedClock()
    client = app_factory(clock=clock, USM_SESSION_HOURS="0.5").test_client()
    assert "Max-Age=1800" in set_cookie_header(sign_in(client, "auditor"))
    clock.advance(minutes=30, seconds=1)
    assert client.get("/api/v1/cases", headers=JSON).status_code == 401


def test_a_tampered_cookie_is_refused(client):
    sign_in(client, "auditor")
    value = cookie_value(client)
    payload, rest = value.split(".", 1)
    for forged in (payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB") + "." + rest, value[:-3] + "xyz",
                   "nonsense", value + "x"):
        client.set_cookie(COOKIE, forged)
        assert client.get("/api/v1/cases", headers=JSON).status_code == 401, forged


def test_workers_that_share_the_secret_share_the_sessions(app_factory):
    """What `usm serve` does for its workers: one secret, so a cookie signed by one verifies in another."""
    first = app_factory(USM_SESSION_SECRET="shared").test_client()
    sign_in(first, "auditor")
    other = app_factory(USM_SESSION_SECRET="shared").test_client()
    other.set_cookie(COOKIE, cookie_value(first))
    assert other.get("/api/v1/cases", headers=JSON).status_code == 200
    stranger = app_factory(USM_SESSION_SECRET="another").test_client()
    stranger.set_cookie(COOKIE, cookie_value(first))
    assert stranger.get("/api/v1/cases", headers=JSON).status_code == 401


def test_a_token_removed_from_the_file_ends_its_sessions_at_the_next_start(app_factory, tmp_path):
    tokens = tmp_path / "browser-tokens.toml"
    tokens.write_text(token_entry("carol", ["auditor"], "carols-token"))
    before = app_factory(USM_SESSION_SECRET="kept", USM_TOKENS_FILE=str(tokens)).test_client()
    assert before.post("/login", data={"token": "carols-token"}).status_code == 303
    cookie = cookie_value(before)
    tokens.write_text("")  # revoked; the server is started again with the same secret
    after = app_factory(USM_SESSION_SECRET="kept", USM_TOKENS_FILE=str(tokens)).test_client()
    after.set_cookie(COOKIE, cookie)
    assert after.get("/api/v1/cases", headers=JSON).status_code == 401


# --- signing out, and a browser without a session -----------------------------------------------------------

def test_logout_clears_the_cookie(client):
    sign_in(client, "auditor")
    response = client.post("/logout")
    assert response.status_code == 303 and response.headers["Location"] == "/login"
    header = set_cookie_header(response)
    assert header.startswith(f"{COOKIE}=;") and "Max-Age=0" in header
    assert client.get_cookie(COOKIE) is None
    assert client.get("/api/v1/cases", headers=JSON).status_code == 401
    assert "Sign in" in client.get("/", headers={"Accept": BROWSER}).get_data(as_text=True)


def test_a_browser_without_a_session_is_sent_to_sign_in(client, world):
    path = f"/api/v1/cases/{world['case']}/diagram"
    response = client.get(path, headers={"Accept": BROWSER})
    assert response.status_code == 303 and login_next(response) == path
    listed = client.get("/api/v1/cases?limit=5", headers={"Accept": BROWSER})
    assert listed.status_code == 303 and login_next(listed) == "/api/v1/cases?limit=5"
    # and back again after signing in
    assert sign_in(client, "auditor", path).headers["Location"] == path


@pytest.mark.parametrize("accept", ["application/json", "*/*", None, "application/problem+json"])
def test_an_api_client_without_a_token_still_gets_401(client, world, accept):
    response = client.get(f"/api/v1/cases/{world['case']}/diagram", headers={"Accept": accept} if accept else {})
    assert response.status_code == 401 and response.mimetype == "application/problem+json"
    assert "Authorization: Bearer" in response.get_json()["detail"]
