"""The path of a case drawn on its diagram with bpmn-js (its viewer is copied from npm into static/bpmn-js/ by
`npm ci`, and packed into the wheel from there)."""
from __future__ import annotations

import json
from pathlib import Path

from flask import Blueprint, Response, abort, render_template, send_from_directory

from ..contract import operation
from ..http import engine, requires
from .audit import READERS

# The page itself is templates/case_diagram.html, so a person can edit it as HTML.
bp = Blueprint("diagram", __name__, template_folder="../templates")

STATIC = Path(__file__).resolve().parent.parent / "static"
BPMN_JS = STATIC / "bpmn-js"   # not in git: npm's postinstall script copies it there
USM_ASSETS = STATIC / "usm"

# The page runs no inline script (the data sits in a JSON block), so the policy can forbid it.
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                           "img-src 'self' data:; font-src 'self' data:; connect-src 'none'; frame-ancestors 'none'; "
                           "base-uri 'none'; form-action 'none'")



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


def json_for_html(value) -> str:
    # Inside <script type="application/json"> only "</" could end the block early; escape it (and &, <, >).
    return (json.dumps(value).replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e"))


# The trail events that count as a step the case took (as engine/case_views.py's executed_path counts them).
_STEPS = {"task_completed", "activity_completed", "event_passed", "gateway_taken", "timer_fired", "message_received",
          "message_sent"}


def mark_versions(picture: dict) -> list[dict]:
    """For a case migrated to another version of its definition: its moves (when, from which version to
    which), and on the drawing of its current version the steps it took on an earlier one, under their
    current ids (a mapping renames them), as `earlier`. The trail says per event which version it ran on."""
    case, trail = picture["case"], picture["trail"]
    moves = [{"at": event["at"], "actor": event["actor"], "from_version": event["details"].get("from_version"),
              "to_version": event["details"].get("to_version"), "mapping": event["details"].get("mapping") or {}}
             for event in trail if event["type"] == "case_migrated"]
    main = next((d for d in picture["diagrams"] if d["definition"] == case["definition"]), None)
    if not moves or main is None:
        return moves
    earlier, now = [], set()
    for event in trail:
        if not event["element_id"] or (event.get("element_definition") or case["definition"]) != case["definition"]:
            continue
        element_id = event["element_id"]
        for move in moves:  # follow the element through every later move's renames
            if (event["version"] or 0) < (move["to_version"] or 0):
                element_id = move["mapping"].get(element_id, element_id)
        event["drawn_as"] = element_id  # the trail's link finds the element on the current drawing
        if event["type"] not in _STEPS:
            continue
        if event["version"] == case["version"]:
            now.add(element_id)
        elif element_id not in earlier:
            earlier.append(element_id)
    main["earlier"] = [element_id for element_id in earlier if element_id not in now]
    main["executed"] = main["executed"] + [e for e in main["earlier"] if e not in main["executed"]]
    return moves


@bp.get("/api/v1/cases/<case_id>/diagram")
@operation("An HTML page: the case's definition version, and every definition it called, drawn with "
           "bpmn-js, the executed path and current tasks marked, the trail beside it",
           roles="auditor, system", tag="audit",
           responses={200: "", 404: "Problem"}, response_content={200: "text/html"})
@requires(*READERS)
def case_diagram(case_id):
    picture = engine().case_diagram(case_id)
    moves = mark_versions(picture)
    payload = {"diagrams": picture["diagrams"], "migrations": moves}
    html = render_template("case_diagram.html", case=picture["case"], trail=picture["trail"],
                           diagrams=picture["diagrams"], migrations=moves, payload=json_for_html(payload))
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.get("/assets/bpmn-js/<path:filename>")
@operation("bpmn-js files (from the npm package) for the diagram page", roles="anyone", tag="meta", public=True,
           responses={200: "", 404: "Problem"}, response_content=ASSET_CONTENT)
def bpmn_js_asset(filename):
    if not BPMN_JS.is_dir():
        abort(404, description="bpmn-js is not installed: run `npm ci` in the repository (the set-up command does)")
    return _send_asset(BPMN_JS, filename)


@bp.get("/assets/usm/<path:filename>")
@operation("The diagram page's own script and style", roles="anyone", tag="meta", public=True,
           responses={200: "", 404: "Problem"}, response_content=ASSET_CONTENT)
def usm_asset(filename):
    return _send_asset(USM_ASSETS, filename)
