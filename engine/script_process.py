"""Sandbox processes: where every script and every expression that is not plain (plain_expressions.py)
runs, so that no script can take the server down.

A script in the server's own process can be stopped only between bytecodes; one C call
(`pow(10, 10**8)`, `math.factorial(10**6)`, `(0).to_bytes(10**9, 'big')`) runs to its end, holding a
worker for seconds and its memory for good. Here each script runs in a separate process (script_child.py)
with OS limits on its memory and CPU, and the server waits for it no longer than the time limit plus
GRACE_SECONDS: then it kills the process, and the script fails with ScriptLimitExceeded, an incident on
its case like any other failed script. The server's own memory does not grow with what a script does.

Sandbox processes are kept and reused (one per thread that needs one at a time), per server process:
a process started in a parent (before gunicorn forks) is never used by the child.

While a thread only waits for its sandbox process it needs no CPU of its own; `set_waiting` lets the
server that runs the engine use that time once a script has not answered within QUICK_ANSWER_SECONDS
(`usm serve` serves another request of the same process meanwhile, see api/serving_gate.py). The engine
itself knows nothing of requests.
"""
from __future__ import annotations

import atexit
import contextlib
import logging
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import asdict
from typing import Any

from .script_limits import ScriptLimitExceeded
from .script_wire import decode, encode, from_wire, rebuild, to_wire
from .settings import ScriptLimits

log = logging.getLogger(__name__)

# How long past the time limit the server waits before killing. The sandbox stops a Python-level loop
# itself at the limit (with a clean error, keeping the process); the kill is for what it cannot stop.
GRACE_SECONDS = 0.5
_READ_CHUNK = 1 << 16
# How long a thread waits for a script's answer before it lets its server serve other requests meanwhile.
QUICK_ANSWER_SECONDS = 0.05


class SandboxProcess:
    """One sandbox process and the two pipes to it."""

    def __init__(self, memory_bytes: int) -> None:
        self.memory_bytes = memory_bytes
        module = f"{__package__}.script_child"
        # -I: no PYTHONPATH, no user site, not the server's working directory. An environment of its own:
        # nothing of the server's (tokens, the database URL) is there to be found by a script.
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-m", module, str(memory_bytes)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={"PATH": os.defpath, "LC_ALL": "C.UTF-8"},
            close_fds=True)
        self._pending = bytearray()
        self._owner = os.getpid()

    def usable(self) -> bool:
        return self._owner == os.getpid() and self.process.poll() is None

    def send(self, message: dict) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(encode(message))
        self.process.stdin.flush()

    def receive(self, deadline: float, max_bytes: int) -> dict:
        """The next message, or TimeoutError at `deadline`, EOFError if the process ended."""
        assert self.process.stdout is not None
        descriptor = self.process.stdout.fileno()
        while b"\n" not in self._pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            ready, _, _ = select.select([descriptor], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(descriptor, _READ_CHUNK)
            if not chunk:
                raise EOFError
            self._pending += chunk
            if len(self._pending) > max_bytes:
                raise ValueError("the sandbox sent more than a script's data may be")
        line, _, rest = bytes(self._pending).partition(b"\n")
        self._pending = bytearray(rest)
        return decode(line)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()

    def close(self) -> None:
        """Let it end: it exits when its stdin closes."""
        if self.process.stdin is not None:
            self.process.stdin.close()


class SandboxPool:
    """Idle sandbox processes of this server process, by memory limit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[SandboxProcess] = []

    def take(self, memory_bytes: int) -> SandboxProcess:
        with self._lock:
            while self._idle:
                candidate = self._idle.pop()
                if candidate.memory_bytes == memory_bytes and candidate.usable():
                    return candidate
                if candidate.usable():
                    candidate.close()
        return SandboxProcess(memory_bytes)

    def give_back(self, process: SandboxProcess) -> None:
        with self._lock:
            self._idle.append(process)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for process in idle:
            if process.usable():
                process.close()


_POOL = SandboxPool()  # per server process: every Engine in it shares the sandbox processes
atexit.register(_POOL.close)

# Entered around each wait for a sandbox's answer; nothing by default (the timer worker, the CLI).
_waiting: Callable[[], AbstractContextManager[Any]] = contextlib.nullcontext


def set_waiting(context: Callable[[], AbstractContextManager[Any]]) -> None:
    """What this process does while a thread waits for its sandbox process (see the module's comment)."""
    global _waiting
    _waiting = context

Helpers = Mapping[str, Callable[..., Any]]


def run_in_sandbox(request: dict, limits: ScriptLimits, helpers: Helpers, max_output_bytes: int) -> dict:
    """Run `request` (mode, source, context, external) in a sandbox process, answering its helper calls
    on this thread. Returns its reply (`value` or `context`, and `error` if the script failed); raises
    ScriptLimitExceeded if it had to be stopped."""
    message = {**request, "limits": asdict(limits), "helpers": sorted(helpers), "max_output_bytes": max_output_bytes}
    # What may come back: the data (it was checked against max_output_bytes there) and the JSON around it.
    max_reply = 2 * max_output_bytes + (1 << 20)
    process = _POOL.take(limits.memory_bytes)
    deadline = time.monotonic() + limits.seconds + GRACE_SECONDS
    reusable, calls = False, 0
    try:
        process.send(message)
        while True:
            reply = _receive(process, deadline, max_reply)
            if "call" not in reply:
                # After a limit the process may hold what the script built: a fresh one serves the next.
                reusable = "error" not in reply or reply["error"].get("type") != "ScriptLimitExceeded"
                return reply
            calls += 1  # counted here too: the sandbox's own count is only as good as the sandbox
            if calls > limits.max_helper_calls:
                raise ScriptLimitExceeded(f"the script called the engine's helpers more than "
                                          f"{limits.max_helper_calls} times, the sandbox's limit")
            process.send(_answer(helpers, reply))
    except TimeoutError:
        raise ScriptLimitExceeded(f"the script ran longer than the sandbox's limit of {limits.seconds:g} s "
                                  "and was stopped") from None
    except (EOFError, BrokenPipeError):
        raise ScriptLimitExceeded("the script was stopped: it went past the sandbox's CPU or memory limit "
                                  f"({limits.seconds:g} s, {limits.memory_bytes // (1024 * 1024)} MB)") from None
    except (ValueError, RecursionError) as exc:
        raise ScriptLimitExceeded(f"the script's sandbox sent an answer that cannot be used ({exc})") from None
    finally:
        if reusable:
            _POOL.give_back(process)
        else:
            process.kill()


def _receive(process: SandboxProcess, deadline: float, max_bytes: int) -> dict:
    """The sandbox's next message. Most scripts answer within milliseconds, and the thread keeps its
    server's turn for that long: handing it over would only let the server take in another request to
    finish first. A longer wait (a slow or runaway script) lets the server serve others meanwhile."""
    try:
        return process.receive(min(deadline, time.monotonic() + QUICK_ANSWER_SECONDS), max_bytes)
    except TimeoutError:
        if time.monotonic() >= deadline:
            raise
    with _waiting():
        return process.receive(deadline, max_bytes)


def _answer(helpers: Helpers, call: dict) -> dict:
    """Run a helper the script called (it is the engine's, trusted, and runs here)."""
    helper = helpers.get(str(call.get("call")))
    if helper is None:
        return {"error": {"type": "NameError", "message": f"name '{call.get('call')}' is not defined"}}
    try:
        return {"value": to_wire(helper(*from_wire(call.get("args") or [])))}
    except Exception as exc:  # noqa: BLE001 - the helper's error is the script's: it goes back to the sandbox
        return {"error": {"type": type(exc).__name__, "message": str(exc.args[0]) if exc.args else ""}}


def raise_script_error(error: dict, script_file: str) -> None:
    """Raise the script's error here, as if from its line of `script_file`: SpiffWorkflow finds the line
    of a failed script in the traceback, by that file name."""
    exc = rebuild(error)
    line = error.get("line")
    if isinstance(line, int) and 0 < line < 100_000:
        exec(compile("\n" * (line - 1) + "raise error", script_file, "exec"), {"error": exc})
    raise exc
