"""The ways in for people and programmers: the front page at / (HTML, or JSON for a client that asks for it)
and the API reference at /api/v1/docs (Swagger UI, served from this server with no inline script)."""
from __future__ import annotations

from html.parser import HTMLParser

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from tests.api.test_openapi import DOC_URI
from tests.conftest import TOKENS

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"  # what Chromium sends
CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css"}


class Page(HTMLParser):
    """The tags of a page that matter here: links, scripts (with what they hold) and stylesheets."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.links: list[str] = []
        self.scripts: list[dict] = []
        self.stylesheets: list[str] = []
        self.styles = 0
        self.attributes: dict[str, dict] = {}
        self._in_script: dict | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if "id" in attributes:
            self.attributes[attributes["id"]] = attributes
        if tag == "a" and "href" in attributes:
            self.links.append(attributes["href"])
        elif tag == "script":
            self._in_script = {"src": attributes.get("src"), "text": ""}
            self.scripts.append(self._in_script)
        elif tag == "link" and attributes.get("rel") == "stylesheet":
            self.stylesheets.append(attributes["href"])
        elif tag == "style":
            self.styles += 1
        assert not any(name.startswith("on") for name in attributes), f"an inline handler on <{tag}>"
        assert "style" not in attributes, f"an inline style on <{tag}>"

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = None

    def handle_data(self, data):
        if self._in_script is not None:
            self._in_script["text"] += data


def directives(policy: str) -> dict[str, list[str]]:
    return {part.split()[0]: part.split()[1:] for part in policy.split(";") if part.strip()}


def assert_strict_policy(response, *, scripts: bool) -> dict[str, list[str]]:
    policy = directives(response.headers["Content-Security-Policy"])
    assert policy["default-src"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"]
    # A form (sign-in, sign-out) may post to this server and nowhere else.
    assert policy["base-uri"] == ["'none'"] and policy["form-action"] in (["'none'"], ["'self'"])
    if scripts:
        assert policy["script-src"] == ["'self'"]
    else:
        assert "script-src" not in policy  # default-src 'none' forbids every script
    for directive, sources in policy.items():
        assert "'unsafe-inline'" not in sources or directive == "style-src", (directive, sources)
        assert "'unsafe-eval'" not in sources and "*" not in sources, (directive, sources)
        assert not [source for source in sources if "://" in source], f"{directive} allows another origin"
    return policy


def same_origin(url: str) -> bool:
    return url.startswith("/") and not url.startswith("//")


# --- the front page --------------------------------------------------------------------------------------

@pytest.mark.parametrize("accept", [BROWSER, "*/*", None, "text/html"])
def test_the_front_page_is_html_for_a_browser_and_for_anything(client, accept):
    response = client.get("/", headers={"Accept": accept} if accept else {})
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert "Accept" in response.headers["Vary"]
    html = response.get_data(as_text=True)
    page = Page(html)
    assert not page.scripts and page.styles == 0
    assert page.stylesheets == ["/assets/usm/site.css"]
    assert {"/api/v1/docs", "/api/v1/openapi.json", "/healthz", "/metrics"} <= set(page.links)
    assert all(same_origin(link) or link.startswith("#") for link in page.links), page.links
    assert "/api/v1/cases/{case_id}/diagram" in html and "Bearer" in html and "/login" in page.links
    assert_strict_policy(response, scripts=False)


def test_every_link_of_the_front_page_answers(client):
    page = Page(client.get("/").get_data(as_text=True))
    assert client.post("/login", data={"token": TOKENS["admin"]}).status_code == 303  # the pages need a sign-in
    for link in [link for link in page.links if same_origin(link)] + page.stylesheets:
        response = client.get(link)
        assert response.status_code == 200, link


def test_the_front_page_is_keyboard_usable(client):
    """No script and no trap: plain links in reading order, a skip link to the content, a visible focus."""
    page = Page(client.get("/").get_data(as_text=True))
    assert page.links[0] == "#main" and "main" in page.attributes
    css = client.get("/assets/usm/site.css").get_data(as_text=True)
    assert ":focus-visible" in css and "outline" in css


@pytest.mark.parametrize("accept", ["application/json", "application/json, text/html;q=0.5"])
def test_a_client_that_asks_for_json_gets_the_index(client, accept):
    response = client.get("/", headers={"Accept": accept})
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert "Accept" in response.headers["Vary"]
    index = response.get_json()
    document = client.get("/api/v1/openapi.json").get_json()
    registry = Registry().with_resource(DOC_URI, DRAFT202012.create_resource(document))
    validator = Draft202012Validator({"$ref": DOC_URI + "#/components/schemas/Index"}, registry=registry)
    assert not list(validator.iter_errors(index))
    assert index["api_version"] == document["info"]["version"]
    links = index["links"]
    assert {name: link["href"] for name, link in links.items()} == {
        "docs": "/api/v1/docs", "openapi": "/api/v1/openapi.json", "health": "/healthz", "metrics": "/metrics",
        "case_diagram": "/api/v1/cases/{case_id}/diagram", "cases": "/cases", "tasks": "/tasks",
        "compliance": "/compliance", "definitions": "/definitions"}
    for name, link in links.items():
        if link["needs_token"]:
            assert client.get(link["href"]).status_code == 401, name
            continue
        followed = client.get(link["href"])
        assert followed.status_code == 200 and followed.mimetype == link["type"], name


def test_the_front_page_names_the_description_in_its_link_header(client):
    header = client.get("/", headers={"Accept": "application/json"}).headers["Link"]
    assert '</api/v1/openapi.json>; rel="service-desc"' in header
    assert '</api/v1/docs>; rel="service-doc"' in header and '</healthz>; rel="status"' in header


# --- the API reference -----------------------------------------------------------------------------------

@pytest.fixture
def reference(client):
    response = client.get("/api/v1/docs", headers={"Accept": BROWSER})
    assert response.status_code == 200 and response.mimetype == "text/html"
    return response, Page(response.get_data(as_text=True))


def test_the_reference_uses_only_this_servers_files(reference):
    _, page = reference
    sources = [script["src"] for script in page.scripts] + page.stylesheets
    assert sources and all(same_origin(source) for source in sources), sources
    assert "/assets/swagger-ui/swagger-ui-bundle.js" in sources and "/assets/swagger-ui/swagger-ui.css" in sources
    assert [script["src"] for script in page.scripts][-1] == "/assets/usm/api-docs.js"
    assert all(script["src"] and not script["text"].strip() for script in page.scripts), "an inline script"
    assert page.styles == 0


def test_the_files_of_the_reference_are_served_with_their_types(client, reference):
    _, page = reference
    for source in [script["src"] for script in page.scripts] + page.stylesheets:
        response = client.get(source)
        assert response.status_code == 200, source
        assert response.mimetype == CONTENT_TYPES[source[source.rindex("."):]], source
        assert len(response.get_data()) > 100, source
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert len(client.get("/assets/swagger-ui/swagger-ui-bundle.js").get_data()) > 500_000  # the real bundle


def test_the_reference_loads_the_served_document(client, reference):
    _, page = reference
    url = page.attributes["swagger-ui"]["data-openapi"]
    assert url == "/api/v1/openapi.json"
    assert client.get(url).status_code == 200
    setup = client.get("/assets/usm/api-docs.js").get_data(as_text=True)
    assert "data-openapi" in setup and "validatorUrl: null" in setup and "http" not in setup


def test_the_reference_has_a_policy_without_inline_script(reference):
    response, _ = reference
    policy = assert_strict_policy(response, scripts=True)
    assert policy["connect-src"] == ["'self'"]  # the document, and "Try it out" against this server only
    assert policy["style-src"] == ["'self'"]
    assert response.headers["X-Frame-Options"] == "DENY"


@pytest.mark.parametrize("header", [None, "Bearer unknown"])
def test_the_reference_needs_no_token_like_the_document(client, header):
    headers = {"Authorization": header} if header else {}
    for path in ("/api/v1/docs", "/api/v1/openapi.json", "/", "/assets/swagger-ui/swagger-ui.css"):
        assert client.get(path, headers=headers).status_code == 200, path


def test_the_document_lists_the_pages_as_public(client):
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    for path in ("/", "/api/v1/docs", "/assets/swagger-ui/{filename}"):
        assert "security" not in paths[path]["get"], path
    assert "bearer" in str(client.get("/api/v1/openapi.json").get_json()["components"]["securitySchemes"])


@pytest.mark.parametrize("path", ["/assets/swagger-ui/nothing.js", "/assets/swagger-ui/../../app.py",
                                  "/assets/swagger-ui/%2e%2e/routes/meta.py"])
def test_a_missing_or_outside_file_is_a_404_problem(client, path):
    response = client.get(path)
    assert response.status_code == 404 and response.mimetype == "application/problem+json"
