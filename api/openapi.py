"""Build the OpenAPI 3.1 document from the app's own routes and their `@operation` declarations."""
from __future__ import annotations

import re

from flask import Flask

from .contract import OPERATION_ATTR
from .openapi_examples import with_examples
from .schemas import COMPONENTS

_DESCRIPTIONS = {200: "OK", 201: "Created", 303: "See other (the Location header)", 400: "Malformed request",
                 401: "Missing or unknown token",
                 403: "The token lacks the role", 404: "Not found", 409: "Conflict with the case's state",
                 412: "If-Match no longer matches", 413: "Too large", 415: "Unsupported media type",
                 422: "Not acceptable", 503: "Degraded"}

_UPLOAD = {"required": True, "content": {
    "application/xml": {"schema": {"type": "string", "description": "one BPMN 2.0 document"}},
    "multipart/form-data": {"schema": {"type": "object", "properties": {"files": {
        "type": "array", "items": {"type": "string", "contentMediaType": "application/octet-stream"}}}}}}}


def _path(rule: str) -> str:
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule)


class UndocumentedRoute(RuntimeError):
    pass


def build_document(app: Flask, version: str) -> dict:
    paths: dict = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        view = app.view_functions[rule.endpoint]
        spec = getattr(view, OPERATION_ATTR, None)
        if spec is None:
            raise UndocumentedRoute(f"route {rule.rule} has no @operation declaration")
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            paths.setdefault(_path(rule.rule), {})[method.lower()] = _operation(rule, spec)
    return {
        "openapi": "3.1.0",
        "info": {"title": "usm-engine API", "version": version,
                 "description": "Runs USM workflows as BPMN 2.0. Errors are application/problem+json."},
        "paths": with_examples(dict(sorted(paths.items()))),  # shown by Swagger UI at /api/v1/docs
        "components": {
            "schemas": COMPONENTS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _operation(rule, spec: dict) -> dict:
    operation = {"summary": spec["summary"], "operationId": rule.endpoint.replace(".", "_"),
                 "tags": [spec["tag"]] if spec["tag"] else [],
                 "description": f"Who may call it: {spec['roles']}."}
    parameters = [{"name": name, "in": "path", "required": True, "schema": {
        "type": "integer" if rule._converters.get(name).__class__.__name__ == "IntegerConverter" else "string"}}
        for name in rule.arguments]
    parameters += spec["query"]
    if rule.endpoint in ("cases.start_case", "messages.route_message"):
        parameters.append({"name": "Idempotency-Key", "in": "header", "required": False, "schema": {"type": "string"}})
    if spec["request"] and rule.endpoint not in ("cases.start_case", "messages.route_message") and "Case" in spec[
            "responses"].values():
        parameters.append({"name": "If-Match", "in": "header", "required": False, "schema": {"type": "string"}})
    if parameters:
        operation["parameters"] = parameters
    if spec["request"] == "upload":
        operation["requestBody"] = _UPLOAD
    elif spec["request"] == "optional-empty":
        operation["requestBody"] = {"required": False, "content": {"application/json": {
            "schema": {"type": "object", "additionalProperties": False}}}}
    elif spec["request"] == "optional-retry":
        operation["requestBody"] = {"required": False, "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/Retry"}}}}
    elif spec["request"]:
        operation["requestBody"] = {"required": True, "content": {spec["request_content"]: {
            "schema": {"$ref": f"#/components/schemas/{spec['request']}"}}}}
    responses = {}
    statuses = dict(spec["responses"])
    if not spec["public"]:
        statuses.setdefault(401, "Problem")
        statuses.setdefault(403, "Problem")
    if spec["request"] and spec["request"] != "upload":
        if spec["request_content"] == "application/json":  # a form (sign-in) has no syntax to get wrong
            statuses.setdefault(400, "Problem")
        statuses.setdefault(413, "Problem")
    for status, schema in sorted(statuses.items()):
        entry: dict = {"description": _DESCRIPTIONS.get(status, "")}
        media = spec["response_content"].get(status) or (
            "application/problem+json" if schema == "Problem" else "application/json")
        if isinstance(media, (list, tuple)):  # alternatives, e.g. JSON or CSV: the first carries the schema
            first = {"$ref": f"#/components/schemas/{schema}"} if schema else {"type": "string"}
            entry["content"] = {media[0]: {"schema": first},
                                **{other: {"schema": {"type": "string"}} for other in media[1:]}}
        elif schema:
            entry["content"] = {media: {"schema": {"$ref": f"#/components/schemas/{schema}"}}}
        elif media != "application/json" or status == 200:
            entry["content"] = {media: {"schema": {"type": "string"} if media != "application/json" else {}}}
        responses[str(status)] = entry
    operation["responses"] = responses
    if not spec["public"]:
        operation["security"] = [{"bearer": []}]
    return operation
