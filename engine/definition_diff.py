"""What changed between two deployed versions of a definition, for the designer who changed it.

Pure: the files stored with each version (its BPMN, and the forms and decision tables it uses, byte for
byte as deployed) go in, a plain dict comes out. Elements and sequence flows are matched by id: the
modeler keeps an element's id across saves and renames, so the id is what stays the same while the name
changes. Conditions, timer expressions and scripts are compared as text, because that text is what the
engine evaluates. Diagram interchange (shapes, waypoints) is left out: moving a shape changes no path a
case can take, and a version that differs only there shows as changed files with nothing else listed.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from .deploy_files import BPMN_NS
from .deploy_problems import kind
from .xml_safety import parse_untrusted

_CONTAINERS = {"process", "subProcess", "transaction", "adHocSubProcess"}
# What belongs to the element that holds it, rather than being an element of the process of its own.
_PARTS = {"documentation", "extensionElements", "ioSpecification", "property", "incoming", "outgoing",
          "multiInstanceLoopCharacteristics", "standardLoopCharacteristics", "dataInputAssociation",
          "dataOutputAssociation"}
# Lanes are reported as a property of each element; artifacts run nothing.
_NOT_ELEMENTS = {"laneSet", "association", "textAnnotation", "group"}
# Global elements that flow elements refer to by id: renaming a message changes what a case waits for.
_ROOT_ELEMENTS = {"message", "signal", "error", "escalation"}
_EXPRESSIONS = {"conditionExpression": "condition", "condition": "condition", "timeDuration": "timer duration",
                "timeDate": "timer date", "timeCycle": "timer cycle", "script": "script",
                "loopCardinality": "loop cardinality", "completionCondition": "completion condition"}


@dataclass(frozen=True)
class StoredFiles:
    """One version as stored: the name of its BPMN file, and every file it was built from."""

    bpmn_file: str
    files: Mapping[str, bytes]


@dataclass
class _Model:
    elements: dict[str, dict] = field(default_factory=dict)
    flows: dict[str, dict] = field(default_factory=dict)
    expressions: dict[tuple[str, str], str] = field(default_factory=dict)

    def describe(self, element_id: str) -> dict:
        found = self.elements.get(element_id) or self.flows.get(element_id) or {}
        return {"id": element_id, "type": found.get("type"), "name": found.get("name")}


def stored_file_names(bpmn_file: str, meta: dict) -> list[str]:
    """The files a version was built from, as its metadata names them: the BPMN, the forms of its user
    tasks and the decision tables of its business rule tasks (what deployment stores with it)."""
    forms = {task.get("form_key") for task in meta.get("user_tasks", [])}
    tables = {decision.get("file") for decision in meta.get("decisions", [])}
    return [bpmn_file, *sorted(name for name in forms | tables if name and name != bpmn_file)]


def compare(key: str, before: StoredFiles, after: StoredFiles) -> dict:
    """Every difference from `before` to `after`, by section; all lists are empty for equal files."""
    old = _model(before.files[before.bpmn_file], key)
    new = _model(after.files[after.bpmn_file], key)
    return {"files": _added_removed_changed(before.files, after.files, lambda _: True),
            "elements": _elements(old, new), "flows": _flows(old, new),
            "forms": _forms(before.files, after.files, old, new),
            "decisions": _added_removed_changed(before.files, after.files, lambda name: name.endswith(".dmn")),
            "conditions": _conditions(old, new)}


# --- reading a BPMN file ---------------------------------------------------------------------------

def _local(node: etree._Element) -> str:
    return etree.QName(node).localname


def _in_bpmn(node: etree._Element) -> bool:
    return isinstance(node.tag, str) and etree.QName(node).namespace == BPMN_NS


def _model(content: bytes, key: str) -> _Model:
    root = parse_untrusted(content).getroot()
    model = _Model()
    for child in root.iterchildren():
        if _in_bpmn(child) and _local(child) in _ROOT_ELEMENTS and child.get("id"):
            model.elements[child.get("id") or ""] = _element(child, None, model)
    processes = [child for child in root.iterchildren(f"{{{BPMN_NS}}}process")]
    # A file may hold other pools; they are definitions of their own.
    for process in [p for p in processes if p.get("id") == key] or processes:
        model.elements[process.get("id") or ""] = _element(process, None, model)  # its name, Startable, ...
        _walk(process, _lanes(process), model)
    return model


def _lanes(process: etree._Element) -> dict[str, str]:
    """{element id: lane name}; lanes come before their child lanes in the file, so the innermost wins."""
    lanes = {}
    for lane in process.iter(f"{{{BPMN_NS}}}lane"):
        for ref in lane.iterchildren(f"{{{BPMN_NS}}}flowNodeRef"):
            lanes[(ref.text or "").strip()] = " ".join((lane.get("name") or lane.get("id") or "").split())
    return lanes


def _walk(container: etree._Element, lanes: dict[str, str], model: _Model) -> None:
    for child in container.iterchildren():
        element_id = child.get("id") if _in_bpmn(child) else None
        local = _local(child) if element_id else ""
        if not element_id or local in _PARTS or local in _NOT_ELEMENTS:
            continue
        if local == "sequenceFlow":
            model.flows[element_id] = _flow(child, model)
            continue
        model.elements[element_id] = _element(child, lanes.get(element_id), model)
        if local in _CONTAINERS:
            _walk(child, lanes, model)


def _parts(node: etree._Element) -> Iterator[etree._Element]:
    """The children that describe this element, not the elements a subprocess contains."""
    container = _local(node) in _CONTAINERS
    for child in node.iterchildren():
        if isinstance(child.tag, str) and (not container or _local(child) in _PARTS):
            yield child


def _text(node: etree._Element) -> str:
    return (node.text or "").strip()


def _name(node: etree._Element) -> str | None:
    return " ".join((node.get("name") or "").split()) or None  # modelers put line breaks in names


def _attributes(node: etree._Element, leave_out: tuple[str, ...]) -> dict[str, str]:
    """Attributes by the name the file writes them with (camunda:formKey), as designers know them."""
    prefixes = {uri: prefix for prefix, uri in node.nsmap.items() if prefix}
    found = {}
    for name, value in node.attrib.items():
        qname = etree.QName(name)
        if qname.namespace is None and qname.localname in leave_out:
            continue
        prefix = prefixes.get(qname.namespace or "")
        found[f"{prefix}:{qname.localname}" if prefix else qname.localname] = str(value)
    return found


def _collect_expressions(node: etree._Element, owner: str, model: _Model) -> None:
    for part in _parts(node):
        for inner in part.iter():
            if isinstance(inner.tag, str) and _local(inner) in _EXPRESSIONS:
                what, number = _EXPRESSIONS[_local(inner)], 2
                label = what
                while (owner, label) in model.expressions:  # a second of a kind must not hide the first
                    label, number = f"{what} {number}", number + 1
                model.expressions[(owner, label)] = _text(inner)


def _canonical(node: etree._Element) -> str:
    """The part as text, without expressions (compared on their own) and inner ids (nobody reads them)."""
    if not isinstance(node.tag, str) or _local(node) in _EXPRESSIONS:
        return ""
    attributes = sorted((name, value) for name, value in _attributes(node, ("id",)).items())
    inner = "".join(_canonical(child) for child in node.iterchildren())
    return f"<{_local(node)} {attributes}>{_text(node)}{inner}</>"


def _element(node: etree._Element, lane: str | None, model: _Model) -> dict:
    element_id = node.get("id") or ""
    documentation: list[str] = []
    content: dict[str, str] = {}
    for part in _parts(node):
        local = _local(part)
        if local == "documentation":
            documentation.append(_text(part))
        elif local not in ("incoming", "outgoing"):
            label = local if local not in content else f"{local} {len(content) + 1}"
            content[label] = _canonical(part)
    _collect_expressions(node, element_id, model)
    return {"type": _local(node), "name": _name(node), "lane": lane,
            "documentation": "\n".join(documentation) or None,
            "attributes": _attributes(node, ("id", "name")), "content": content}


def _flow(node: etree._Element, model: _Model) -> dict:
    _collect_expressions(node, node.get("id") or "", model)
    condition = node.find(f"{{{BPMN_NS}}}conditionExpression")
    return {"type": "sequenceFlow", "name": _name(node), "source": node.get("sourceRef"),
            "target": node.get("targetRef"), "condition": _text(condition) if condition is not None else None,
            "attributes": _attributes(node, ("id", "name", "sourceRef", "targetRef"))}


# --- comparing -------------------------------------------------------------------------------------

def _change(what: str, before: Any = None, after: Any = None) -> dict:
    return {"what": what, "before": before, "after": after}


def _changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[dict]:
    """Each key whose value differs (attributes of an element, keywords of a form field)."""
    return [_change(name, old.get(name), new.get(name)) for name in sorted(set(old) | set(new))
            if old.get(name) != new.get(name)]


def _expression_changes(element_id: str, old: _Model, new: _Model) -> list[dict]:
    """Which expressions of an element changed; their text is listed under conditions."""
    kinds = {what for owner, what in (*old.expressions, *new.expressions) if owner == element_id}
    return [_change(what) for what in sorted(kinds)
            if old.expressions.get((element_id, what)) != new.expressions.get((element_id, what))]


def _matched(old: dict[str, dict], new: dict[str, dict], summary: Callable[[dict[str, dict], str], dict],
             changes_of: Callable[[str, dict, dict], list[dict]]) -> dict:
    """Added, removed and changed by id, each with its summary (the changed ones with their changes)."""
    changed = [{**summary(new, i), "changes": changes} for i in sorted(set(old) & set(new))
               if (changes := changes_of(i, old[i], new[i]))]
    return {"added": [summary(new, i) for i in sorted(set(new) - set(old))],
            "removed": [summary(old, i) for i in sorted(set(old) - set(new))], "changed": changed}


def _elements(old: _Model, new: _Model) -> dict:
    def changes_of(element_id: str, before: dict, after: dict) -> list[dict]:
        scalars = ("type", "name", "lane", "documentation")
        return (_changes({k: before[k] for k in scalars}, {k: after[k] for k in scalars})
                + _changes(before["attributes"], after["attributes"])
                + [_change(part) for part in sorted(set(before["content"]) | set(after["content"]))
                   if before["content"].get(part) != after["content"].get(part)]
                + _expression_changes(element_id, old, new))

    return _matched(old.elements, new.elements, lambda elements, i: {
        "id": i, "type": elements[i]["type"], "name": elements[i]["name"]}, changes_of)


def _flows(old: _Model, new: _Model) -> dict:
    scalars = ("source", "target", "name", "condition")
    return _matched(old.flows, new.flows, lambda flows, i: {"id": i, **{k: flows[i][k] for k in scalars}},
                    lambda _, before, after: _changes({k: before[k] for k in scalars}, {k: after[k] for k in scalars})
                    + _changes(before["attributes"], after["attributes"]))


def _conditions(old: _Model, new: _Model) -> list[dict]:
    found = []
    for owner, what in sorted(set(old.expressions) | set(new.expressions)):
        before, after = old.expressions.get((owner, what)), new.expressions.get((owner, what))
        if before != after:
            where = new.describe(owner) if owner in new.elements or owner in new.flows else old.describe(owner)
            found.append({"element_id": owner, "type": where["type"], "name": where["name"], "kind": what,
                          "before": before, "after": after})
    return found


def _added_removed_changed(old: Mapping[str, bytes], new: Mapping[str, bytes], wanted: Any) -> dict:
    old_names, new_names = {n for n in old if wanted(n)}, {n for n in new if wanted(n)}
    return {"added": sorted(new_names - old_names), "removed": sorted(old_names - new_names),
            "changed": sorted(n for n in old_names & new_names if old[n] != new[n])}


# --- forms -----------------------------------------------------------------------------------------

def _schema(content: bytes) -> dict:
    try:
        schema = json.loads(content)
    except ValueError:  # deployment refuses such a form, so only a damaged database gets here
        schema = None
    return schema if isinstance(schema, dict) else {}


def _fields(schema: dict, prefix: str = "") -> dict[str, dict]:
    """{field path: its own keywords, and whether its object requires it}; nested objects as a.b."""
    found: dict[str, dict] = {}
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return found
    required = schema.get("required")
    required = required if isinstance(required, list) else []
    for name, sub in properties.items():
        sub = sub if isinstance(sub, dict) else {"schema": sub}
        found[prefix + name] = {**{k: v for k, v in sub.items() if k not in ("properties", "required")},
                                "required": name in required}
        found.update(_fields(sub, f"{prefix}{name}."))
    return found


def _form_changes(old: dict, new: dict) -> dict:
    old_fields, new_fields = _fields(old), _fields(new)
    outside = ("properties", "required")
    return {"fields": {
        "added": [{"field": n, "type": new_fields[n].get("type"), "required": new_fields[n]["required"]}
                  for n in sorted(set(new_fields) - set(old_fields))],
        "removed": [{"field": n, "type": old_fields[n].get("type"), "required": old_fields[n]["required"]}
                    for n in sorted(set(old_fields) - set(new_fields))],
        "changed": [{"field": n, "changes": _changes(old_fields[n], new_fields[n])}
                    for n in sorted(set(old_fields) & set(new_fields)) if old_fields[n] != new_fields[n]]},
        "keywords": _changes({k: v for k, v in old.items() if k not in outside},
                             {k: v for k, v in new.items() if k not in outside})}


def _used_by(model: _Model, form: str) -> list[str]:
    return sorted(i for i, e in model.elements.items() if e["attributes"].get("camunda:formKey") == form)


def _forms(old_files: Mapping[str, bytes], new_files: Mapping[str, bytes], old: _Model, new: _Model) -> dict:
    names = _added_removed_changed(old_files, new_files, lambda name: name.endswith(".json"))
    return {"added": [{"file": n, "used_by": _used_by(new, n), "fields": sorted(_fields(_schema(new_files[n])))}
                      for n in names["added"]],
            "removed": [{"file": n, "used_by": _used_by(old, n), "fields": sorted(_fields(_schema(old_files[n])))}
                        for n in names["removed"]],
            "changed": [{"file": n, "used_by": _used_by(new, n),
                         **_form_changes(_schema(old_files[n]), _schema(new_files[n]))} for n in names["changed"]]}


# --- as text ---------------------------------------------------------------------------------------

def _shown(value: Any) -> str:
    if value is None:
        return "(none)"
    return repr(value) if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _who(item: dict) -> str:
    name = f" '{item['name']}'" if item.get("name") else ""
    return f"{kind(tag=item.get('type') or 'element')} {item.get('id') or item.get('element_id')}{name}"


def _change_text(change: dict) -> str:
    if change["before"] is None and change["after"] is None:
        return change["what"]
    return f"{change['what']} {_shown(change['before'])} → {_shown(change['after'])}"


def _element_lines(elements: dict) -> Iterator[str]:
    yield from (f"  + {_who(e)}" for e in elements["added"])
    yield from (f"  - {_who(e)}" for e in elements["removed"])
    yield from (f"  ~ {_who(e)}: {'; '.join(_change_text(c) for c in e['changes'])}" for e in elements["changed"])


def _flow_lines(flows: dict) -> Iterator[str]:
    for sign, items in (("+", flows["added"]), ("-", flows["removed"]), ("~", flows["changed"])):
        for flow in items:
            line = f"  {sign} {flow['id']}: {flow['source']} → {flow['target']}"
            if flow.get("changes"):
                line += ": " + "; ".join(_change_text(c) for c in flow["changes"])
            elif flow["condition"]:
                line += f" when {flow['condition']!r}"
            yield line


def _form_lines(forms: dict) -> Iterator[str]:
    for sign, items in (("+", forms["added"]), ("-", forms["removed"])):
        for form in items:
            yield f"  {sign} form {form['file']} ({', '.join(form['fields']) or 'no fields'})"
    for form in forms["changed"]:
        used = f" (used by {', '.join(form['used_by'])})" if form["used_by"] else ""
        yield f"  ~ form {form['file']}{used}"
        for sign, fields in (("+", form["fields"]["added"]), ("-", form["fields"]["removed"])):
            for item in fields:
                details = ", ".join(str(part) for part in (item["type"], item["required"] and "required") if part)
                yield f"      {sign} field {item['field']}" + (f" ({details})" if details else "")
        for item in form["fields"]["changed"]:
            yield f"      ~ field {item['field']}: " + "; ".join(_change_text(c) for c in item["changes"])
        yield from (f"      ~ {_change_text(change)}" for change in form["keywords"])


def _condition_lines(conditions: list[dict]) -> Iterator[str]:
    for item in conditions:
        before, after = item["before"], item["after"]
        if "\n" in (before or "") + (after or ""):
            yield f"  ~ {_who(item)} {item['kind']}:"
            yield from (f"      - {line}" for line in (before or "").splitlines())
            yield from (f"      + {line}" for line in (after or "").splitlines())
        else:
            yield f"  ~ {_who(item)} {item['kind']}: {_shown(before)} → {_shown(after)}"


def as_text(diff: dict) -> str:
    """The difference for a person: + added, - removed, ~ changed, one section per kind."""
    header = f"{diff.get('key', 'definition')}: version {diff.get('from', '?')} → {diff.get('to', '?')}"
    lines = [header]
    sections = [("elements", list(_element_lines(diff["elements"]))),
                ("sequence flows", list(_flow_lines(diff["flows"]))),
                ("forms", list(_form_lines(diff["forms"]))),
                ("decision tables", [f"  {sign} {name}" for sign, key in (("+", "added"), ("-", "removed"),
                                                                           ("~", "changed"))
                                     for name in diff["decisions"][key]]),
                ("conditions, timers and scripts", list(_condition_lines(diff["conditions"])))]
    for title, body in sections:
        if body:
            lines += [title, *body]
    if len(lines) == 1:
        files = diff["files"]
        names = sorted({name for group in files.values() for name in group})
        lines.append(f"no differences in what a case runs: the files differ only in layout, formatting or "
                     f"parts outside the process ({', '.join(names)})"
                     if names else "no differences: both versions are built from the same files")
    return "\n".join(lines)
