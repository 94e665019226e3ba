"""Items 1-4: what every file in definitions/ must carry, checked on the files themselves: XSD validity,
complete and readable diagram interchange, readable ids, the step names, documentation and forms,
non-redundancy, and decisions that come from forms."""
from __future__ import annotations

import ast
import json
import re
import tomllib
from itertools import combinations

import pytest
from jsonschema import Draft202012Validator
from lxml import etree

from api.cli import collect_files
from engine.deployment import compile_bundle
from engine.spiff_setup import xsd_validator
from tests.definitions.support import BPMN, DEFINITIONS, FIVE, FRAME, NS, STATIC, models

MODELS = models()
FILES = sorted(MODELS.values(), key=lambda m: m.name)
IDS = [m.key for m in FILES]

# DEFINITIONS.md: the steps of the five processes, in order
STEPS = {
    "usm-agree": ["Accept wish", "Classify", "Specify the service", "Draft offer", "Negotiate", "Realize (fork → Change)",
                  "Review delivery & feedback", "Evaluate & close"],
    "usm-change": ["Accept RFC", "Classify", "Plan & agree", "Prepare change", "Test & release", "Deploy (fork → Operate)",
                   "Review delivery & feedback", "Update MIR", "Evaluate & close"],
    "usm-recover": ["Accept incident", "Classify", "Analyze", "Prepare recovery", "Recover (fork → Operate)",
                    "Recover (fork → Change)", "Review delivery & feedback", "Evaluate & close"],
    "usm-operate": ["Accept service request", "Classify", "Plan activities", "Execute activities",
                    "Review delivery & feedback", "Evaluate & close"],
    "usm-improve": ["Identify risk", "Classify", "Determine cause", "Select measure", "Deploy measure (fork → Agree)",
                    "Review delivery & feedback", "Evaluate & close"],
}
FRAME_STEPS = {"usm-frame-intake", "usm-frame-classify", "usm-frame-review", "usm-frame-close"}
LANES = {"Requester", "Service desk", "Workflow coordinator", "Solution team", "Operations", "Service manager",
         "Risk owner"}
# Variables a gateway may read that are not form fields: the path a static workflow fixes in advance.
STATIC_GUARDS = {"permitted_routes"}


def shapes(model) -> dict[str, tuple[float, float, float, float]]:
    found = {}
    for shape in model.tree.iter("{%s}BPMNShape" % NS["bpmndi"]):
        bounds = shape.find("dc:Bounds", NS)
        found[shape.get("bpmnElement")] = tuple(float(bounds.get(k)) for k in ("x", "y", "width", "height"))
    return found


def edges(model) -> dict[str, list[tuple[float, float]]]:
    return {edge.get("bpmnElement"): [(float(p.get("x")), float(p.get("y"))) for p in edge.findall("di:waypoint", NS)]
            for edge in model.tree.iter("{%s}BPMNEdge" % NS["bpmndi"])}


def reaches(model, start: str, goal: str) -> bool:
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        if node == goal:
            return True
        if node in seen:
            continue
        seen.add(node)
        todo += [f.get("targetRef") for f in model.outgoing(node)]
        todo += [b.get("id") for b in model.of_kind("boundaryEvent") if b.get("attachedToRef") == node]
    return False


# --- item 1 ------------------------------------------------------------------------------------------------

def test_the_upload_usm_serve_makes_is_valid_and_holds_every_definition():
    compiled = compile_bundle(collect_files((str(DEFINITIONS),)), set())
    keys = {c.key for c in compiled}
    assert set(FIVE) | set(STATIC.values()) | {"usm-call"} <= keys
    assert (DEFINITIONS / "decisions" / "priority.dmn").is_file()


@pytest.mark.parametrize("key", IDS)
def test_xsd_valid_and_executable(key):
    model = MODELS[key]
    schema = xsd_validator().validator
    assert schema.validate(model.tree), [str(e) for e in schema.error_log][:5]
    assert model.process.get("isExecutable") == "true"
    root = model.tree.getroot()
    assert root.nsmap.get("camunda") == NS["camunda"]
    assert len(root.findall(f"{BPMN}process")) == 1, "one process per file"


# --- item 2: readable in a modeler ----------------------------------------------------------------

@pytest.mark.parametrize("key", IDS)
def test_diagram_interchange_is_complete(key):
    model = MODELS[key]
    found, lines = shapes(model), edges(model)
    assert set(model.nodes) <= set(found), set(model.nodes) - set(found)
    for flow_id in model.flows:
        assert len(lines.get(flow_id, [])) >= 2, flow_id
    lanes = [lane.get("id") for lane in model.process.iter(f"{BPMN}lane")]
    assert lanes and set(lanes) <= set(found)
    participant = model.tree.getroot().find(f"{BPMN}collaboration/{BPMN}participant")
    assert participant is not None and participant.get("processRef") == key and participant.get("id") in found


@pytest.mark.parametrize("key", IDS)
def test_no_shapes_overlap_and_every_node_sits_in_its_lane(key):
    model = MODELS[key]
    found = shapes(model)
    nodes = {n: found[n] for n in model.nodes}
    hosts = {b.get("id"): b.get("attachedToRef") for b in model.of_kind("boundaryEvent")}

    def overlap(a, b):
        return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]

    for a, b in combinations(nodes, 2):
        if hosts.get(a) == b or hosts.get(b) == a:
            continue
        assert not overlap(nodes[a], nodes[b]), (a, b)
    lane_of = {}
    for lane in model.process.iter(f"{BPMN}lane"):
        for ref in lane.iter(f"{BPMN}flowNodeRef"):
            lane_of[ref.text] = lane.get("id")
    for node_id, (x, y, w, h) in nodes.items():
        assert node_id in lane_of, f"{node_id} is in no lane"
        lx, ly, lw, lh = found[lane_of[node_id]]
        cx, cy = x + w / 2, y + h / 2
        assert lx <= cx <= lx + lw and ly <= cy <= ly + lh, f"{node_id} is drawn outside its lane"
    lane_boxes = [found[l] for l in set(lane_of.values())]
    for a, b in combinations(lane_boxes, 2):
        assert not overlap(a, b)


@pytest.mark.parametrize("key", IDS)
def test_laid_out_left_to_right(key):
    """Every flow goes right, except the flows that close a loop (their target leads back to their source)."""
    model = MODELS[key]
    found = shapes(model)
    starts = [s.get("id") for s in model.of_kind("startEvent")]
    assert min(found[n][0] for n in model.nodes) == min(found[s][0] for s in starts)
    for flow_id, flow in model.flows.items():
        source, target = flow.get("sourceRef"), flow.get("targetRef")
        if found[target][0] < found[source][0]:
            assert reaches(model, target, source), f"{flow_id} runs right to left without closing a loop"


ID_PATTERN = {"startEvent": "StartEvent", "endEvent": "EndEvent", "boundaryEvent": "Event",
              "intermediateThrowEvent": "Event", "intermediateCatchEvent": "Event", "exclusiveGateway": "Gateway",
              "inclusiveGateway": "Gateway", "parallelGateway": "Gateway"}


def test_ids_are_readable_and_unique_across_definitions():
    seen = {}
    for model in FILES:
        for node_id in model.nodes:
            prefix = ID_PATTERN.get(model.kind(node_id), "Activity")
            assert re.fullmatch(prefix + r"_(WF[1-8])?[A-Z][A-Za-z]*(WF[1-8])?[A-Za-z]*", node_id), f"{model.name}: {node_id}"
        for flow_id in model.flows:
            assert re.fullmatch(r"Flow_[A-Z][A-Za-z0-9_]*_To_[A-Z][A-Za-z0-9]*", flow_id), f"{model.name}: {flow_id}"
            assert not re.search(r"\d{2,}", flow_id), f"{model.name}: {flow_id} looks generated"
        for element_id in [model.key, *model.nodes, *model.flows]:
            assert element_id not in seen, f"{element_id} is in {seen.get(element_id)} and {model.name}"
            seen[element_id] = model.name
        assert "Start" not in model.nodes and "End" not in model.nodes


@pytest.mark.parametrize("key", IDS)
def test_every_flow_node_has_a_name_and_every_user_task_what_to_do(key):
    model = MODELS[key]
    for node_id, node in model.nodes.items():
        if model.kind(node_id).endswith("Gateway") and len(model.outgoing(node_id)) == 1:
            continue  # a merge
        assert (node.get("name") or "").strip(), f"{node_id} has no name"
    for task in model.of_kind("userTask"):
        assert len(model.documentation(task)) >= 80, f"{task.get('id')}: documentation should say what to do"
        assert model.lane_of.get(task.get("id")) in LANES, task.get("id")
    for lane in model.process.iter(f"{BPMN}lane"):
        assert lane.get("name") in LANES


@pytest.mark.parametrize("key", list(STEPS))
def test_the_five_processes_name_their_steps_in_order(key):
    model = MODELS[key]
    found = shapes(model)
    by_name = {}
    for node_id, node in model.nodes.items():
        by_name.setdefault(node.get("name"), node_id)
    missing = [step for step in STEPS[key] if step not in by_name]
    assert not missing, missing
    xs = [found[by_name[step]][0] for step in STEPS[key]]
    assert xs == sorted(xs), "steps should read left to right in the order of DEFINITIONS.md"


# --- forms ---------------------------------------------------------------------------------------------------

def load_form(form_key: str) -> dict:
    return json.loads((DEFINITIONS / form_key).read_text())


def test_every_user_task_has_a_form_and_every_form_a_user_task():
    used = set()
    for model in FILES:
        for task in model.of_kind("userTask"):
            form_key = task.get("{%s}formKey" % NS["camunda"])
            assert form_key and form_key.startswith("forms/") and form_key.endswith(".schema.json"), task.get("id")
            schema = load_form(form_key)
            Draft202012Validator.check_schema(schema)
            assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
            assert schema["additionalProperties"] is False and schema["required"]
            used.add(form_key)
    on_disk = {p.relative_to(DEFINITIONS).as_posix() for p in (DEFINITIONS / "forms").glob("*.json")}
    assert on_disk == used
    assert not [p for p in DEFINITIONS.rglob("*.json") if p.parent.name != "forms"], "only forms may be .json"


# --- item 3: non-redundant ----------------------------------------------------------------------------------

def test_each_step_is_modelled_once():
    owners = {}
    for model in FILES:
        for task in model.of_kind("userTask", "businessRuleTask", "manualTask", "task", "serviceTask"):
            name = task.get("name")
            assert name not in owners, f"'{name}' is modelled in {owners.get(name)} and {model.name}"
            owners[name] = model.name
    # the work of the common frame lives only in the frame files; the five processes call it
    for key in FIVE:
        model = MODELS[key]
        called = [ca.get("calledElement") for ca in model.of_kind("callActivity")]
        assert [c for c in called if c in FRAME_STEPS] == FRAME, (key, called)
        forks = [c for c in called if c not in FRAME_STEPS]
        assert set(forks) <= set(FIVE) - {key}, (key, forks)
        names = {t.get("name") for t in model.of_kind("userTask")}
        assert not names & {"Accept call", "Classify", "Review delivery & feedback", "Evaluate & close"}


def test_forks_are_call_activities_into_the_other_processes():
    expected = {"usm-agree": {"usm-change"}, "usm-change": {"usm-operate"},
                "usm-recover": {"usm-change", "usm-operate"}, "usm-improve": {"usm-agree", "usm-change", "usm-operate"},
                "usm-operate": set()}
    for key, targets in expected.items():
        called = {ca.get("calledElement") for ca in MODELS[key].of_kind("callActivity")} - FRAME_STEPS
        assert called == targets, key


def test_static_workflows_and_the_intake_hold_no_step():
    for wf, key in STATIC.items():
        model = MODELS[key]
        kinds = sorted(model.kind(n) for n in model.nodes)
        assert kinds == ["callActivity", "endEvent", "scriptTask", "startEvent"], (key, kinds)
        [fixing] = model.of_kind("scriptTask")
        script = fixing.find(f"{BPMN}script").text
        assert f"'workflow': '{wf}'" in script and "next_call_number" not in script
    model = MODELS["usm-call"]
    assert model.of_kind("callActivity") == []  # it starts the processes as linked cases, it does not run them
    assert sorted(thrown_messages(model).values()) == sorted(FIVE)
    assert [t.get("name") for t in model.of_kind("userTask")] == ["Register & classify call"]


def thrown_messages(model) -> dict[str, str]:
    """Message throw event id -> the name of the message it throws."""
    names = {m.get("id"): m.get("name") for m in model.tree.getroot().iter(f"{BPMN}message")}
    return {event.get("id"): names[event.find(f"{BPMN}messageEventDefinition").get("messageRef")]
            for event in model.of_kind("intermediateThrowEvent")
            if event.find(f"{BPMN}messageEventDefinition") is not None}


def test_hand_offs_start_the_target_process_itself():
    """DEFINITIONS.md: a risk from Evaluate & close starts usm-improve, an incident or risk raised in
    Operate starts usm-recover / usm-improve, as new linked cases (a message named after the key)."""
    assert thrown_messages(MODELS["usm-frame-close"]) == {"Event_SubmitRisk": "usm-improve"}
    operate = {event: name for event, name in thrown_messages(MODELS["usm-operate"]).items()
               if name != "escalation_raised"}
    assert operate == {"Event_SubmitIncident": "usm-recover", "Event_SubmitRiskFromOperations": "usm-improve"}
    # a reclassified call goes back to the service desk, which registers and classifies it again
    assert thrown_messages(MODELS["usm-frame-intake"]) == {"Event_HandOverReclassified": "call_received"}
    for key in FIVE:  # a plain start event, so forks (call activities) and hand-offs both start it
        starts = MODELS[key].of_kind("startEvent")
        assert [s.find(f"{BPMN}messageEventDefinition") for s in starts] == [None], key


# --- item 4: decisions come from forms -------------------------------------------------------------------

def upstream_forms(model, gateway_id: str) -> list[dict]:
    """The forms of the user tasks before a gateway: walking back through scripts, gateways and events,
    stopping at user tasks; a call activity into the common frame contributes the forms of its user tasks."""
    forms, seen, todo = [], set(), [gateway_id]
    while todo:
        node = todo.pop()
        if node in seen:
            continue
        seen.add(node)
        for flow in model.incoming(node):
            source = flow.get("sourceRef")
            kind = model.kind(source)
            element = model.nodes[source]
            if kind == "userTask":
                forms.append(load_form(element.get("{%s}formKey" % NS["camunda"])))
                continue
            if kind == "callActivity" and element.get("calledElement") in FRAME_STEPS:
                called = MODELS[element.get("calledElement")]
                forms += [load_form(t.get("{%s}formKey" % NS["camunda"])) for t in called.of_kind("userTask")]
                continue
            todo.append(source)
    return forms


def condition_names_and_values(text: str) -> tuple[set[str], dict[str, set]]:
    tree = ast.parse(text.strip(), mode="eval")
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} - {"None", "True", "False"}
    values: dict[str, set] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and isinstance(node.left, ast.Name):
            for comparator in node.comparators:
                if isinstance(comparator, ast.Constant) and isinstance(comparator.value, str):
                    values.setdefault(node.left.id, set()).add(comparator.value)
                elif isinstance(comparator, ast.List):
                    values.setdefault(node.left.id, set()).update(
                        e.value for e in comparator.elts if isinstance(e, ast.Constant))
    return names, values


@pytest.mark.parametrize("key", IDS)
def test_every_gateway_decision_is_a_required_enum_or_boolean_of_the_form_before_it(key):
    model = MODELS[key]
    for gateway in model.of_kind("exclusiveGateway", "inclusiveGateway"):
        outgoing = model.outgoing(gateway.get("id"))
        if len(outgoing) < 2:
            continue
        forms = upstream_forms(model, gateway.get("id"))
        assert forms, f"{gateway.get('id')} has no user task before it"
        fields = {}
        for form in forms:
            for name, prop in form["properties"].items():
                conditional = any(name in rule["then"]["required"] for rule in form.get("allOf", []))
                fields[name] = (prop, name in form["required"], conditional)
        conditions = [f.find(f"{BPMN}conditionExpression") for f in outgoing]
        defaults = [f for f in outgoing if f.get("id") == gateway.get("default")]
        assert all(c is not None for c, f in zip(conditions, outgoing) if f not in defaults)
        for condition in filter(lambda c: c is not None, conditions):
            names, values = condition_names_and_values(condition.text)
            for name in names - STATIC_GUARDS:
                assert name in fields, f"{gateway.get('id')}: '{name}' is not a field of the form before it"
                prop, required, _ = fields[name]
                assert prop.get("type") == "boolean" or "enum" in prop, f"{gateway.get('id')}: {name}"
                assert required, f"{gateway.get('id')}: the decision field '{name}' must be required"
                assert values.get(name, set()) <= set(prop.get("enum", [])), (name, values.get(name))


# --- decision table and compliance ----------------------------------------------------------------------------

def test_the_priority_table_is_complete_and_unique():
    dmn = etree.parse(str(DEFINITIONS / "decisions" / "priority.dmn"))
    ns = {"dmn": dmn.getroot().nsmap[None]}
    rules = []
    for rule in dmn.iterfind(".//dmn:rule", ns):
        entries = [e.findtext("dmn:text", namespaces=ns).strip('"') for e in rule.iterfind("dmn:inputEntry", ns)]
        outputs = [e.findtext("dmn:text", namespaces=ns).strip('"') for e in rule.iterfind("dmn:outputEntry", ns)]
        rules.append((entries, outputs))
    for impact in ["high", "medium", "low", "nil"]:
        for urgency in ["high", "medium", "low"]:
            hits = [o for (i, u), o in rules if i in (impact, "-") and u in (urgency, "-")]
            assert len(hits) == 1, (impact, urgency)
            assert hits[0][0] in ("P1", "P2", "P3", "P4") and re.fullmatch(r"PT\d+H", hits[0][1])
    form = load_form("forms/classify.schema.json")
    assert form["properties"]["impact"]["enum"] == ["high", "medium", "low", "nil"]
    assert form["properties"]["urgency"]["enum"] == ["high", "medium", "low"]


def compliance_files():
    return sorted((DEFINITIONS / "compliance").glob("*.toml"))


def test_the_compliance_cross_reference_names_real_activities_and_covers_every_user_task():
    referenced = set()
    assert compliance_files()
    for path in compliance_files():
        data = tomllib.loads(path.read_text())
        assert data["standard"] and data["requirement"]
        for requirement in data["requirement"]:
            assert requirement["id"] and requirement["title"] and requirement["activities"]
            for reference in requirement["activities"]:
                key, element_id = reference.split("/")
                assert key in MODELS and element_id in MODELS[key].nodes, f"{path.name}: {reference}"
                referenced.add(element_id)
    user_tasks = {t.get("id") for m in FILES for t in m.of_kind("userTask")}
    assert user_tasks <= referenced, user_tasks - referenced
