"""Definitions: what process designers deploy."""
from __future__ import annotations

import posixpath

from flask import Blueprint, Response, g, jsonify, request

from ..contract import operation
from ..http import engine, requires
from ..problems import ApiProblem

bp = Blueprint("definitions", __name__, url_prefix="/api/v1/definitions")

_XML_TYPES = ("application/xml", "text/xml", "application/bpmn+xml", "application/octet-stream")


MAX_FILE_NAME = 255  # definitions.bpmn_file and definition_files.filename hold 255 characters


def upload_name(filename: str | None) -> str:
    """A safe relative path: forms are named by their path (forms/classify.schema.json), so keep
    directories, but never let a name climb out (..) or start at the root."""
    parts = [part for part in (filename or "").replace("\\", "/").split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ApiProblem(422, "Unprocessable content", f"the file name '{filename}' may not contain '..'")
    return storable_name(posixpath.join(*parts) if parts else "")


def storable_name(name: str) -> str:
    """File names are stored as they are: PostgreSQL refuses NUL and more than 255 characters (a 500)."""
    if "\0" in name:
        raise ApiProblem(422, "Unprocessable content",
                         "a file name contains a NUL character (\\u0000); rename the file",
                         [{"file": name.replace("\0", "\\0")[:MAX_FILE_NAME], "message": "contains NUL"}])
    if len(name) > MAX_FILE_NAME:
        raise ApiProblem(422, "Unprocessable content", f"a file name is {len(name)} characters long; the limit is "
                                                       f"{MAX_FILE_NAME}; use a shorter name",
                         [{"file": name[:MAX_FILE_NAME],
                           "message": f"{len(name)} characters, at most {MAX_FILE_NAME}"}])
    return name


def uploaded_files() -> list[tuple[str, bytes]]:
    """A deployment is one XML document in the body, or a multipart upload of files that belong together."""
    mimetype = request.mimetype or ""
    if mimetype == "multipart/form-data":
        files = []
        for _, storage in request.files.items(multi=True):
            name = upload_name(storage.filename)
            if not name:
                raise ApiProblem(422, "Unprocessable content", "every uploaded file needs a file name "
                                                               "ending in .bpmn, .dmn or .json")
            files.append((name, storage.read()))
        if not files:
            raise ApiProblem(422, "Unprocessable content", "the multipart upload holds no files; attach "
                                                           "one or more .bpmn, .dmn or .json files")
        return files
    if mimetype and mimetype not in _XML_TYPES:
        raise ApiProblem(415, "Unsupported media type",
                         f"send the BPMN document as application/xml, or files as multipart/form-data "
                         f"(got {mimetype})")
    name = storable_name(posixpath.basename(request.args.get("filename", "") or "definition.bpmn"))
    return [(name, request.get_data())]


@bp.get("")
@operation("The latest version of every deployed definition", roles="any authenticated user",
           responses={200: "DefinitionList"}, tag="definitions")
@requires()
def list_definitions():
    return jsonify({"items": engine().list_definitions()})


@bp.get("/<key>")
@operation("A definition's latest version with all versions, lanes and user tasks (with forms)",
           roles="any authenticated user", responses={200: "DefinitionDetail", 404: "Problem"}, tag="definitions")
@requires()
def get_definition(key):
    return jsonify(engine().get_definition(key))


@bp.get("/<key>/versions/<int:version>/bpmn")
@operation("The BPMN XML of a version, byte for byte as deployed", roles="any authenticated user",
           responses={200: "", 404: "Problem"}, response_content={200: "application/xml"}, tag="definitions")
@requires()
def get_definition_bpmn(key, version):
    filename, content = engine().definition_source(key, version)
    response = Response(content, mimetype="application/xml")
    response.headers["Content-Disposition"] = f'inline; filename="{filename}"'
    return response


@bp.post("")
@operation("Deploy BPMN (with its DMN and form files): 201 new versions, 200 nothing new, 422 problems",
           roles="designer", request="upload", responses={200: "Deployment", 201: "Deployment", 409: "Problem",
                                                          413: "Problem", 415: "Problem", 422: "Problem"},
           tag="definitions")
@requires("designer")
def deploy():
    created, items = engine().deploy(uploaded_files(), g.principal.user)
    return jsonify({"items": items}), 201 if created else 200


@bp.post("/validate")
@operation("Validate like a deployment, deploying nothing", roles="designer", request="upload",
           responses={200: "Validation", 413: "Problem", 415: "Problem", 422: "Problem"}, tag="definitions")
@requires("designer")
def validate():
    return jsonify({"valid": True, "warnings": engine().validate(uploaded_files())})
