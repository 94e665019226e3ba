"""The sandbox process: runs scripts and expressions for the server, one at a time, under OS limits.

Started by script_process.py as `python -I -m <this module> MEMORY_BYTES`, with no environment of the
server's (no tokens, no database URL). It reads one JSON request per line on stdin and writes JSON lines
on stdout: calls of the engine's helpers while a script runs, then the result. Its address space is
capped (RLIMIT_AS) at its size at rest plus the memory limit, and its CPU time (RLIMIT_CPU) at each
request's time limit plus a margin; the server also kills it when a request outlives the time limit,
which is what stops a single long C call (`pow(10, 10**8)`) that no trace function can interrupt.
"""
from __future__ import annotations

import os
import resource
import sys
from typing import Any, BinaryIO

from .restricted import compile_script, drop_non_json, ensure_str_message, guards, is_json_value, script_globals
from .script_limits import SCRIPT_FILENAME, ScriptLimitExceeded, run_limited
from .script_wire import OutputTooLarge, check_size, decode, encode, error_of, from_wire, rebuild, to_wire
from .settings import ScriptLimits


def main() -> None:
    reader = sys.stdin.buffer
    writer = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # whatever a library prints goes to stderr, never into the replies
    _cap_memory(int(sys.argv[1]))
    while True:
        line = reader.readline()
        if not line:
            return  # the server closed the pipe: it is done with this process
        reply, healthy = Run(decode(line), reader, writer).reply()
        writer.write(encode(reply))
        if not healthy:
            return  # after a MemoryError nothing here can be trusted; the server starts a new one


def _cap_memory(memory_bytes: int) -> None:
    with open("/proc/self/status") as status:
        size = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
    cap = size + memory_bytes
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))  # hard too: nothing in here may raise it again


def _cap_cpu(seconds: float) -> None:
    used = resource.getrusage(resource.RUSAGE_SELF)
    spent = used.ru_utime + used.ru_stime
    resource.setrlimit(resource.RLIMIT_CPU, (int(spent + seconds) + 2, resource.RLIM_INFINITY))


class Run:
    """One request: a script run in the task data (exec) or an expression evaluated on it (eval)."""

    def __init__(self, request: dict, reader: BinaryIO, writer: Any) -> None:
        self.request = request
        self.reader, self.writer = reader, writer
        self.limits = ScriptLimits(**request["limits"])
        self.helper_calls = 0

    def reply(self) -> tuple[dict, bool]:
        _cap_cpu(self.limits.seconds)
        context = from_wire(self.request["context"])
        try:
            if self.request["mode"] == "eval":
                return {"value": self._evaluate(context)}, True
            self._execute(context)
            return {"context": to_wire(context)}, True
        except MemoryError:
            error = ScriptLimitExceeded(f"the script used more than the sandbox's memory limit of "
                                        f"{self.limits.memory_bytes // (1024 * 1024)} MB")
            return {"error": error_of(error, SCRIPT_FILENAME), "context": self.request["context"]}, False
        except Exception as exc:  # noqa: BLE001 - whatever the script raised goes back to the server as its error
            ensure_str_message(exc)
            reply: dict[str, Any] = {"error": error_of(exc, SCRIPT_FILENAME)}
            if self.request["mode"] == "exec":
                reply["context"] = to_wire(context)
            return reply, True

    def _names(self) -> tuple[dict[str, Any], dict[str, Any]]:
        helpers = {name: self._helper(name) for name in self.request["helpers"]}
        return {**helpers, **from_wire(self.request["external"])}, guards(self.limits)

    def _evaluate(self, context: dict) -> Any:
        extra, guard_names = self._names()
        code = compile_script(self.request["source"], "eval")
        value = run_limited(self.limits, eval, code, {**extra, **context, **guard_names})
        if isinstance(value, tuple):
            value = list(value)
        if not is_json_value(value):
            raise TypeError(f"the expression gave a {type(value).__name__}; an expression must give data "
                            "(a boolean, number, string, list or dict)")
        self._check("the expression's value", value)
        return to_wire(value)

    def _execute(self, context: dict) -> None:
        extra, guard_names = self._names()
        code = compile_script(self.request["source"], "exec")
        # The script runs in the task data itself, so its assignments become task data. The date and time
        # names do not hide task data of the same name, and are dropped after it as any non-data value is.
        context.update({**{name: value for name, value in script_globals().items() if name not in context},
                        **extra, **guard_names})
        try:
            run_limited(self.limits, exec, code, context)
        finally:
            for name in [name for name in context if name in extra or name in guard_names
                         or name == "__builtins__" or callable(context[name])]:
                del context[name]
            drop_non_json(context)
            self._check_fields(context)

    def _check_fields(self, context: dict) -> None:
        """Every field too large or too deep is dropped (none is encoded), and the script fails on the first."""
        first: OutputTooLarge | None = None
        for name in list(context):
            try:
                self._check(name, context[name])
            except OutputTooLarge as exc:
                del context[name]
                first = first or exc
        if first is not None:
            raise first

    def _check(self, name: str, value: Any) -> None:
        check_size(name, value, self.request["max_output_bytes"], self.request["max_depth"])

    def _helper(self, name: str) -> Any:
        def call(*args: Any) -> Any:
            self.helper_calls += 1
            if self.helper_calls > self.limits.max_helper_calls:
                raise ScriptLimitExceeded(f"the script called the engine's helpers more than "
                                          f"{self.limits.max_helper_calls} times, the sandbox's limit")
            if not is_json_value(list(args)):
                raise TypeError(f"{name}() takes data only (strings, numbers, lists, dicts)")
            self.writer.write(encode({"call": name, "args": to_wire(list(args))}))
            answer = decode(self.reader.readline())
            if "error" in answer:
                raise rebuild(answer["error"])
            return from_wire(answer.get("value"))
        call.__name__ = name
        return call


if __name__ == "__main__":
    main()
