"""The path of a case drawn on its diagram (bpmn-js, installed from npm and served from node_modules)."""
from __future__ import annotations

import json
from pathlib import Path

from flask import Blueprint, Response, abort, render_template_string, send_from_directory

from ..contract import operation
from ..http import engine, requires
from .audit import READERS

bp = Blueprint("diagram", __name__)

ROOT = Path(__file__).resolve().parents[2]
BPMN_JS_DIST = ROOT / "node_modules" / "bpmn-js" / "dist"
STATIC = Path(__file__).resolve().parent.parent / "static"

# The page runs no inline script (the data sits in a JSON block), so the policy can forbid it.
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                           "img-src 'self' data:; font-src 'self' data:; connect-src 'none'; frame-ancestors 'none'; "
                           "base-uri 'none'; form-action 'none'")

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Case {{ case.id }} — {{ case.definition }} v{{ case.version }}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/assets/bpmn-js/assets/diagram-js.css">
<link rel="stylesheet" href="/assets/bpmn-js/assets/bpmn-js.css">
<link rel="stylesheet" href="/assets/usm/diagram.css">
</head><body>
<div id="drawing">
<nav id="processes" aria-label="Processes this case ran">{% for diagram in diagrams %}
<button type="button" data-definition="{{ diagram.definition }}">{{ diagram.definition }} v{{ diagram.version }}</button>{% endfor %}
</nav>
<div id="canvas"></div>
</div>
<div id="trail">
<h1>{{ case.definition }} v{{ case.version }} — {{ case.status }}{% if case.business_key %} — {{ case.business_key }}{% endif %}</h1>
<table><thead><tr><th>#</th><th>at</th><th>event</th><th>element</th><th>who</th></tr></thead><tbody>
{% for event in trail %}<tr><td>{{ event.seq }}</td><td>{{ event.at }}</td><td>{{ event.type }}</td>
<td>{% if event.element_id %}{% set owner = event.element_definition or case.definition %}<a href="#{{ event.element_id }}" data-element="{{ event.element_id }}" data-definition="{{ owner }}">{{ event.element_name or event.element_id }}</a>{% if owner != case.definition %} <small>({{ owner }})</small>{% endif %}{% endif %}</td>
<td>{{ event.actor }}</td></tr>
{% endfor %}</tbody></table></div>
<script type="application/json" id="case-data">{{ payload | safe }}</script>
<script src="/assets/bpmn-js/bpmn-navigated-viewer.production.min.js"></script>
<script src="/assets/usm/diagram.js"></script>
</body></html>"""


# The media type of every kind of file the asset routes serve, fixed here (not guessed from the host's
# mime.types, which differs between systems) so the OpenAPI document can name them all.
ASSET_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".woff": "font/woff",
               ".woff2": "font/woff2", ".ttf": "font/ttf", ".eot": "application/vnd.ms-fontobject",
               ".map": "application/json"}
OTHER_ASSET = "application/octet-stream"
ASSET_CONTENT = {200: [OTHER_ASSET, *dict.fromkeys(ASSET_TYPES.values())]}


def _send_asset(directory: Path, filename: str):
    mimetype = ASSET_TYPES.get(Path(filename).suffix.lower(), OTHER_ASSET)
    return send_from_directory(directory, filename, max_age=3600, mimetype=mimetype)


def _json_for_html(value) -> str:
    # Inside <script type="application/json"> only "</" could end the block early; escape it (and &, <, >).
    return (json.dumps(value).replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e"))


@bp.get("/api/v1/cases/<case_id>/diagram")
@operation("An HTML page: the case's definition version, and every definition it called, drawn with "
           "bpmn-js, the executed path and current tasks marked, the trail beside it", roles="auditor, system", tag="audit",
           responses={200: "", 404: "Problem"}, response_content={200: "text/html"})
@requires(*READERS)
def case_diagram(case_id):
    picture = engine().case_diagram(case_id)
    payload = {"diagrams": picture["diagrams"]}
    html = render_template_string(PAGE, case=picture["case"], trail=picture["trail"], diagrams=picture["diagrams"],
                                  payload=_json_for_html(payload))
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.get("/assets/bpmn-js/<path:filename>")
@operation("bpmn-js files (from the npm package) for the diagram page", roles="anyone", tag="meta", public=True,
           responses={200: "", 404: "Problem"}, response_content=ASSET_CONTENT)
def bpmn_js_asset(filename):
    if not BPMN_JS_DIST.is_dir():
        abort(404, description="bpmn-js is not installed: run `npm ci` in the repository (the set-up command does)")
    return _send_asset(BPMN_JS_DIST, filename)


@bp.get("/assets/usm/<path:filename>")
@operation("The diagram page's own script and style", roles="anyone", tag="meta", public=True,
           responses={200: "", 404: "Problem"}, response_content=ASSET_CONTENT)
def usm_asset(filename):
    return _send_asset(STATIC, filename)
