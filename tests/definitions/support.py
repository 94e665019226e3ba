"""Helpers for the tests of definitions/: read the files, deploy them through the API, and drive cases
the way any client would, from nothing but the task's form (GET /api/v1/tasks/{id})."""
from __future__ import annotations

import io
import os
import shutil
from collections import defaultdict
from pathlib import Path

import pytest
from lxml import etree

from usm_engine.api.cli import collect_files
from tests.conftest import bearer

ROOT = Path(__file__).resolve().parents[2]
DEFINITIONS = ROOT / "definitions"
NS = {"bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL",
      "bpmndi": "http://www.omg.org/spec/BPMN/20100524/DI",
      "dc": "http://www.omg.org/spec/DD/20100524/DC",
      "di": "http://www.omg.org/spec/DD/20100524/DI",
      "camunda": "http://camunda.org/schema/1.0/bpmn"}
BPMN = "{%s}" % NS["bpmn"]
FLOW_NODE_TAGS = {"startEvent", "endEvent", "userTask", "scriptTask", "businessRuleTask", "callActivity",
                  "exclusiveGateway", "inclusiveGateway", "parallelGateway", "intermediateThrowEvent",
                  "intermediateCatchEvent", "boundaryEvent", "task", "serviceTask", "manualTask", "subProcess",
                  "sendTask", "receiveTask", "eventBasedGateway"}

FIVE = ["usm-agree", "usm-change", "usm-recover", "usm-operate", "usm-improve"]
FRAME = ["usm-frame-intake", "usm-frame-classify", "usm-frame-review", "usm-frame-close"]
STATIC = {"WF1": "usm-wf1-wish", "WF2": "usm-wf2-rfc", "WF3": "usm-wf3-incident-change",
          "WF4": "usm-wf4-incident-operate", "WF5": "usm-wf5-service-request", "WF6": "usm-wf6-risk-agreement",
          "WF7": "usm-wf7-risk-change", "WF8": "usm-wf8-risk-operate"}
PREFIX = {"usm-agree": "WSH", "usm-change": "RFC", "usm-recover": "INC", "usm-operate": "SRQ", "usm-improve": "RSK"}

AGREEMENT = {"service": "Workplace", "service_levels": {"P1": "PT4H", "P2": "PT8H", "P3": "PT24H", "P4": "PT72H"}}
REQUEST = {"requester": "ann@example.org", "summary": "a test call", "agreement": AGREEMENT}


class Model:
    """One BPMN file, parsed: its process, flow nodes and sequence flows."""

    def __init__(self, path: Path, root: Path = DEFINITIONS):
        self.path = path
        self.name = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name
        self.tree = etree.parse(str(path))
        self.process = self.tree.getroot().find(f"{BPMN}process")
        self.key = self.process.get("id")
        self.nodes = {e.get("id"): e for e in self.process.iter() if isinstance(e.tag, str)
                      and etree.QName(e).localname in FLOW_NODE_TAGS}
        self.flows = {e.get("id"): e for e in self.process.iter(f"{BPMN}sequenceFlow")}
        self.lane_of = {}
        for lane in self.process.iter(f"{BPMN}lane"):
            for ref in lane.iter(f"{BPMN}flowNodeRef"):
                self.lane_of[ref.text] = lane.get("name")

    def kind(self, node_id: str) -> str:
        return etree.QName(self.nodes[node_id]).localname

    def of_kind(self, *kinds: str) -> list:
        return [e for e in self.nodes.values() if etree.QName(e).localname in kinds]

    def outgoing(self, node_id: str) -> list:
        return [f for f in self.flows.values() if f.get("sourceRef") == node_id]

    def incoming(self, node_id: str) -> list:
        return [f for f in self.flows.values() if f.get("targetRef") == node_id]

    def documentation(self, element) -> str:
        doc = element.find(f"{BPMN}documentation")
        return (doc.text or "").strip() if doc is not None else ""


def models(folder: Path = DEFINITIONS) -> dict[str, Model]:
    """Every .bpmn file under `folder` (definitions/, or a copy of it), by definition key."""
    found = {}
    for path in sorted(folder.rglob("*.bpmn")):
        model = Model(path, folder)
        found[model.key] = model
    return found


def node_or_skip(package: str) -> str:
    """The node executable, once `npm ci` has installed `package` (a devDependency in package.json).
    Without them the test is skipped, except in CI, where it fails: CI runs `npm ci` first."""
    node = shutil.which("node")
    if node is None or not (ROOT / "node_modules" / package / "package.json").is_file():
        message = f"needs node and `npm ci` (node_modules/{package})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return node


# --- the API -----------------------------------------------------------------------------------

def deploy_definitions(client, folder: Path = DEFINITIONS) -> dict:
    """Upload `folder` the way `usm deploy definitions/` does: every file named by its relative path."""
    files = collect_files((str(folder),))
    data = {"files": [(io.BytesIO(content), name) for name, content in files]}
    response = client.post("/api/v1/definitions", data=data, content_type="multipart/form-data",
                           headers=bearer("designer"))
    assert response.status_code in (200, 201), response.get_json()
    return response.get_json()


DEFAULT_DECISIONS = {
    "intake_decision": "accept", "offer_agreed": True, "plan_agreed": True, "tests_accepted": True,
    "delivery_verified": True, "improvement_found": False, "solution_found": True, "failure_noticed": False,
    "risk_noticed": False,
}


class Driver:
    """A client that knows nothing of USM: it reads each ready task's form and fills it in. The scenario
    only says how to decide (field -> value, or a list of values used one after the other)."""

    def __init__(self, client, app=None, role: str = "system"):
        self.client, self.app, self.headers = client, app, bearer(role)
        self.log: list[tuple[str, str]] = []   # (case id, element id) of every task completed

    # plain calls
    def get(self, path: str, status: int = 200):
        response = self.client.get(path, headers=self.headers)
        assert response.status_code == status, (path, response.status_code, response.get_json())
        return response.get_json()

    def post(self, path: str, body: dict, status: int | tuple = (200, 201)):
        response = self.client.post(path, json=body, headers=self.headers)
        expected = status if isinstance(status, tuple) else (status,)
        assert response.status_code in expected, (path, response.status_code, response.get_json())
        return response.get_json()

    def start(self, key: str, data: dict | None = None) -> dict:
        body = {"definition": key, "data": data if data is not None else {"request": REQUEST}}
        return self.post("/api/v1/cases", body, 201)

    def call_received(self, data: dict | None = None) -> dict:
        """A call arrives at the service desk: the message that starts usm-call."""
        return self.post("/api/v1/messages", {"name": "call_received", "data": data or {"request": REQUEST}}, 201)

    def case(self, case_id: str) -> dict:
        return self.get(f"/api/v1/cases/{case_id}")

    def ready(self, case_id: str) -> list[dict]:
        return self.get(f"/api/v1/tasks?case={case_id}")["items"]

    # filling in forms
    @staticmethod
    def answer(form: dict, decisions: dict, used: dict, element_id: str) -> dict:
        def decide(field):
            value = decisions[field]
            if isinstance(value, list):
                index = used[field]
                used[field] += 1
                return value[min(index, len(value) - 1)]
            return value

        properties = form.get("properties", {})
        data = {}
        for field in properties:
            if field in decisions:
                data[field] = decide(field)
        required = set(form.get("required", []))
        for rule in form.get("allOf", []):
            condition = rule["if"]["properties"]
            if all(data.get(f) == spec.get("const") for f, spec in condition.items()):
                required |= set(rule["then"].get("required", []))
        for field in sorted(required - set(data)):
            prop = properties[field]
            if prop.get("type") == "boolean":
                data[field] = False
            elif "enum" in prop:
                data[field] = prop["enum"][0]
            else:
                data[field] = f"{prop.get('title', field)} ({element_id})"
        return data

    def complete(self, task: dict, data: dict, status: int = 200):
        response = self.client.post(f"/api/v1/tasks/{task['id']}/complete", json={"data": data}, headers=self.headers)
        assert response.status_code == status, (task["element_id"], data, response.get_json())
        return response.get_json()

    def drive(self, case_id: str, decisions: dict | None = None, until: str | None = None,
              max_steps: int = 80) -> dict:
        """Complete ready tasks from their forms until the case stops (completed, or waiting for
        something no task gives) or the task `until` is ready."""
        decisions = {**DEFAULT_DECISIONS, **(decisions or {})}
        used = defaultdict(int)
        for _ in range(max_steps):
            case = self.case(case_id)
            if case["status"] != "running" or not case["tasks"]:
                return case
            summary = case["tasks"][0]
            if until and summary["element_id"] == until:
                return case
            task = self.get(f"/api/v1/tasks/{summary['id']}")
            assert task["documentation"], f"task {task['element_id']} has no documentation"
            data = self.answer(task["form"], decisions, used, task["element_id"])
            self.complete(task, data)
            self.log.append((case_id, task["element_id"]))
        raise AssertionError(f"case {case_id} did not finish in {max_steps} steps")

    def children(self, case_id: str) -> list[dict]:
        return [self.case(child) for child in self.case(case_id)["child_cases"]]

    def trail(self, case_id: str) -> list[dict]:
        return self.get(f"/api/v1/cases/{case_id}/trail")["items"]

    def all_cases(self) -> list[dict]:
        items, cursor = [], None
        while True:
            page = self.get("/api/v1/cases?limit=500" + (f"&cursor={cursor}" if cursor else ""))
            items += page["items"]
            cursor = page["next"]
            if not cursor:
                return items

    def fire_timers(self) -> int:
        return self.app.extensions["usm_engine"].fire_due_timers()


def completed_elements(driver: Driver, case_id: str) -> list[str]:
    return [e["element_id"] for e in driver.trail(case_id) if e["type"] == "task_completed"]


# --- diagram coverage ----------------------------------------------------------------------------

class Coverage:
    """Flow nodes and sequence flows visited, per definition, gathered from audit trails. Element ids are
    unique only within a definition (a modeler numbers every new diagram's start event StartEvent_1), so
    an element is known by (definition key, element id): the trail event's element_definition, else the
    case's own definition."""

    def __init__(self):
        self.nodes: set[tuple[str, str]] = set()
        self.flows: set[tuple[str, str]] = set()

    def add_trail(self, trail: list[dict], all_models: dict[str, Model], definition: str) -> None:
        executed = set()
        for event in trail:
            element = event.get("element_id")
            owner = event.get("element_definition") or definition
            model = all_models.get(owner)
            if not element or model is None or (element not in model.nodes and element not in model.flows):
                continue
            if event["type"] != "task_ready":
                executed.add((owner, element))
            if event["type"] == "gateway_taken":
                for flow_id in event["details"].get("flows") or []:
                    self.flows.add((owner, flow_id))
                for target in event["details"].get("targets") or []:
                    target = target.split(".")[0]
                    for flow in model.outgoing(element):
                        if flow.get("targetRef") == target:
                            self.flows.add((owner, flow.get("id")))
        self.nodes |= executed
        for key, model in all_models.items():
            for flow_id, flow in model.flows.items():
                source, target = flow.get("sourceRef"), flow.get("targetRef")
                if model.kind(source).endswith("Gateway"):
                    continue
                if (key, source) in executed and (key, target) in executed:
                    self.flows.add((key, flow_id))

    def _missed(self, key: str, model: Model) -> tuple[set[str], set[str]]:
        return ({n for n in model.nodes if (key, n) not in self.nodes},
                {f for f in model.flows if (key, f) not in self.flows})

    def report(self, all_models: dict[str, Model]) -> dict[str, tuple[int, int, int, int]]:
        figures = {}
        for key, model in all_models.items():
            nodes, flows = self._missed(key, model)
            figures[key] = (len(model.nodes) - len(nodes), len(model.nodes),
                            len(model.flows) - len(flows), len(model.flows))
        return figures

    def missing(self, all_models: dict[str, Model]) -> dict[str, list[str]]:
        found = {key: sorted(set.union(*self._missed(key, model))) for key, model in all_models.items()}
        return {key: missed for key, missed in found.items() if missed}


COVERAGE = Coverage()
SCENARIOS_RUN: set[str] = set()


def record_coverage(driver: Driver, scenario: str) -> None:
    all_models = models()
    for case in driver.all_cases():
        COVERAGE.add_trail(driver.trail(case["id"]), all_models, case["definition"])
    SCENARIOS_RUN.add(scenario)
