"""The ways in that need no token: health, the OpenAPI document, its interactive reference (Swagger UI at
/api/v1/docs) and the front page at / that points to them, so load balancers, people and clients can find
their way before they hold a token."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

from flask import Blueprint, Response, abort, current_app, jsonify, render_template, request, send_from_directory, \
    url_for
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from ..contract import operation
from ..http import engine
from ..sessions import signed_in
from .diagram import ASSET_CONTENT, ASSET_TYPES, OTHER_ASSET, STATIC

bp = Blueprint("meta", __name__, template_folder="../templates")

SWAGGER_UI = STATIC / "swagger-ui"  # not in git: npm's postinstall script copies it there from swagger-ui-dist

# The front page runs no script at all; its one form, "Sign out", posts to this server.
HOME_POLICY = ("default-src 'none'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
               "base-uri 'none'; form-action 'self'")
# The reference runs no inline script either: its set-up is /assets/usm/api-docs.js. connect-src 'self' lets
# Swagger UI fetch the document and send "Try it out" requests to this server and nowhere else; img-src data:
# is for the icons swagger-ui.css embeds. Swagger UI sets its inline styles through the DOM (React's style
# property), which CSP does not govern, so style-src stays 'self' (tests/e2e/test_api_docs.py would see a
# violation in Chromium).
DOCS_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
               "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")

DESCRIPTION = ("A workflow engine for USM (Unified Service Management): it runs service-management workflows "
               "written as BPMN 2.0 behind this HTTP API.")
# (name, endpoint, media type, title): the public pages the front page lists, when the app has them.
PUBLIC_LINKS = (
    ("docs", "meta.api_docs", "text/html",
     "API reference: every operation with example requests and responses; 'Try it out' after 'Authorize'"),
    ("openapi", "meta.openapi_document", "application/json", "The OpenAPI 3.1 document, for code generators"),
    ("health", "meta.healthz", "application/json", "Liveness and database reachability"),
    ("metrics", "metrics.metrics", "text/plain", "Prometheus metrics"),
)
# (name, endpoint, title): the pages for people (api/routes/pages*.py), for a token or a browser signed in.
PAGE_LINKS = (
    ("cases", "case_pages.cases", "Cases, searched by business key, call number, definition, status, workflow and "
                                  "period; each with its call record, data, linked cases, incident and trail"),
    ("tasks", "work_pages.tasks", "The ready tasks of your lanes (auditor, system and admin: every ready task)"),
    ("compliance", "work_pages.compliance", "Requirement → activities → cases (auditor, system)"),
    ("definitions", "work_pages.definitions", "The deployed definitions with their pictures, versions and forms"),
)
# RFC 8631 relations, so a client can find the description from the Link header alone.
LINK_RELATIONS = {"docs": "service-doc", "openapi": "service-desc", "health": "status"}


def index() -> dict:
    """What / lists, as the JSON a client gets and the data the HTML page is written from."""
    links = {name: {"href": url_for(endpoint), "type": media, "title": title, "needs_token": False}
             for name, endpoint, media, title in PUBLIC_LINKS if endpoint in current_app.view_functions}
    links["case_diagram"] = {
        "href": unquote(url_for("diagram.case_diagram", case_id="{case_id}")), "type": "text/html",
        "title": "A case drawn on its diagram, beside its audit trail (a bearer token, or a browser signed in "
                 "at /login, with the auditor, system or admin role)", "needs_token": True, "templated": True}
    links.update({name: {"href": url_for(endpoint), "type": "text/html", "title": title, "needs_token": True}
                  for name, endpoint, title in PAGE_LINKS if endpoint in current_app.view_functions})
    version = current_app.extensions["usm_openapi"]["info"]["version"]
    return {"name": "usm-engine", "description": DESCRIPTION, "api_version": version, "links": links}


@bp.get("/")
@operation("This service's front page: what it is and where to go, as HTML, or the same links as JSON for a "
           "client that asks for application/json", roles="anyone", tag="meta", public=True,
           responses={200: "Index"}, response_content={200: ["application/json", "text/html"]})
def home() -> Response:
    listed = index()
    # A browser asks for text/html, and a client that accepts anything (curl's */*) gets the page as well:
    # JSON goes to a client that prefers it.
    if request.accept_mimetypes.best_match(["text/html", "application/json"]) == "application/json":
        response = jsonify(listed)
    else:
        principal = signed_in()
        response = Response(render_template("home.html", index=listed, user=principal.user if principal else None),
                            mimetype="text/html")
        response.headers["Content-Security-Policy"] = HOME_POLICY
    response.vary.add("Accept")
    response.headers["Link"] = ", ".join(f'<{listed["links"][name]["href"]}>; rel="{relation}"'
                                         for name, relation in LINK_RELATIONS.items() if name in listed["links"])
    return response


@bp.get("/api/v1/docs")
@operation("This API reference: Swagger UI over the OpenAPI document, an HTML page ('Authorize' takes a bearer "
           "token for 'Try it out')", roles="anyone", tag="meta", public=True, responses={200: ""},
           response_content={200: "text/html"})
def api_docs() -> Response:
    response = Response(render_template("api_docs.html", openapi=url_for("meta.openapi_document")),
                        mimetype="text/html")
    response.headers["Content-Security-Policy"] = DOCS_POLICY
    return response


@bp.get("/assets/swagger-ui/<path:filename>")
@operation("Swagger UI files (from the npm package swagger-ui-dist) for the API reference", roles="anyone",
           tag="meta", public=True, responses={200: "", 404: "Problem"}, response_content=ASSET_CONTENT)
def swagger_ui_asset(filename: str) -> Response:
    if not SWAGGER_UI.is_dir():
        abort(404, description="Swagger UI is not installed: run `npm ci` in the repository (the set-up command "
                               "does)")
    mimetype = ASSET_TYPES.get(Path(filename).suffix.lower(), OTHER_ASSET)
    return send_from_directory(SWAGGER_UI, filename, max_age=3600, mimetype=mimetype)


@bp.get("/healthz")
@operation("Liveness and database reachability", roles="anyone", responses={200: "Health", 503: "Health"},
           tag="meta", public=True)
def healthz():
    try:
        with engine().db.reader.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError:
        current_app.logger.warning("health check: database unreachable", exc_info=True)
        return jsonify({"status": "degraded", "database": "unreachable"}), 503
    return jsonify({"status": "ok", "database": "ok"})


@bp.get("/api/v1/openapi.json")
@operation("This OpenAPI 3.1 document", roles="anyone", responses={200: ""}, tag="meta", public=True)
def openapi_document():
    return jsonify(current_app.extensions["usm_openapi"])
