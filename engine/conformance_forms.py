"""Random data that a user task's form (a JSON Schema) accepts: what a person might type.

The conformance run drives cases with it, and so do tools/random_walk.py and the benchmarks, over HTTP.
It covers what forms use (types, enums, consts, bounds, lengths, common formats, defaults, the if/then
rules of `allOf`), not all of JSON Schema: candidates are checked with the engine's own Form, and a form no
candidate satisfies is reported as such rather than answered with data the engine would refuse.

Camunda 7's generated forms (camunda:formData with camunda:formField, on user tasks and start events) are
not shown by the engine (a deploy warning says so), but they say what a person fills in; the conformance
run reads them from the model (camunda_forms) as JSON Schema and fills them like any other form.
"""
from __future__ import annotations

import json
import random
import string
from typing import Any

from lxml import etree

from .deploy_schema import BPMN_NS, CAMUNDA_NS
from .forms import Form
from .xml_safety import parse_untrusted

ATTEMPTS = 50
# Values the format checker accepts, for the formats forms use; other formats get free text.
FORMATS = {"email": "someone@example.org", "date": "2026-01-02", "date-time": "2026-01-02T10:00:00Z",
           "time": "10:00:00Z", "uri": "https://example.org/x", "uuid": "3f2b8c4e-1d2a-4e5b-9c8d-7a6b5c4d3e2f",
           "hostname": "example.org", "ipv4": "192.0.2.1"}


def random_value(schema: dict, rng: random.Random) -> Any:
    if "default" in schema and rng.random() < 0.5:
        return schema["default"]  # a person often leaves what the form offers
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


# Camunda form field types as JSON Schema; another (custom) type takes any text.
_FIELD_TYPES: dict[str, dict] = {"string": {"type": "string"}, "textarea": {"type": "string"},
                                 "long": {"type": "integer"}, "boolean": {"type": "boolean"},
                                 "date": {"type": "string", "format": "date"}}
_BOUNDS = {"min": "minimum", "max": "maximum", "minlength": "minLength", "maxlength": "maxLength"}


def camunda_forms(bundle: list[tuple[str, bytes]]) -> dict[tuple[str, str | None], dict]:
    """{(definition key, user task id): JSON Schema} of the camunda:formData forms of a bundle's models,
    and {(definition key, None): ...} for the form of a process's start event (camunda:formData, or a
    camunda:formKey naming a JSON Schema file of the bundle)."""
    files = dict(bundle)
    found: dict[tuple[str, str | None], dict] = {}
    for name, content in bundle:
        if not name.lower().endswith(".bpmn"):
            continue
        for process in parse_untrusted(content).getroot().iterchildren(f"{{{BPMN_NS}}}process"):
            pid = process.get("id") or ""
            for task in process.iter(f"{{{BPMN_NS}}}userTask"):
                schema = form_of(task)
                if schema is not None:
                    found[(pid, task.get("id"))] = schema
            for start in process.iterchildren(f"{{{BPMN_NS}}}startEvent"):
                key = start.get(f"{{{CAMUNDA_NS}}}formKey") or ""
                schema = _json_form(files[key]) if key.endswith(".json") and key in files else form_of(start)
                plain = not any(etree.QName(c).localname.endswith("EventDefinition") for c in start
                                if isinstance(c.tag, str))
                if schema is not None and plain:
                    found[(pid, None)] = schema  # a none start event: the one a person starts
            keys = _start_message_keys(process)
            if keys and (pid, None) not in found:
                found[(pid, None)] = {"type": "object", "properties": {key: {"type": "string"} for key in keys},
                                      "required": keys}
    return found


def _start_message_keys(process: etree._Element) -> list[str]:
    """The names the correlation properties read from the message a process starts on: whoever sends that
    message sends them (a conversation's key), so they are what its sender fills in. Paths that are not a
    plain name (`order.id`, an expression) are left out: the run cannot tell what they need."""
    refs = {definition.get("messageRef") for start in process.iterchildren(f"{{{BPMN_NS}}}startEvent")
            for definition in start.iterchildren(f"{{{BPMN_NS}}}messageEventDefinition")}
    paths = process.getroottree().getroot().iterfind(
        f"{{{BPMN_NS}}}correlationProperty/{{{BPMN_NS}}}correlationPropertyRetrievalExpression")
    # BPMN's messagePath, or a formalExpression as SpiffWorkflow's modeler writes it.
    keys = [(path.findtext(f"{{{BPMN_NS}}}messagePath") or path.findtext(f"{{{BPMN_NS}}}formalExpression")
             or "").strip() for path in paths if path.get("messageRef") in refs - {None}]
    return sorted({key for key in keys if key.isidentifier()})


def _json_form(content: bytes) -> dict | None:
    """A JSON Schema form file of the bundle; None when it is not one (the run then starts with no data)."""
    try:
        schema = json.loads(content)
    except ValueError:
        return None
    return schema if isinstance(schema, dict) else None


def form_of(element: etree._Element) -> dict | None:
    """The JSON Schema of an element's camunda:formData; None when it has none."""
    fields = element.findall(f"{{{BPMN_NS}}}extensionElements/{{{CAMUNDA_NS}}}formData/{{{CAMUNDA_NS}}}formField")
    if not fields:
        return None
    properties = {}
    for field in fields:
        constraints = {c.get("name"): c.get("config") for c in field.iter(f"{{{CAMUNDA_NS}}}constraint")}
        if not field.get("id") or "readonly" in constraints:
            continue  # a read-only field shows data, nobody fills it
        kind = field.get("type") or "string"
        values = [v.get("id") for v in field.iter(f"{{{CAMUNDA_NS}}}value") if v.get("id") is not None]
        schema = {"enum": values} if kind == "enum" and values else dict(_FIELD_TYPES.get(kind, {"type": "string"}))
        for name, keyword in _BOUNDS.items():
            if (constraints.get(name) or "").strip().lstrip("-").isdigit():
                schema[keyword] = int(constraints[name])  # type: ignore[arg-type]
        default = _typed(field.get("defaultValue"), schema)
        if default is not None:
            schema["default"] = default
        properties[field.get("id")] = schema
    # A generated form submits every field it shows (a blank one too), so each is a variable of the case.
    return {"type": "object", "properties": properties, "required": list(properties)}


def _typed(raw: str | None, schema: dict) -> Any:
    """A field's defaultValue as the value its type holds; None when it has none, or an expression."""
    if raw is None or raw.strip().startswith(("${", "#{")):
        return None
    if schema.get("type") == "integer":
        return int(raw) if raw.strip().lstrip("-").isdigit() else None
    if schema.get("type") == "boolean":
        return {"true": True, "false": False}.get(raw.strip().lower())
    return raw
