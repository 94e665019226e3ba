"""Random data that a user task's form (a JSON Schema) accepts: what a person might type.

The conformance run drives cases with it, and so do tools/random_walk.py and the benchmarks, over HTTP.
It covers what forms use (types, enums, consts, bounds, lengths, common formats, the if/then rules of
`allOf`), not all of JSON Schema: candidates are checked with the engine's own Form, and a form no
candidate satisfies is reported as such rather than answered with data the engine would refuse.
"""
from __future__ import annotations

import random
import string
from typing import Any

from .forms import Form

ATTEMPTS = 50
# Values the format checker accepts, for the formats forms use; other formats get free text.
FORMATS = {"email": "someone@example.org", "date": "2026-01-02", "date-time": "2026-01-02T10:00:00Z",
           "time": "10:00:00Z", "uri": "https://example.org/x", "uuid": "3f2b8c4e-1d2a-4e5b-9c8d-7a6b5c4d3e2f",
           "hostname": "example.org", "ipv4": "192.0.2.1"}


def random_value(schema: dict, rng: random.Random) -> Any:
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return rng.choice(schema["enum"])
    kind = schema.get("type", "string")
    if isinstance(kind, list):
        kind = rng.choice([k for k in kind if k != "null"] or ["null"])
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "integer":
        return rng.randint(int(schema.get("minimum", 0)), int(schema.get("maximum", 1000)))
    if kind == "number":
        return round(rng.uniform(schema.get("minimum", 0), schema.get("maximum", 1000)), 2)
    if kind == "object":
        return random_object(schema, rng)
    if kind == "array":
        low = schema.get("minItems", 0)
        return [random_value(schema.get("items", {}), rng) for _ in range(rng.randint(low, max(low, 3)))]
    if kind == "null":
        return None
    if schema.get("format") in FORMATS:
        return FORMATS[schema["format"]]
    low = schema.get("minLength", 0)
    high = max(low, min(schema.get("maxLength", 40), low + 40))
    return "".join(rng.choice(string.ascii_letters + " éü-") for _ in range(rng.randint(low, high))) or "x" * low


def random_object(schema: dict, rng: random.Random) -> dict:
    properties = schema.get("properties", {})
    data = {name: random_value(prop, rng) for name, prop in properties.items()
            if name in schema.get("required", []) or rng.random() < 0.5}
    for rule in schema.get("allOf", []):   # if/then: fields required only with a given answer
        condition = rule.get("if", {}).get("properties", {})
        if all(name in data and data[name] == spec.get("const", data[name]) for name, spec in condition.items()):
            for name in rule.get("then", {}).get("required", []):
                data.setdefault(name, random_value(properties.get(name, {}), rng))
    return data


def form_data(form: dict, rng: random.Random) -> dict:
    """Data the form accepts; ValueError when none of ATTEMPTS random candidates is accepted."""
    checker = Form(form)
    for _ in range(ATTEMPTS):
        data = random_object(form, rng)
        if not checker.problems(data):
            return data
    raise ValueError(f"could not make data that the form '{form.get('title')}' accepts")
