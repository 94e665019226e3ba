"""Property tests over form validation (engine/forms.py) and over data merging through the HTTP API.

(a) Form.problems, for JSON Schemas drawn from a small grammar (objects with typed properties, enum,
    boolean, null, arrays, required, additionalProperties false, min/max bounds, formats) and any JSON
    data: never raises, returns [] exactly when jsonschema says the data is valid, one problem per
    jsonschema error, and every problem has a non-empty `field` and `message`.
(b) Completing the approval fixture's "Submit request" task, or the open-form task of open_form.bpmn, with
    arbitrary JSON objects (unicode, big integers, floats, nesting, keys with dots and quotes): either 200
    with the data visible in the case (and the case still works afterwards), or a 4xx problem+json with a
    detail that changed nothing (same ETag, same data, the task still ready). Never 5xx. The same for
    arbitrary JSON as a case's start data.

Bounded for CI: a fixed number of examples per property, derandomized (the same inputs on every run),
no deadline, no example database. The API properties run inside one test each, on the `app` fixture
(a fresh database per test, SQLite or USM_TEST_DATABASE_URL), with a new case per example.
"""
from __future__ import annotations

import itertools
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, FormatChecker

from usm_engine.engine.forms import Form
from tests.conftest import APPROVAL, FIXTURES, bearer

from .strategies import JSON, JSON_OBJECTS, KEYS, SCALARS, nested
from .summary import record, statuses

HERE = Path(__file__).parent
SYSTEM = bearer("system")
PROBLEM_STATUSES = {400, 403, 404, 409, 412, 413, 415, 422}


def bounded(max_examples: int):
    return settings(max_examples=max_examples, derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much, HealthCheck.large_base_example],
                    print_blob=False)


# --- (a) Form.problems against jsonschema --------------------------------------------------------------

SMALL_INTS = st.integers(-50, 50)
FORMATS = st.sampled_from(["date", "email", "uuid", "date-time", "ipv4"])
LEAVES = st.one_of(
    st.fixed_dictionaries({"type": st.just("integer")}, optional={
        "minimum": SMALL_INTS, "maximum": SMALL_INTS, "exclusiveMinimum": SMALL_INTS, "exclusiveMaximum": SMALL_INTS}),
    st.fixed_dictionaries({"type": st.just("number")}, optional={
        "minimum": st.floats(-1e6, 1e6), "maximum": st.floats(-1e6, 1e6)}),
    st.fixed_dictionaries({"type": st.just("string")}, optional={
        "minLength": st.integers(0, 5), "maxLength": st.integers(0, 12), "format": FORMATS}),
    st.just({"type": "boolean"}),
    st.just({"type": "null"}),
    st.fixed_dictionaries({"enum": st.lists(SCALARS, min_size=1, max_size=4)}),
    st.just({}),
)


def objects(children):
    def shape(properties: dict):
        names = sorted(properties) + ["missing", "it's"]
        return st.fixed_dictionaries({"type": st.just("object"), "properties": st.just(properties)}, optional={
            "required": st.lists(st.sampled_from(names), unique=True, max_size=4),
            "additionalProperties": st.just(False),
            "minProperties": st.integers(0, 3), "maxProperties": st.integers(0, 5)})

    return st.dictionaries(KEYS, children, max_size=4).flatmap(shape)


def arrays(children):
    return st.fixed_dictionaries({"type": st.just("array"), "items": children},
                                 optional={"minItems": st.integers(0, 3), "maxItems": st.integers(0, 5)})


FORM_SCHEMAS = objects(st.recursive(LEAVES, lambda inner: st.one_of(objects(inner), arrays(inner)), max_leaves=6))


def near(schema: dict):
    """Data that often satisfies `schema` and often just misses it, so both answers are exercised."""
    kind = schema.get("type")
    if "enum" in schema:
        return st.one_of(st.sampled_from(schema["enum"]), SCALARS)
    if kind == "integer":
        return st.one_of(st.integers(-60, 60), st.integers(), st.floats(-60, 60, allow_nan=False))
    if kind == "number":
        return st.one_of(st.floats(-2e6, 2e6, allow_nan=False), st.integers(-10**7, 10**7))
    if kind == "string":
        return st.one_of(st.text(max_size=14), st.sampled_from([
            "2024-02-29", "2023-02-29", "someone@example.com", "no at sign", "0f8fad5b-d9cb-469f-a165-70867728950e",
            "2024-01-31T12:00:00Z", "127.0.0.1", "999.1.1.1"]))
    if kind == "boolean":
        return st.one_of(st.booleans(), st.sampled_from([0, 1, "true"]))
    if kind == "null":
        return st.one_of(st.none(), st.just(0))
    if kind == "array":
        return st.one_of(st.lists(near(schema["items"]), max_size=6), JSON)
    if kind == "object":
        properties = schema["properties"]
        fitting = st.fixed_dictionaries({}, optional={name: near(sub) for name, sub in properties.items()})
        extra = st.dictionaries(KEYS, JSON, max_size=2)
        return st.one_of(fitting, st.tuples(fitting, extra).map(lambda pair: {**pair[1], **pair[0]}), JSON)
    return JSON


@bounded(300)
@given(schema=FORM_SCHEMAS, data=st.data())
def test_form_problems_agree_with_jsonschema(schema, data):
    value = data.draw(st.one_of(near(schema), JSON_OBJECTS, JSON), label="data")
    problems = Form(schema).problems(value)
    validator = Draft202012Validator(schema, format_checker=FormatChecker())
    assert (problems == []) == validator.is_valid(value), (problems, list(validator.iter_errors(value)))
    assert len(problems) == len(list(validator.iter_errors(value)))
    for problem in problems:
        assert isinstance(problem["field"], str) and problem["field"], problem
        assert isinstance(problem["message"], str) and problem["message"], problem


@bounded(100)
@given(data=st.one_of(JSON_OBJECTS, JSON))
def test_the_open_form_accepts_every_object_and_only_objects(data):
    assert (Form(None).problems(data) == []) == isinstance(data, dict)


# --- (b) data merging through the API -------------------------------------------------------------------

def deploy_fixtures(client) -> None:
    files = [(FIXTURES / name) for name in APPROVAL] + [HERE / "open_form.bpmn"]
    handles = [path.open("rb") for path in files]
    try:
        uploads = [(handle, path.name) for handle, path in zip(handles, files, strict=True)]
        response = client.post("/api/v1/definitions", data={"files": uploads},
                               content_type="multipart/form-data", headers=bearer("designer"))
    finally:
        for handle in handles:
            handle.close()
    assert response.status_code == 201, response.get_data(as_text=True)


def start(client, definition: str, **body) -> dict:
    response = client.post("/api/v1/cases", json={"definition": definition, **body}, headers=SYSTEM)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def read_case(client, case_id: str) -> dict:
    response = client.get(f"/api/v1/cases/{case_id}", headers=SYSTEM)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def assert_problem(response) -> None:
    assert response.status_code in PROBLEM_STATUSES, (response.status_code, response.get_data(as_text=True)[:2000])
    assert response.mimetype == "application/problem+json", response.mimetype
    problem = response.get_json()
    assert isinstance(problem.get("detail"), str) and problem["detail"].strip(), problem
    assert problem["status"] == response.status_code, problem


def assert_contains(merged: dict, sent: dict) -> None:
    for key, value in sent.items():
        assert key in merged, (key, sorted(merged)[:20])
        assert merged[key] == value, (key, merged[key], value)


def complete_and_check(client, case: dict, data) -> int:
    """Complete the case's first ready task with `data`; check the answer and the case after it."""
    task_id = case["tasks"][0]["id"]
    before = read_case(client, case["id"])
    response = client.post(f"/api/v1/tasks/{task_id}/complete", json={"data": data}, headers=SYSTEM)
    assert response.status_code < 500, response.get_data(as_text=True)[:2000]
    after = read_case(client, case["id"])
    if response.status_code == 200:
        answer = response.get_json()
        assert answer["etag"] == response.headers["ETag"] == after["etag"] != before["etag"]
        assert_contains(answer["data"], data)
        assert_contains(after["data"], data)
        assert task_id not in {task["id"] for task in after["tasks"]}
    else:
        assert_problem(response)
        assert after["etag"] == before["etag"], "a refused completion must change nothing"
        assert (after["data"], after["tasks"], after["status"]) == (before["data"], before["tasks"], before["status"])
    return response.status_code


VALID_SUBMIT = st.fixed_dictionaries({"item": st.text(min_size=1, max_size=40), "quantity": st.integers(1, 100)})


def almost_valid_submit():
    """Valid data with one thing wrong: an extra key, a value out of range or of the wrong type, a key missing."""
    return st.one_of(
        st.tuples(VALID_SUBMIT, KEYS, JSON).map(lambda t: {**t[0], t[1]: t[2]}),
        st.tuples(VALID_SUBMIT, st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                                          st.text(), st.booleans(), st.none())).map(
            lambda t: {**t[0], "quantity": t[1]}),
        st.tuples(VALID_SUBMIT, st.one_of(JSON, st.just(""))).map(lambda t: {**t[0], "item": t[1]}),
        VALID_SUBMIT.map(lambda d: {"item": d["item"]}), VALID_SUBMIT.map(lambda d: {"quantity": d["quantity"]}))


# A third valid, a third almost valid, a third anything: both answers are exercised in earnest.
SUBMIT_DATA = st.sampled_from(["valid", "almost", "any"]).flatmap(
    lambda kind: {"valid": VALID_SUBMIT, "almost": almost_valid_submit(), "any": JSON_OBJECTS}[kind])


def test_completing_submit_with_any_object_merges_it_or_changes_nothing(app, database_url):
    client = app.test_client()
    deploy_fixtures(client)
    answers = []

    @bounded(150)
    @given(data=SUBMIT_DATA)
    @example(data={"item": "x" * 2_000_000, "quantity": 1})  # over the 1 MiB case data limit: 413
    @example(data={"item": "ok", "quantity": 1, "extra": nested(101)})  # too deep for the API: 422
    @example(data={"item": "a.b \"quoted\" 'single' \u0000 😀", "quantity": 100})
    def run(data):
        case = start(client, "approval")
        answers.append(complete_and_check(client, case, data))

    run()
    record(database_url, "hypothesis submit-task", statuses(answers))
    assert 200 in answers and 422 in answers, sorted(set(answers))


def test_completing_an_open_form_merges_any_object(app, database_url):
    client = app.test_client()
    deploy_fixtures(client)
    answers = []

    @bounded(120)
    @given(data=JSON_OBJECTS)
    @example(data={"big": 10**300, "neg": -(2**63) - 1, "float": 1.7976931348623157e308, "tiny": 5e-324, "neg0": -0.0})
    @example(data={"a.b": 1, "it's": 2, 'say "hi"': 3, "": 4, "\u0000": 5, "😀": {"deep": [[[{"x": None}]]]}})
    @example(data={"d": nested(98)})  # the deepest data the API takes (the body adds a level): accepted
    @example(data={"d": nested(99)})  # the body {"data": ...} is then nested 101 levels: 422
    @example(data={"s": "x" * 1_100_000})  # over the case data limit: 413
    def run(data):
        case = start(client, "open_form")
        status = complete_and_check(client, case, data)
        answers.append(status)
        if status == 200:  # the merged data must survive a save and a restore: the case goes on
            after = read_case(client, case["id"])
            assert after["status"] == "running" and len(after["tasks"]) == 1, after
            assert complete_and_check(client, after, {}) == 200
            assert read_case(client, case["id"])["status"] == "completed"

    run()
    record(database_url, "hypothesis open-form-task", statuses(answers))
    assert answers.count(200) > len(answers) // 2, sorted(set(answers))


_business_keys = itertools.count()


def test_any_object_as_start_data_starts_a_working_case_or_nothing(app, database_url):
    client = app.test_client()
    deploy_fixtures(client)
    answers = []

    @bounded(120)
    @given(data=JSON_OBJECTS)
    @example(data={"n": 10**200, "f": -1e-300, "a.b": ["it's", 'say "hi"']})
    @example(data={"d": nested(101)})  # too deep: 422, no case
    @example(data={"s": "y" * 1_100_000})  # too large: 413, no case
    def run(data):
        business_key = f"fuzz-start-{next(_business_keys)}"
        response = client.post("/api/v1/cases", json={"definition": "approval", "business_key": business_key,
                                                      "data": data}, headers=SYSTEM)
        assert response.status_code < 500, response.get_data(as_text=True)[:2000]
        answers.append(response.status_code)
        if response.status_code == 201:
            case = response.get_json()
            assert_contains(case["data"], data)
            assert_contains(read_case(client, case["id"])["data"], data)
            # The stored case must restore: completing its first task works and keeps the start data
            # that the form did not overwrite.
            submitted = {"item": "chair", "quantity": 2}
            assert complete_and_check(client, case, submitted) == 200
            merged = read_case(client, case["id"])["data"]
            assert_contains(merged, {**data, **submitted})
        else:
            assert_problem(response)
            listed = client.get("/api/v1/cases", query_string={"business_key": business_key}, headers=SYSTEM)
            assert listed.status_code == 200 and listed.get_json()["items"] == [], "a refused start creates nothing"

    run()
    record(database_url, "hypothesis start-data", statuses(answers))
    assert 201 in answers, sorted(set(answers))
