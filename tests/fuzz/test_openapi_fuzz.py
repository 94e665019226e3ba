"""Schemathesis over every operation of /api/v1/openapi.json, authenticated as admin, against a database
seeded with real definitions, cases (in every status) and tasks, so path ids often hit real resources.

Checks on every response: no server error (5xx), the status code is documented, the content type is
documented, the body conforms to the documented schema, documented response headers conform.

How requests are made: for each operation and each generation mode (positive: data the document allows;
negative: data it forbids) Hypothesis draws FUZZ_EXAMPLES cases from schemathesis's strategy. Half of them
then get real values: path ids of seeded cases/tasks/definitions that suit the operation (a waiting case for
messages, a suspended one for resume, a ready task for complete, ...), no stale If-Match, and in positive
mode sometimes a body the engine accepts. That way the engine behind the validation is exercised too, not
only the 404 and 422 answers. Mutating operations reseed now and then, so there is always something left to
cancel, resume or complete.

Bounded for CI: FUZZ_EXAMPLES examples per operation and mode, derandomized (Hypothesis's seed is fixed),
no deadline, no example database. Failures are collected rather than raised inside Hypothesis, so nothing
shrinks and the runtime stays bounded; the test then fails listing each distinct failure with a curl command
that reproduces it.

The counts (operations, requests, failures, operations that answered 2xx at least once) are printed and
written to test-output/fuzz-summary.txt, one line per database backend (CI runs SQLite and PostgreSQL).

Knobs (environment): USM_FUZZ_EXAMPLES (default 50) examples per operation and mode; USM_FUZZ_TRACE=<file>
appends one line per request, to compare two runs. Reproducibility: the generated requests are the same on
every run (same count, same requests in the trace) except for GET /api/v1/definitions/{key}/versions/{version}
/bpmn, the only operation with two path parameters, whose generated values vary with PYTHONHASHSEED inside
schemathesis (with a fixed PYTHONHASHSEED the whole trace is identical). Ids of seeded cases are random
UUIDs; which seeded case a request uses is not.
"""
from __future__ import annotations

import os
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from itertools import count

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (content_type_conformance, response_headers_conformance,
                                               response_schema_conformance, status_code_conformance)

from tests.conftest import APPROVAL, FIXTURES, TOKENS, bearer, deploy

from .summary import SUMMARY, record

FUZZ_EXAMPLES = int(os.environ.get("USM_FUZZ_EXAMPLES", "50"))
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]
ADMIN = {"Authorization": f"Bearer {TOKENS['admin']}"}
TRACE = os.environ.get("USM_FUZZ_TRACE")
SEEDED_DEFINITIONS = (*APPROVAL, "compliance.toml", "messages.bpmn", "failing_condition.bpmn")
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}

FUZZ_SETTINGS = settings(max_examples=FUZZ_EXAMPLES, derandomize=True, deadline=None, database=None,
                         phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
                         print_blob=False)

# Which seeded resources suit an operation: path parameter -> pool name (default: the parameter's name).
TARGETS = {
    "POST /api/v1/cases/{case_id}/cancel": {"case_id": "open_cases"},
    "POST /api/v1/cases/{case_id}/suspend": {"case_id": "suspendable_cases"},
    "POST /api/v1/cases/{case_id}/resume": {"case_id": "suspended_cases"},
    "POST /api/v1/cases/{case_id}/retry": {"case_id": "failed_cases"},
    "POST /api/v1/cases/{case_id}/messages": {"case_id": "waiting_cases"},
    "POST /api/v1/tasks/{task_id}/complete": {"task_id": "ready_tasks"},
    "GET /api/v1/tasks/{task_id}": {"task_id": "ready_tasks"},
    "GET /assets/usm/{filename}": {"filename": "usm_files"},
    "GET /assets/bpmn-js/{filename}": {"filename": "bpmn_js_files"},
}
MUTATING = {label for label in TARGETS if label.startswith("POST")} | {"POST /api/v1/messages"}


def valid_bodies(label: str, pool: dict) -> list:
    """Bodies that pass validation for the operation, so the engine itself is reached."""
    xml = (FIXTURES / "messages.bpmn").read_bytes()
    return {
        "POST /api/v1/tasks/{task_id}/complete": [{"data": {"item": "chair", "quantity": 3}},
                                                  {"data": {"approved": False, "comment": "no"}}],
        "POST /api/v1/cases": [{"definition": "approval"},
                               {"definition": "messages", "data": {"approved": {"by": "x"}}},
                               {"definition": "approval", "version": 1, "business_key": "fuzz-bk", "data": {}}],
        "POST /api/v1/cases/{case_id}/messages": [{"name": "approved"}, {"name": "approved", "data": {"note": "x"}}],
        "POST /api/v1/messages": [{"name": "approved", "business_key": key} for key in pool["waiting_keys"]],
        "POST /api/v1/cases/{case_id}/retry": [{"data": {"amount": 5}}, {}],
        "POST /api/v1/cases/{case_id}/cancel": [{}], "POST /api/v1/cases/{case_id}/suspend": [{}],
        "POST /api/v1/cases/{case_id}/resume": [{}],
        "POST /api/v1/definitions": [("application/xml", xml)],
        "POST /api/v1/definitions/validate": [("application/xml", xml)],
    }.get(label, [])


@dataclass
class Tally:
    operations: int = 0
    requests: int = 0
    failing_requests: int = 0
    failures: dict = field(default_factory=dict)  # (operation, failure title, status) -> first report
    statuses: dict = field(default_factory=lambda: defaultdict(Counter))  # operation -> status -> count
    without_negative: list = field(default_factory=list)  # operations with no input to make invalid
    pool: dict = field(default_factory=dict)  # pool name -> real values


_seeds = count()


def seed_cases(client) -> dict[str, list]:
    """Cases in every status the API knows, with ready, completed and cancelled tasks; returns the real
    values that path parameters may take."""
    system = bearer("system")
    seed = next(_seeds)

    def start(definition: str, **body) -> dict:
        response = client.post("/api/v1/cases", json={"definition": definition, **body}, headers=system)
        assert response.status_code == 201, response.get_data(as_text=True)
        return response.get_json()

    def complete(case: dict, data: dict) -> dict:
        task = case["tasks"][0]["id"]
        response = client.post(f"/api/v1/tasks/{task}/complete", json={"data": data}, headers=system)
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()

    def act(case: dict, action: str) -> dict:
        response = client.post(f"/api/v1/cases/{case['id']}/{action}", headers=system)
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()

    running = start("approval", business_key=f"fuzz-running-{seed}")
    deciding = complete(start("approval"), {"item": "laptop", "quantity": 2})
    done = complete(complete(start("approval"), {"item": "desk", "quantity": 1}), {"approved": True})
    cancelled = act(start("approval"), "cancel")
    suspended = act(start("approval"), "suspend")
    waiting = start("messages", business_key=f"fuzz-waiting-{seed}", data={"approved": {"by": "fuzz"}})
    failed = start("failing_condition")
    assert failed["status"] == "error", failed
    cases = [running, deciding, done, cancelled, suspended, waiting, failed]
    tasks = client.get("/api/v1/tasks?state=any&limit=500", headers=system).get_json()["items"]
    refs = [item["ref"] for item in client.get("/api/v1/compliance", headers=system).get_json()["items"]]
    return {
        "case_id": [case["id"] for case in cases],
        "open_cases": [case["id"] for case in (running, deciding, suspended, waiting, failed)],
        "suspendable_cases": [running["id"], failed["id"]],
        "suspended_cases": [suspended["id"]],
        "failed_cases": [failed["id"]],
        "waiting_cases": [waiting["id"]],
        "waiting_keys": [waiting["business_key"]],
        "task_id": [task["id"] for task in tasks],
        "ready_tasks": [task["id"] for case in (running, deciding) for task in case["tasks"]],
        "submit_task": running["tasks"][0]["id"],
        "decide_task": deciding["tasks"][0]["id"],
        "key": ["approval", "messages", "failing_condition"],
        "version": [1],
        "requirement": refs,
        "filename": ["diagram.js", "bpmn-js.css", "assets/bpmn-js.css"],
        "usm_files": ["diagram.js", "diagram.css"],
        "bpmn_js_files": ["bpmn-navigated-viewer.production.min.js", "assets/bpmn-js.css",
                          "assets/bpmn-font/css/bpmn.css", "assets/bpmn-font/font/bpmn.woff2"],
    }


def reproducible_feedback(schema):
    """Schemathesis also draws literals found in the app's Python modules (keys, media types, limits). Its
    pool keeps 256 per type in the order the modules' literals are walked, which changes from process to
    process (string hash randomisation), so the same seed would generate different requests. Rebuild the
    pool complete and sorted; if this internal API ever moves, drop the app's literals instead of letting
    the run vary."""
    try:
        from schemathesis.generation.feedback import FeedbackSources
        from schemathesis.python._constants import orchestrator
        from schemathesis.python._constants.adapters import default_adapters
        from schemathesis.python._constants.pool import ConstantEntry, ConstantsPool
        from schemathesis.python._constants.registry import default_registry

        found = ConstantsPool(cap_per_type=1_000_000)
        orchestrator._extract_all(registry=default_registry(), adapters=default_adapters(), pool=found,
                                  extra_sources=[orchestrator._application_source(schema.app)])
        pool = ConstantsPool(cap_per_type=1_000_000)
        for kind in ("string", "integer", "float", "bytes"):
            for entry in sorted(found.entries_for(kind), key=lambda entry: repr(entry.value)):
                pool.add(ConstantEntry(value=entry.value, type=entry.type,
                                       origins=tuple(sorted(entry.origins, key=repr))))
        return FeedbackSources(constants_value_source=None if pool.is_empty() else pool)
    except (ImportError, AttributeError, TypeError):
        schema.config.analysis.constants.enabled = False
        return None


def use_real_resources(case, label: str, mode: GenerationMode, data, client, tally: Tally) -> None:
    if label in MUTATING and data.draw(st.integers(0, 3), label="reseed") == 0:
        tally.pool = seed_cases(client)
    pool = tally.pool
    targets = TARGETS.get(label, {})
    for name in list(case.path_parameters or {}):
        choices = pool.get(targets.get(name, name)) or pool.get(name)
        if choices:
            case.path_parameters[name] = data.draw(st.sampled_from(choices), label=name)
    if case.headers and "If-Match" in case.headers and data.draw(st.integers(0, 3), label="keep If-Match") != 0:
        del case.headers["If-Match"]
    bodies = valid_bodies(label, pool)
    if mode is GenerationMode.POSITIVE and bodies and data.draw(st.booleans(), label="valid body"):
        body = data.draw(st.sampled_from(bodies), label="body")
        if isinstance(body, tuple):
            case.media_type, case.body = body
        else:
            case.body = body
        if label == "POST /api/v1/tasks/{task_id}/complete":  # the task whose form the body fills
            case.path_parameters["task_id"] = pool["submit_task" if "item" in body["data"] else "decide_task"]


def fuzz_operation(operation, mode: GenerationMode, client, tally: Tally, feedback) -> None:
    label = operation.label
    try:
        strategy = operation.as_strategy(generation_mode=mode, headers=dict(ADMIN), feedback=feedback)
    except Exception as exc:  # noqa: BLE001 - report which operation schemathesis cannot handle
        pytest.fail(f"{label}: schemathesis cannot build a {mode.value} strategy: {exc!r}")

    @FUZZ_SETTINGS
    @given(case=strategy, data=st.data())
    def run(case, data):
        if data.draw(st.booleans(), label="real resources"):
            use_real_resources(case, label, mode, data, client, tally)
        case.headers = {**(case.headers or {}), **ADMIN}
        tally.requests += 1
        if TRACE:  # one line per request, to compare two runs
            with open(TRACE, "a") as trace:
                trace.write(repr((label, mode.value, case.path_parameters, case.query, case.headers,
                                  case.body)) + "\n")
        response = case.call()
        tally.statuses[label][response.status_code] += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except FailureGroup as group:
            tally.failing_requests += 1
            for failure in group.exceptions:
                key = (label, failure.title, response.status_code)
                tally.failures.setdefault(key, f"{label} [{mode.value}] -> {response.status_code}: {failure.title}\n"
                                               f"{failure.message[:1500]}\n{case.as_curl_command(headers=ADMIN)}\n"
                                               f"{response.text[:800] if response.status_code >= 500 else ''}")

    try:
        run()
    except Unsatisfiable:
        # Nothing to make invalid: every input is fixed (the token) or absent, e.g. GET /healthz.
        assert mode is GenerationMode.NEGATIVE, f"{label}: no positive example could be generated"
        tally.without_negative.append(label)


def test_every_operation_answers_as_documented(app, database_url, capsys):
    client = app.test_client()
    assert deploy(client, *SEEDED_DEFINITIONS).status_code == 201
    # Loaded from the served document, but not with from_wsgi: that would leave out the operation that
    # serves the document itself, and every operation is fuzzed here.
    served = client.get("/api/v1/openapi.json")
    assert served.status_code == 200 and served.mimetype == "application/json"
    document = served.get_json()
    schema = schemathesis.openapi.from_dict(document)
    schema.app = app
    operations = [result.ok() for result in schema.get_all_operations()]
    documented = [(method, path) for path, item in document["paths"].items() for method in item
                  if method in HTTP_METHODS]
    assert sorted(op.label for op in operations) == sorted(f"{m.upper()} {p}" for m, p in documented), \
        "schemathesis must see every documented operation"

    tally = Tally(operations=len(operations), pool=seed_cases(client))
    feedback = reproducible_feedback(schema)
    started = time.monotonic()
    for operation in operations:
        for mode in MODES:
            fuzz_operation(operation, mode, client, tally, feedback)
    elapsed = time.monotonic() - started

    answered_2xx = [label for label, counts in tally.statuses.items() if any(200 <= code < 300 for code in counts)]
    line = record(database_url, "schemathesis", (
        f"operations={tally.operations} requests={tally.requests} failing_requests={tally.failing_requests} "
        f"failures={len(tally.failures)} operations_with_2xx={len(answered_2xx)} "
        f"examples_per_operation_and_mode={FUZZ_EXAMPLES} modes={'+'.join(m.value for m in MODES)} "
        f"seconds={elapsed:.1f}"))
    with capsys.disabled():
        print(f"\n{line}  (written to {SUMMARY})")
        for label, counts in sorted(tally.statuses.items()):
            print(f"  {label}: " + " ".join(f"{code}x{number}" for code, number in sorted(counts.items())))
    assert not tally.failures, f"{len(tally.failures)} distinct failures:\n\n" + "\n\n".join(tally.failures.values())
