"""Issue 16 item 1: the files in definitions/ are the one source, so a modeler's save must keep them working.

tools/moddle_roundtrip.mjs saves every diagram the way bpmn.io and Camunda Modeler do: bpmn-moddle with
the Camunda extension (dmn-moddle for the decision table) reads each file and writes it again, and the
modeler's stamp goes on <definitions>. The saved copy must differ only in what a modeler changes,
keep everything the engine executes, compile to the same specs, deploy, and take exactly the same
paths under the path explorer (test_paths.py) as the files themselves.

What a modeler's save changes, and the comparison here ignores (anything else is a finding):
- formatting: indentation and line breaks, attribute order, character references (`&#39;` for `'`);
- namespace declarations: one no attribute uses is left out (xmlns:camunda in the static workflows);
- <definitions>: exporter and exporterVersion, and Camunda Modeler's modeler:executionPlatform(Version);
- numbers in the diagram interchange written as numbers (`195.0` becomes `195`);
- an attribute equal to its schema default is left out (DEFAULTS).
"""
from __future__ import annotations

import random
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from lxml import etree

from usm_engine.api.cli import collect_files
from usm_engine.engine.clock import FixedClock
from usm_engine.engine.deployment import compile_bundle
from usm_engine.engine.spiff_setup import xsd_validator
from tests.definitions.explorer import HttpPort, replay
from tests.definitions.support import BPMN, DEFINITIONS, NS, ROOT, deploy_definitions, node_or_skip
from tests.definitions.test_paths import explore_all, startable_keys

SCRIPT = ROOT / "tools" / "moddle_roundtrip.mjs"
DIAGRAMS = (".bpmn", ".dmn")
CAMUNDA = "{%s}" % NS["camunda"]
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
MODELER_NS = "http://camunda.org/schema/modeler/1.0"
DI_NAMESPACES = {NS["dc"], NS["di"], NS["bpmndi"], "http://www.omg.org/spec/DMN/20180521/DC/",
                 "http://www.omg.org/spec/DMN/20180521/DI/", "https://www.omg.org/spec/DMN/20191111/DMNDI/"}
# (element, attribute) -> the schema default that moddle does not write out
DEFAULTS = {("decisionTable", "hitPolicy"): "UNIQUE"}


def run_roundtrip(source: Path, output: Path, *options: str) -> subprocess.CompletedProcess:
    node = node_or_skip("bpmn-moddle")
    return subprocess.run([node, str(SCRIPT), *options, str(source), str(output)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    """definitions/ as a modeler saves it."""
    output = tmp_path_factory.mktemp("modeler-save") / "definitions"
    result = run_roundtrip(DEFINITIONS, output)
    assert result.returncode == 0, result.stdout + result.stderr
    return output


def files_under(folder: Path) -> dict[str, Path]:
    return {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}


def diagrams() -> list[str]:
    return [name for name in files_under(DEFINITIONS) if name.endswith(DIAGRAMS)]


# --- the files ----------------------------------------------------------------------------------------

def test_every_file_is_saved_or_copied_and_still_parses(saved):
    originals, copies = files_under(DEFINITIONS), files_under(saved)
    assert set(copies) == set(originals)
    assert len(diagrams()) >= 20
    for name, path in originals.items():
        if not name.endswith(DIAGRAMS):
            assert copies[name].read_bytes() == path.read_bytes(), f"{name} should be copied unchanged"
            continue
        tree = etree.parse(str(copies[name]))  # well-formed
        root = tree.getroot()
        assert root.get("exporter") == "Camunda Modeler", f"{name} was not saved by the script"
        if name.endswith(".bpmn"):
            schema = xsd_validator().validator
            assert schema.validate(tree), (name, [str(e) for e in schema.error_log][:5])
            [process] = root.findall(f"{BPMN}process")
            assert process.get("isExecutable") == "true", name


def canonical(path: Path) -> list[tuple]:
    """Every element in document order: its place, tag, attributes and text, without what a modeler's
    save changes (see the module's docstring)."""
    root = etree.parse(str(path)).getroot()
    found = []

    def visit(element, place):
        if not isinstance(element.tag, str):
            return  # comments and processing instructions
        qname = etree.QName(element)
        attributes = {}
        for name, value in element.attrib.items():
            modeler_stamp = name in ("exporter", "exporterVersion") or etree.QName(name).namespace == MODELER_NS
            if element is root and modeler_stamp:
                continue
            if DEFAULTS.get((qname.localname, name)) == value:
                continue
            if qname.namespace in DI_NAMESPACES and name in ("x", "y", "width", "height"):
                value = float(value)
            attributes[name] = value
        text = element.text if element.text and element.text.strip() else None
        tail = element.tail if element.tail and element.tail.strip() else None
        found.append((place, element.tag, tuple(sorted(attributes.items())), text, tail))
        for index, child in enumerate(c for c in element if isinstance(c.tag, str)):
            visit(child, f"{place}/{child.get('id') or index}")

    visit(root, root.get("id"))
    return found


@pytest.mark.parametrize("name", diagrams())
def test_the_save_changes_only_what_a_modeler_changes(saved, name):
    before, after = canonical(DEFINITIONS / name), canonical(saved / name)
    # not strict: the assertion below reports lengths that differ, with the first differences
    differences = [(a, b) for a, b in zip(before, after, strict=False) if a != b]
    assert len(before) == len(after) and not differences, \
        f"{name}: {len(before)} -> {len(after)} elements; first differences: {differences[:3]}"


def executable(path: Path) -> dict[str, set]:
    """What the engine runs and people read, picked out one kind at a time."""
    root = etree.parse(str(path)).getroot()

    def text(element):
        return element.text if element is not None else None

    def owner(element):
        return element.getparent().get("id")

    def camunda_attributes(element):
        return {(element.get("id") or owner(element), etree.QName(name).localname, value)
                for name, value in element.attrib.items() if name.startswith(CAMUNDA)}

    return {
        "conditions": {(owner(c), c.get(XSI_TYPE), c.get("language"), c.text)
                       for c in root.iter(f"{BPMN}conditionExpression")},
        "camunda attributes": set().union(*(camunda_attributes(e) for e in root.iter() if isinstance(e.tag, str))),
        "form keys": {(t.get("id"), t.get(f"{CAMUNDA}formKey")) for t in root.iter(f"{BPMN}userTask")},
        "timers": {(owner(d), etree.QName(t).localname, t.get(XSI_TYPE), t.text)
                   for d in root.iter(f"{BPMN}timerEventDefinition") for t in d},
        "scripts": {(t.get("id"), t.get("scriptFormat"), text(t.find(f"{BPMN}script")))
                    for t in root.iter(f"{BPMN}scriptTask")},
        "messages": {(m.get("id"), m.get("name")) for m in root.iter(f"{BPMN}message")}
        | {(owner(d), d.get("messageRef"), d.get(f"{CAMUNDA}expression"))
           for d in root.iter(f"{BPMN}messageEventDefinition")},
        "lanes": {(lane.get("id"), lane.get("name"), tuple(sorted(r.text for r in lane.iter(f"{BPMN}flowNodeRef"))))
                  for lane in root.iter(f"{BPMN}lane")},
        "documentation": {(owner(d), d.text) for d in root.iter(f"{BPMN}documentation")},
        "sequence flows": {(f.get("id"), f.get("sourceRef"), f.get("targetRef"), f.get("name"))
                           for f in root.iter(f"{BPMN}sequenceFlow")},
        "names": {(e.get("id"), etree.QName(e).localname, e.get("name"))
                  for e in root.iter() if isinstance(e.tag, str) and e.get("id") and e.get("name")},
        "gateway defaults": {(g.get("id"), g.get("default")) for g in root.iter()
                             if isinstance(g.tag, str) and g.get("default")},
        "call activities": {(c.get("id"), c.get("calledElement")) for c in root.iter(f"{BPMN}callActivity")},
        "boundary events": {(b.get("id"), b.get("attachedToRef"), b.get("cancelActivity", "true"))
                            for b in root.iter(f"{BPMN}boundaryEvent")},
        "data inputs and outputs": {(etree.QName(d).localname, d.get("id"), d.get("name"))
                                    for kind in ("dataInput", "dataOutput") for d in root.iter(f"{BPMN}{kind}")},
        "shapes": {(s.get("bpmnElement"), tuple(float(b.get(k)) for k in ("x", "y", "width", "height")))
                   for s in root.iter(f"{{{NS['bpmndi']}}}BPMNShape") for b in s.findall("dc:Bounds", NS)},
        "edges": {(e.get("bpmnElement"),
                   tuple((float(p.get("x")), float(p.get("y"))) for p in e.findall("di:waypoint", NS)))
                  for e in root.iter(f"{{{NS['bpmndi']}}}BPMNEdge")},
        "decision rules": {(r.get("id"), tuple(t.text for t in r.iter("{*}text")))
                           for r in root.iter("{*}rule")},
        "decision columns": {(c.get("id"), c.get("name"), c.get("label"), tuple(t.text for t in c.iter("{*}text")))
                             for kind in ("input", "output") for c in root.iter(f"{{*}}{kind}")},
        "hit policies": {(t.get("id"), t.get("hitPolicy", "UNIQUE")) for t in root.iter("{*}decisionTable")},
    }


def test_nothing_executable_is_lost(saved):
    seen = Counter()
    for name in diagrams():
        before, after = executable(DEFINITIONS / name), executable(saved / name)
        for kind, found in before.items():
            assert after[kind] == found, (name, kind, sorted(found ^ after[kind])[:3])
            seen[kind] += len(found)
    print("\nkept through a modeler's save: " + ", ".join(f"{n} {kind}" for kind, n in sorted(seen.items())))
    assert all(seen[kind] for kind in executable(DEFINITIONS / diagrams()[0])), f"a check looked at nothing: {seen}"


def test_a_second_save_changes_no_byte(saved, tmp_path):
    again = tmp_path / "again"
    result = run_roundtrip(saved, again)
    assert result.returncode == 0, result.stderr
    changed = [name for name, path in files_under(saved).items() if (again / name).read_bytes() != path.read_bytes()]
    assert not changed, "a file saved by the modeler should not change when saved again (a new version each time)"


def test_the_script_names_every_file_a_modeler_cannot_open(tmp_path):
    source = tmp_path / "source"
    (source / "sub").mkdir(parents=True)
    good = (DEFINITIONS / "escalation.bpmn").read_text()
    (source / "good.bpmn").write_text(good)
    (source / "sub" / "unknown.bpmn").write_text(
        good.replace('<bpmn:documentation>Started', '<bpmn:frobnicate /><bpmn:documentation>Started', 1))
    (source / "broken.bpmn").write_text(good[:500])
    (source / "dangling.bpmn").write_text(good.replace('messageRef="Message_EscalationRaised"', 'messageRef="Nowhere"'))
    # the Camunda descriptor is loaded: a misspelt camunda attribute is unknown, not carried along
    (source / "typo.bpmn").write_text(good.replace("camunda:formKey=", "camunda:formKy="))
    result = run_roundtrip(source, tmp_path / "out")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "unknown attribute <camunda:formKy>" in result.stderr, result.stderr
    for name in ("sub/unknown.bpmn", "broken.bpmn", "dangling.bpmn", "typo.bpmn"):
        assert name in result.stderr, (name, result.stderr)
    assert "good.bpmn:" not in result.stderr and (tmp_path / "out" / "good.bpmn").is_file()


# --- the engine ---------------------------------------------------------------------------------------

def test_the_engine_compiles_the_saved_files_to_the_same_specs(saved):
    before = {c.key: c for c in compile_bundle(collect_files((str(DEFINITIONS),)), set())}
    after = {c.key: c for c in compile_bundle(collect_files((str(saved),)), set())}
    assert sorted(after) == sorted(before)
    for key, compiled in before.items():
        for part in ("name", "bpmn_file", "spec", "embedded", "meta"):
            assert getattr(after[key], part) == getattr(compiled, part), (key, part)
        assert after[key].hash != compiled.hash  # other bytes: deployed, it is a new version


def described(client, keys) -> dict[str, dict]:
    """GET /api/v1/definitions/{key} without what tells one deployment from another."""
    found = {}
    for key in keys:
        body = client.get(f"/api/v1/definitions/{key}", headers={"Authorization": "Bearer admin-token"}).get_json()
        found[key] = {k: v for k, v in body.items() if k not in ("version", "versions", "hash", "deployed_at")}
    return found


def signatures(paths) -> Counter:
    """A path as the explorer took it: the choices at each task, and how the started case ended."""
    return Counter((tuple((c.case, c.element_id, c.decisions, c.timer) for c in path.choices), tuple(path.statuses))
                   for path in paths)


@pytest.mark.timeout(1200)  # run alone it explores definitions/ too (after test_paths.py it reuses that)
def test_the_saved_files_deploy_and_take_the_same_paths(app_factory, saved):
    clock = FixedClock()
    app = app_factory(clock=clock)
    client = app.test_client()
    deploy_definitions(client)
    keys = startable_keys(client)
    listed = client.get("/api/v1/definitions", headers={"Authorization": "Bearer admin-token"}).get_json()["items"]
    before = described(client, [d["key"] for d in listed])

    # The modeler's save, deployed over the originals as `usm deploy definitions/` would: every diagram
    # a new version, every form, table and cross-reference the same.
    deployed = {d["key"]: (d["version"], d["created"]) for d in deploy_definitions(client, saved)["items"]}
    assert set(deployed) == set(before) and set(deployed.values()) == {(2, True)}, deployed
    assert startable_keys(client) == keys and len(keys) == 15
    assert described(client, before) == before

    original, roundtripped = explore_all(keys), explore_all(keys, saved)
    lines = [f"{'definition':28} {'paths':>6} {'saved':>6} {'pruned':>7} {'saved':>6}"]
    for key in sorted(keys):
        lines.append(f"{key:28} {len(original[key].paths):>6} {len(roundtripped[key].paths):>6} "
                     f"{original[key].pruned:>7} {roundtripped[key].pruned:>6}")
    report = "\n".join(lines)
    print("\npaths of the startable definitions, as shipped and as saved by a modeler\n" + report)
    failures = [(key, path.choices, path.problems) for key, found in roundtripped.items()
                for path in found.paths if path.problems]
    assert not failures, f"{len(failures)} paths did not end well after the save; the first: {failures[0]}"
    for key in keys:
        assert signatures(roundtripped[key].paths) == signatures(original[key].paths), (key, report)
        assert roundtripped[key].pruned == original[key].pruned, (key, report)

    # One path per definition through the HTTP API, on the saved version the server now starts.
    sample = random.Random(16)
    port = HttpPort(client, app, clock)
    for key in sorted(keys):
        path = sample.choice(roundtripped[key].paths)
        assert not replay(port, key, path), key
