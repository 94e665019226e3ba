"""The sandbox processes scripts run in (engine/script_process.py, script_child.py, script_wire.py) and the
plain expressions that skip them (engine/plain_expressions.py)."""
from __future__ import annotations

import os
import time

import pytest

from usm_engine.engine import sandbox, script_process
from usm_engine.engine.plain_expressions import is_plain
from usm_engine.engine.sandbox import RestrictedEnvironment
from usm_engine.engine.script_limits import ScriptLimitExceeded
from usm_engine.engine.script_process import SandboxProcess
from usm_engine.engine.script_wire import OutputTooLarge, check_size, from_wire, rebuild, to_wire
from usm_engine.engine.settings import ScriptLimits

ONE_SECOND = ScriptLimits(seconds=1.0)


@pytest.mark.parametrize("expression", [
    "approved == True", "priority in ('P1', 'P2')", "not escalated", "a >= 3 and (b < 2 or c is None)",
    "call['priority'] == 'P1'", "items[index] != -1", "x", "'literal'", "[1, 2] == answer",
])
def test_plain_expressions_run_in_the_server(expression):
    assert is_plain(expression)


@pytest.mark.parametrize("expression", [
    "pow(10, 10**8) > 0", "len(items) > 3", "x * 2", "a.b", "items[1:]", "[i for i in items]",
    "lambda: 1", "__import__", "(yield)", "not valid python (",
])
def test_everything_else_goes_to_a_sandbox_process(expression):
    assert not is_plain(expression)


def test_a_plain_condition_never_starts_a_sandbox_process(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a plain expression went to a sandbox process")
    monkeypatch.setattr(sandbox, "run_in_sandbox", refuse)
    environment = RestrictedEnvironment()
    assert environment.evaluate(" priority in ('P1', 'P2') ", {"priority": "P2"}) is True
    assert environment.evaluate("call['open'] and not closed", {"call": {"open": True}, "closed": False}) is True


def test_int_keys_and_nested_data_come_back_as_they_went():
    data = {"by_index": {0: "first", 1: {"deep": [1, 2.5, None, True]}}, "text": "x"}
    assert from_wire(to_wire(data)) == data
    RestrictedEnvironment().execute("copy = by_index\nsecond = by_index[1]", data)
    assert data["copy"] == {0: "first", 1: {"deep": [1, 2.5, None, True]}}
    assert data["second"] == {"deep": [1, 2.5, None, True]}


def test_a_long_c_call_is_stopped_at_the_limit_and_the_next_script_runs():
    environment = RestrictedEnvironment(limits=ONE_SECOND)
    started = time.monotonic()
    with pytest.raises(ScriptLimitExceeded, match="longer than the sandbox's limit of 1 s"):
        environment.execute("x = pow(10, 10**8) > 0", {})
    # The limit plus the grace before the kill; generous on top for a loaded CI machine.
    assert time.monotonic() - started < ONE_SECOND.seconds + script_process.GRACE_SECONDS + 3
    data = {"n": 2}
    environment.execute("m = n * 21", data)
    assert data == {"n": 2, "m": 42}


def test_the_sandbox_process_has_no_environment_of_the_server_and_capped_memory(monkeypatch):
    monkeypatch.setenv("USM_ADMIN_TOKEN", "secret-token")
    process = SandboxProcess(64 * 1024 * 1024)
    try:
        process.send({"mode": "eval", "source": "1", "context": {}, "external": {}, "helpers": [],
                      "limits": {"seconds": 1.0, "memory_bytes": 64 * 1024 * 1024, "max_items": 100,
                                 "max_helper_calls": 1},
                      "max_output_bytes": 1000, "max_depth": 10})
        assert process.receive(time.monotonic() + 30, 10_000) == {"value": 1}
        pid = process.process.pid
        environment = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
        assert not [entry for entry in environment if entry.startswith(b"USM_")]
        limits = open(f"/proc/{pid}/limits").read()
        address_space = next(line for line in limits.splitlines() if line.startswith("Max address space"))
        soft, hard = address_space.split()[3:5]
        assert soft == hard and int(soft) < 1024 ** 3  # its size at rest (tens of MB) plus the 64 MB
    finally:
        process.kill()


def test_a_process_inherited_from_a_parent_is_not_used():
    process = SandboxProcess(64 * 1024 * 1024)
    try:
        assert process.usable()
        process._owner = os.getpid() + 1  # as after gunicorn forked the process that started it
        assert not process.usable()
    finally:
        process.kill()


def test_helpers_run_in_the_server_and_are_counted():
    calls = []

    def next_number(prefix):
        calls.append(prefix)
        return f"{prefix}-{len(calls)}"

    environment = RestrictedEnvironment({"next_number": next_number}, ScriptLimits(max_helper_calls=3))
    data: dict = {}
    environment.execute("a = next_number('INC')\nb = next_number('RFC')", data)
    assert data == {"a": "INC-1", "b": "RFC-2"}
    with pytest.raises(ScriptLimitExceeded, match="more than 3 times"):
        environment.execute("for i in range(10):\n    last = next_number('INC')", {})
    assert len(calls) == 5  # two, then three before the fourth call was refused


def test_a_helper_error_is_the_scripts_error_at_its_line():
    def refuse(prefix):
        raise ValueError("a call number prefix is 2 to 8 capital letters")

    environment = RestrictedEnvironment({"next_call_number": refuse})
    with pytest.raises(ValueError, match="capital letters") as info:
        environment.execute("a = 1\nb = next_call_number('x')", {})
    frames = [frame for frame in _frames(info.value.__traceback__) if frame[0] == "<string>"]
    assert frames and frames[-1][1] == 2


def _frames(traceback):
    while traceback is not None:
        yield traceback.tb_frame.f_code.co_filename, traceback.tb_lineno
        traceback = traceback.tb_next


def test_every_oversized_field_is_dropped_and_named():
    data: dict = {"kept": 1}
    with pytest.raises(ScriptLimitExceeded, match="more than 1048576 bytes"):
        RestrictedEnvironment().execute("s = 'x' * 2000000\ny = [s] * 100\nsmall = 2", data)
    assert data == {"kept": 1, "small": 2}


def test_size_is_measured_without_encoding_and_stops_early():
    shared = "x" * 10_000_000
    started = time.monotonic()
    with pytest.raises(OutputTooLarge, match="'y'"):
        check_size("y", [shared] * 1000, 1_000_000, 100)
    with pytest.raises(OutputTooLarge, match="nested more than 100"):
        nested: list = []
        for _ in range(5000):
            nested = [nested]
        check_size("d", nested, 1_000_000, 100)
    assert time.monotonic() - started < 5  # generous: it walks a handful of items, never 10 GB


def test_errors_come_back_as_the_same_python_types():
    assert isinstance(rebuild({"type": "KeyError", "message": "x"}), KeyError)
    assert isinstance(rebuild({"type": "ScriptLimitExceeded", "message": "m"}), ScriptLimitExceeded)
    name_error = rebuild({"type": "NameError", "message": "name 'y' is not defined", "name": "y"})
    assert isinstance(name_error, NameError) and name_error.name == "y"
    own = rebuild({"type": "MyError", "message": "mine"})
    assert type(own).__name__ == "MyError" and str(own) == "mine"
    assert type(rebuild({"type": "not a name; rm -rf", "message": ""})).__name__ == "ScriptError"
    # A builtin that cannot be built from one message still becomes an error, not a crash.
    assert type(rebuild({"type": "UnicodeDecodeError", "message": "bad"})).__name__ == "UnicodeDecodeError"


def test_each_run_has_its_own_random_and_no_addresses():
    environment = RestrictedEnvironment()
    first: dict = {}
    environment.execute("random.seed(1234)\nx = random.random()", first)
    second: dict = {}
    environment.execute("y = random.random()", second)
    assert second["y"] != first["x"]
    shown: dict = {}
    environment.execute("r = repr(random)\nm = repr(math)", shown)
    assert shown == {"r": "<module 'random'>", "m": "<module 'math'>"}
    with pytest.raises(NameError):
        environment.execute("address = id(1)", {})
