"""The documented shape of every operation, declared beside its route and assembled into OpenAPI 3.1.

A route without `@operation(...)` cannot be documented, and the OpenAPI generator refuses to build a
document that misses a route, so the document cannot drift from the code unnoticed.
"""
from __future__ import annotations

from typing import Callable

OPERATION_ATTR = "__usm_operation__"


def operation(summary: str, *, roles: str, responses: dict[int, str], request: str | None = None,
              request_content: str = "application/json", query: list[dict] | None = None,
              tag: str = "", public: bool = False, response_content: dict[int, str] | None = None) -> Callable:
    """Attach OpenAPI facts to a view. `responses` maps status to a component schema name ('' = none);
    `roles` is the sentence that says who may call it."""

    def mark(view):
        setattr(view, OPERATION_ATTR, {
            "summary": summary, "roles": roles, "responses": responses, "request": request,
            "request_content": request_content, "query": query or [], "tag": tag, "public": public,
            "response_content": response_content or {}})
        return view

    return mark


def query_param(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


PAGING = [
    query_param("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}, "page size"),
    query_param("cursor", {"type": "string"}, "the `next` value of the previous page"),
]
