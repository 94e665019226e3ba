"""Issue 12: hostile scripts, conditions and timer expressions, as whole cases through the HTTP API.

Each technique is a model of its own in tests/fixtures/hostile/ (picked by the start data's `technique`
where one file holds several). Whatever the technique, the case must end in status "error" with an
incident whose message says which limit it hit; it must get there within seconds (the time limit plus a
margin); no request may answer 5xx (the `app_factory` fixture fails the test on any); and this process,
which plays the server, must not keep the memory the script took.

The escape attempts (imports, dunder traversal, frames, str.format traversal, open, eval, ...) are tested
where the sandbox is, in tests/engine/test_sandbox.py (SCRIPT_ESCAPES, EXPRESSION_ESCAPES, escapes.bpmn,
read_env.bpmn, read_etc_passwd.bpmn); they are not repeated here. Only their three models are run once
more as whole cases (`test_the_known_escapes_still_end_in_incidents`), since scripts now run elsewhere.
"""
from __future__ import annotations

import json
import os
import random
import re
import time
from dataclasses import dataclass

import pytest

from usm_engine.engine.clock import FixedClock
from tests.conftest import FIXTURES, bearer

HOSTILE = FIXTURES / "hostile"
MIB = 1024 * 1024

TIME_LIMIT = 1  # USM_SCRIPT_TIME_LIMIT for every test here, in seconds
# The issue asks for an incident within the limit plus one second. The bound here is generous on purpose
# because CI is a loaded 2-core machine (and a C call such as pow() holds a core until it is killed):
# the point is "seconds, not 20 s", which is what these techniques take without the limit.
TIME_BOUND = TIME_LIMIT + 4
# The server's (here: this test process's) resident memory may not grow by this much over the hostile
# run: each technique takes hundreds of MB to GB where it runs, so growth here means it ran here.
RSS_GROWTH_BOUND = 100 * MIB

# A regression that lets a script hang the server must fail this file in minutes, not hang CI for
# pytest's default of 300 s per test (a pure-Python hang is interrupted; a C call is not).
pytestmark = pytest.mark.timeout(60)

MODELS = ("c_call_script.bpmn", "c_call_condition.bpmn", "c_call_timer.bpmn", "endless_scripts.bpmn",
          "memory_bombs.bpmn", "amplified_data.bpmn", "shared_state.bpmn", "helper_calls.bpmn",
          "timer_then_oversized.bpmn", "timer_then_hang.bpmn", "timer_then_task.bpmn")

# What the incident's message must say, loosely: which kind of limit stopped the script.
TIME = r"limit|longer than|time"
MEMORY = r"memory|limit"
SIZE = r"too large|larger than|bytes|limit"
DEPTH = r"deep|nested|depth"
HELPERS = r"helper|more than|limit"


# --- resident memory of this process ---------------------------------------------------------------

_PAGE = os.sysconf("SC_PAGE_SIZE")
_FIRST_RSS: list[int] = []  # this process's resident memory before the first hostile run of the module


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * _PAGE


def reset_peak() -> bool:
    """Start this process's peak resident size (VmHWM) afresh; False where Linux does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def peak_bytes() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))


def assert_memory_kept(before: int, peak_known: bool = False) -> None:
    """Neither this run nor the whole hostile run so far grew this process by RSS_GROWTH_BOUND; and, where
    the peak could be reset before the run, the run did not take that much here even for a moment (a
    gigabyte built here and freed again leaves the resident size as it was, but not the peak)."""
    now = resident_bytes()
    assert now - before < RSS_GROWTH_BOUND, f"this run grew the server by {(now - before) / MIB:.0f} MB"
    assert now - _FIRST_RSS[0] < RSS_GROWTH_BOUND, \
        f"the hostile runs so far grew the server by {(now - _FIRST_RSS[0]) / MIB:.0f} MB"
    if peak_known:
        peak = peak_bytes()
        assert peak - before < RSS_GROWTH_BOUND, f"this run took {(peak - before) / MIB:.0f} MB in the server"


# --- the server under attack ------------------------------------------------------------------------

@dataclass
class Outcome:
    status_code: int
    case: dict
    seconds: float


class Target:
    """The API in this process, with every hostile model deployed, on a clock the test moves."""

    def __init__(self, app, clock: FixedClock):
        self.app, self.clock = app, clock
        self.client = app.test_client()
        self.engine = app.extensions["usm_engine"]

    def deploy(self, *names: str) -> None:
        data = {"files": [((HOSTILE / name).open("rb"), name) for name in names]}
        try:
            response = self.client.post("/api/v1/definitions", data=data, content_type="multipart/form-data",
                                        headers=bearer("designer"))
        finally:
            for handle, _ in data["files"]:
                handle.close()
        assert response.status_code == 201, response.get_data(as_text=True)

    def start(self, definition: str, **data) -> Outcome:
        """Start a case and time the request; memory is checked against what this process held before."""
        peak_known = reset_peak()
        before = resident_bytes()
        if not _FIRST_RSS:
            _FIRST_RSS.append(before)
        started = time.monotonic()
        response = self.client.post("/api/v1/cases", json={"definition": definition, "data": data},
                                    headers=bearer("system"))
        seconds = time.monotonic() - started
        assert response.status_code == 201, response.get_data(as_text=True)  # an incident is not a failed start
        assert_memory_kept(before, peak_known)
        return Outcome(response.status_code, response.get_json(), seconds)

    def case(self, case_id: str) -> dict:
        response = self.client.get(f"/api/v1/cases/{case_id}", headers=bearer("auditor"))
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()


@pytest.fixture
def target(app_factory) -> Target:
    clock = FixedClock()
    server = Target(app_factory(clock=clock, USM_SCRIPT_TIME_LIMIT=str(TIME_LIMIT)), clock)
    server.deploy(*MODELS)
    return server


def assert_incident(case: dict, element_id: str | None, kind: str) -> str:
    """The case is in error with an incident naming the kind of limit, at `element_id` unless that is None;
    returns the incident's message."""
    assert case["status"] == "error", f"expected an incident, the case is {case['status']}: {case.get('data')}"
    incident = case["incident"]
    assert incident, case
    assert element_id is None or incident["element_id"] == element_id, incident
    assert re.search(kind, incident["message"], re.IGNORECASE), incident["message"]
    return incident["message"]


def assert_in_time(outcome: Outcome) -> None:
    assert outcome.seconds <= TIME_BOUND, f"the incident took {outcome.seconds:.1f} s (limit {TIME_LIMIT} s)"


def assert_scripts_still_run(target: Target) -> None:
    """After a script was stopped, the next one runs (a killed sandbox is replaced)."""
    outcome = target.start("shared_state", technique="draw")
    assert outcome.case["status"] == "completed", outcome.case
    assert isinstance(outcome.case["data"]["x"], float)


def names_field(message: str, *fields: str) -> bool:
    """Whether the message names one of the fields, quoted in any way (`d`, 'd', "d")."""
    return any(re.search(rf"[`'\"‘“]{re.escape(field)}[`'\"’”]", message) for field in fields)


# --- 1. time limit bypassed by one C call ------------------------------------------------------------

C_CALLS = ["pow", "sum", "choices", "factorial"]


@pytest.mark.parametrize("technique, element_id", [
    ("pow", "big_pow"),  # x = pow(10, 10**7) > 0
    ("sum", "sum_of_lists"),  # len(sum([[0]*1000]*3000, []))
    ("choices", "many_choices"),  # random.choices([1], k=5*10**7)
    ("factorial", "huge_factorial"),  # math.factorial(10**6)
])
def test_one_long_c_call_in_a_script_is_stopped(target, technique, element_id):
    outcome = target.start("c_call_script", technique=technique)
    # random.choices may meet the memory limit before the time limit: either is a limit.
    assert_incident(outcome.case, element_id, TIME if technique != "choices" else f"{TIME}|{MEMORY}")
    assert_in_time(outcome)
    assert_scripts_still_run(target)


@pytest.mark.parametrize("technique", C_CALLS)
def test_one_long_c_call_in_a_gateway_condition_is_stopped(target, technique):
    outcome = target.start("c_call_condition", technique=technique)
    assert_incident(outcome.case, "check", TIME if technique != "choices" else f"{TIME}|{MEMORY}")
    assert_in_time(outcome)


@pytest.mark.parametrize("technique, element_id", [
    ("pow", "wait_pow"),  # timeDuration
    ("sum", "wait_sum"),  # timeDuration
    ("choices", "wait_choices"),  # timeDate
    ("factorial", "wait_factorial"),  # timeDate
])
def test_one_long_c_call_in_a_timer_expression_is_stopped(target, technique, element_id):
    outcome = target.start("c_call_timer", technique=technique)
    assert_incident(outcome.case, element_id, TIME if technique != "choices" else f"{TIME}|{MEMORY}")
    assert_in_time(outcome)


# --- 2. scripts that never end ----------------------------------------------------------------------

@pytest.mark.parametrize("technique", ["spin", "generator_dropped", "generator_kept"])
def test_a_script_that_never_ends_is_stopped(target, technique):
    outcome = target.start("endless_scripts", technique=technique)
    assert_incident(outcome.case, technique, TIME)
    assert_in_time(outcome)
    assert_scripts_still_run(target)


# --- 3. memory --------------------------------------------------------------------------------------

@pytest.mark.parametrize("technique, element_id", [
    ("ljust", "ljust_giant"),  # str.ljust('', 10**9)
    ("percent", "percent_width"),  # '%*s' % (10**9, '')
    ("to_bytes", "to_bytes_giant"),  # (0).to_bytes(10**9, 'big')
    ("hoard", "hoard"),  # a list appended to, a megabyte at a time
])
def test_a_script_taking_too_much_memory_is_stopped(target, technique, element_id):
    outcome = target.start("memory_bombs", technique=technique)
    # The memory limit, or the size limit on one operation that refuses it before it allocates.
    assert_incident(outcome.case, element_id, f"{MEMORY}|{SIZE}")
    assert_in_time(outcome)
    assert_scripts_still_run(target)


# --- 4. amplification after the script --------------------------------------------------------------

@pytest.mark.parametrize("technique, element_id, kind, fields", [
    ("repeat", "repeat_reference", SIZE, ("s", "y")),  # s = 'x' * 10**7; y = [s] * 100: 1 GB as JSON
    ("nest", "deep_nesting", DEPTH, ("d",)),  # lists 5,000 deep
], ids=["repeat", "nest"])
def test_data_too_large_or_too_deep_is_an_incident_naming_the_field(target, technique, element_id, kind, fields):
    outcome = target.start("amplified_data", technique=technique)
    message = assert_incident(outcome.case, element_id, kind)
    assert names_field(message, *fields), message
    assert_in_time(outcome)
    json.dumps(outcome.case)  # what the API answered is ordinary data: the field was never stored


# --- 5. the timer worker ----------------------------------------------------------------------------

def test_the_timer_worker_records_incidents_and_still_fires_the_plain_timer(target):
    peak_known = reset_peak()
    before = resident_bytes()
    oversized = target.start("timer_then_oversized").case
    hanging = target.start("timer_then_hang").case
    assert oversized["status"] == hanging["status"] == "running"
    target.clock.advance(minutes=1)
    plain = target.start("timer_then_task").case  # due a minute after the two others
    target.clock.advance(minutes=62)

    started = time.monotonic()
    target.engine.fire_due_timers()  # its count includes cases whose step after the timer failed
    seconds = time.monotonic() - started

    assert [t["name"] for t in target.case(plain["id"])["tasks"]] == ["Follow up"]
    # The worker must record an incident on each bad case; where (the script, or the case as a whole when
    # the save after the timer failed) is the engine's choice.
    assert_incident(target.case(oversized["id"]), None, SIZE)
    assert_incident(target.case(hanging["id"]), None, TIME)
    # One script overran its limit; the other failed at once: one limit and the margin, not minutes.
    assert seconds <= TIME_BOUND, f"firing the timers took {seconds:.1f} s"
    target.clock.advance(hours=1)
    assert target.engine.fire_due_timers() == 0  # the failed cases are no longer due
    assert_memory_kept(before, peak_known)


# --- 6. state shared between cases ------------------------------------------------------------------

def test_a_seed_set_by_one_case_does_not_reach_another(target):
    seeding = target.start("shared_state", technique="seed").case
    assert seeding["status"] == "completed", seeding
    drawing = target.start("shared_state", technique="draw").case
    assert drawing["status"] == "completed", drawing
    assert drawing["data"]["x"] != random.Random(1234).random()


ADDRESS = re.compile(r"0x[0-9a-f]{4,}", re.IGNORECASE)
PATH = re.compile(r"/(usr|home|work|tmp|opt|lib|root|site-packages)\b|\.py\b")


@pytest.mark.parametrize("technique, element_id", [
    ("id", "ask_id"),  # shown = id(1)
    ("repr", "show_random"),  # shown = repr(random)
    # Not in the list, the same finding: the repr of a module's function names its object's address.
    ("repr_method", "show_random_method"),  # shown = repr(random.random)
])
def test_scripts_cannot_learn_addresses_or_paths(target, technique, element_id):
    case = target.start("shared_state", technique=technique).case
    if case["status"] == "error":  # not available at all: fine, as long as it is the script's own failure
        assert case["incident"]["element_id"] == element_id, case["incident"]
        return
    assert case["status"] == "completed", case
    shown = case["data"]["shown"]
    if isinstance(shown, int):  # an id() that works must not be an address (CPython's are 0x5... / 0x7f...)
        assert shown < 2 ** 20, f"id(1) gave {shown:#x}, an address"
    else:
        assert not ADDRESS.search(shown) and not PATH.search(shown), shown


# --- 7. helper calls --------------------------------------------------------------------------------

def test_a_script_may_take_one_hundred_call_numbers(target):
    case = target.start("helper_calls", calls=100).case  # USM_SCRIPT_MAX_HELPER_CALLS' default
    assert case["status"] == "completed", case
    assert re.fullmatch(r"INC-0*100", case["data"]["last"]), case["data"]


@pytest.mark.parametrize("calls", [101, 100_000])
def test_a_script_taking_more_call_numbers_is_stopped(target, calls):
    outcome = target.start("helper_calls", calls=calls)
    assert_incident(outcome.case, "take_numbers", HELPERS)
    assert_in_time(outcome)


# --- 8. the escapes of tests/engine/test_sandbox.py, as whole cases ---------------------------------

@pytest.mark.parametrize("model, element_id", [
    ("escapes.bpmn", "do_import"),  # the first dangerous step; test_sandbox.py drives every one
    ("read_env.bpmn", "import_os"),
    ("read_etc_passwd.bpmn", "read_etc_passwd"),
])
def test_the_known_escapes_still_end_in_incidents(app_factory, monkeypatch, tmp_path, model, element_id):
    monkeypatch.setenv("USM_SANDBOX_CANARY", "canary-secret-value")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    clock = FixedClock()
    target = Target(app_factory(clock=clock, USM_SCRIPT_TIME_LIMIT=str(TIME_LIMIT)), clock)
    target.deploy(model)
    case = target.start("dangerous").case
    assert case["status"] == "error" and case["incident"]["element_id"] == element_id, case
    assert re.search(r"ImportError|NameError|import|not defined", case["incident"]["message"]), case["incident"]
    shown = json.dumps(case)
    assert "canary-secret-value" not in shown and "root:" not in shown
    assert not list((tmp_path / "out").iterdir())  # nothing written by an escaped script
