"""Time and memory limits for sandboxed scripts that work inside any thread.

A SIGALRM only reaches the main thread, and the server runs scripts in worker threads. So:

* time: while a script or expression runs, a trace function on *its own thread* (sys.settrace is per
  thread) checks the clock every few bytecode steps and raises ScriptLimitExceeded past the deadline — a
  `while True: pass` ends there;
* memory: the same check watches the process's resident memory and stops a script whose run grew it
  past the limit; and because one C-level operation (`'x' * 10**10`) allocates before any line event,
  the operations that can build huge values in a single step (`*`, `**`, `<<`, `range`, padding
  methods such as str.ljust, format widths) are rewritten into guards that refuse results above a size
  limit before computing them.

Exceeding a limit is an ordinary exception, so SpiffWorkflow turns it into a failed task: the case gets
an incident and the thread goes on serving other requests. The limits themselves (ScriptLimits, in
engine/settings.py) are given to each script engine when it is made.
"""
from __future__ import annotations

import ast
import os
import re
import sys
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from RestrictedPython.transformer import RestrictingNodeTransformer

from .settings import ScriptLimits

# PythonScriptEngine finds the failing line of a script by looking for this file name in the
# traceback, so compiled code must carry exactly this name; the time limit traces only its frames.
SCRIPT_FILENAME = "<string>"


class ScriptLimitExceeded(Exception):
    """A script ran too long, used too much memory, or tried to build a value that is too large."""


# --- one-step allocations ---------------------------------------------------------------------------

_SIZED = (str, bytes, list, tuple)
_WIDTH = re.compile(r"\d+")
# str/bytes methods whose output size is set by an argument, not by the input.
_PADDING = {"ljust", "rjust", "center", "zfill", "expandtabs"}


class SizeGuards:
    """The operations that can build a huge value in one step, refusing results above `max_items`."""

    def __init__(self, max_items: int):
        self.max_items = max_items

    def _too_large(self, what: str) -> ScriptLimitExceeded:
        return ScriptLimitExceeded(f"{what} would exceed the sandbox's size limit of {self.max_items} items")

    def mul(self, left: Any, right: Any) -> Any:
        for sequence, count in ((left, right), (right, left)):
            if isinstance(sequence, _SIZED) and isinstance(count, int) and len(sequence) * count > self.max_items:
                raise self._too_large("repeating a sequence")
        return left * right

    def pow(self, base: Any, exponent: Any) -> Any:
        if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
            if base.bit_length() * exponent > self.max_items * 4:
                raise self._too_large("this power")
        return base ** exponent

    def lshift(self, value: Any, shift: Any) -> Any:
        if isinstance(value, int) and isinstance(shift, int) and shift > self.max_items * 4:
            raise self._too_large("this shift")
        return value << shift

    def format(self, value: Any, spec: str = "", conversion: int = -1) -> str:
        if any(int(number) > self.max_items for number in _WIDTH.findall(spec or "")):
            raise self._too_large("this format width")
        if conversion == ord("r"):
            value = repr(value)
        elif conversion == ord("s"):
            value = str(value)
        elif conversion == ord("a"):
            value = ascii(value)
        return format(value, spec or "")

    def range(self, *args: int) -> range:
        result = range(*args)
        if len(result) > self.max_items:
            raise self._too_large("this range")
        return result

    def bound_method(self, obj: Any, name: str, method: Any) -> Any:
        """`method` (obj.name), wrapped when it is a str/bytes method whose result size an argument sets."""
        if isinstance(obj, (str, bytes)) and name in _PADDING:
            def padded(*args: Any, **kwargs: Any) -> Any:
                width = args[0] if args else kwargs.get("width", kwargs.get("tabsize", 0))
                tabs = obj.count("\t") if isinstance(obj, str) else obj.count(b"\t")
                factor = tabs + 1 if name == "expandtabs" else 1
                if isinstance(width, int) and width * factor > self.max_items:
                    raise self._too_large(f"{name}()")
                return method(*args, **kwargs)
            return padded
        if isinstance(obj, (str, bytes)) and name == "replace":
            def replace(old: Any, new: Any, *rest: Any) -> Any:
                if len(new) > len(old) and (len(obj) + 1) * max(len(new), 1) > self.max_items:
                    raise self._too_large("replace()")
                return method(old, new, *rest)
            return replace
        return method

    def operators(self) -> dict[str, Callable[..., Any]]:
        """The names LimitingTransformer's rewritten code calls."""
        return {"_mul_": self.mul, "_pow_": self.pow, "_lshift_": self.lshift, "_format_": self.format}


class LimitingTransformer(RestrictingNodeTransformer):
    """RestrictedPython's policy plus rewrites of the operators that can allocate without bound."""

    _OPERATORS: dict[type[ast.operator], str] = {ast.Mult: "_mul_", ast.Pow: "_pow_", ast.LShift: "_lshift_"}

    def visit_BinOp(self, node: ast.BinOp) -> Any:
        visited = super().visit_BinOp(node)
        if not isinstance(visited, ast.BinOp) or type(visited.op) not in self._OPERATORS:
            return visited
        call = ast.Call(func=ast.Name(id=self._OPERATORS[type(visited.op)], ctx=ast.Load()),
                        args=[visited.left, visited.right], keywords=[])
        return ast.fix_missing_locations(ast.copy_location(call, visited))

    def visit_FormattedValue(self, node: ast.FormattedValue) -> Any:
        visited = super().visit_FormattedValue(node)
        if not isinstance(visited, ast.FormattedValue):
            return visited
        spec = visited.format_spec if visited.format_spec is not None else ast.Constant(value="")
        call = ast.Call(func=ast.Name(id="_format_", ctx=ast.Load()),
                        args=[visited.value, spec, ast.Constant(value=visited.conversion)], keywords=[])
        replacement = ast.FormattedValue(value=call, conversion=-1, format_spec=None)
        return ast.fix_missing_locations(ast.copy_location(replacement, visited))


# --- time and memory while running ----------------------------------------------------------------

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _resident_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


_CHECK_EVERY = 64  # trace events between clock/memory checks: cheap, and one step's allocation is bounded


def run_limited(limits: ScriptLimits, function: Callable[..., Any], *args: Any) -> Any:
    """Call `function` with a deadline and a memory budget enforced on this thread's script frames."""
    deadline = time.monotonic() + limits.seconds
    baseline = _resident_bytes()
    counter = 0
    stopped: list[ScriptLimitExceeded] = []  # what the trace raised, in case the script swallowed it

    def on_line(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal counter
        counter += 1
        if counter % _CHECK_EVERY == 0:
            if time.monotonic() > deadline:
                stopped.append(ScriptLimitExceeded(
                    f"the script ran longer than the sandbox's limit of {limits.seconds:g} s"))
                raise stopped[-1]
            if _resident_bytes() - baseline > limits.memory_bytes:
                stopped.append(ScriptLimitExceeded(f"the script used more than the sandbox's memory limit of "
                                                   f"{limits.memory_bytes // (1024 * 1024)} MB"))
                raise stopped[-1]
        return on_line

    def on_call(frame: FrameType, event: str, arg: Any) -> Any:
        # Only the script's own frames are traced: library code runs at full speed. Opcode events too,
        # because a loop on one line (`while True: pass`, a comprehension) produces no line events.
        if frame.f_code.co_filename != SCRIPT_FILENAME:
            return None
        frame.f_trace_opcodes = True
        return on_line

    previous = sys.gettrace()
    sys.settrace(on_call)
    try:
        result = function(*args)
    finally:
        sys.settrace(previous)
    if stopped:
        # A limit raised where Python ignores exceptions (a generator's `finally` run as it is collected
        # only prints "Exception ignored"), so the script went on: it still overran.
        raise stopped[0]
    return result
