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
an incident and the thread goes on serving other requests.
"""
from __future__ import annotations

import ast
import os
import re
import sys
import time
from dataclasses import dataclass

from RestrictedPython.transformer import RestrictingNodeTransformer

SCRIPT_FILENAME = "<string>"


class ScriptLimitExceeded(Exception):
    """A script ran too long, used too much memory, or tried to build a value that is too large."""


@dataclass(frozen=True)
class ScriptLimits:
    seconds: float = float(os.environ.get("USM_SCRIPT_TIME_LIMIT", "2"))
    memory_bytes: int = int(os.environ.get("USM_SCRIPT_MEMORY_LIMIT_MB", "256")) * 1024 * 1024
    max_items: int = int(os.environ.get("USM_SCRIPT_MAX_ITEMS", "10000000"))  # chars, list items, ints' bits/4


LIMITS = ScriptLimits()

# --- one-step allocations ---------------------------------------------------------------------------

_SIZED = (str, bytes, list, tuple)


def _too_large(what: str) -> ScriptLimitExceeded:
    return ScriptLimitExceeded(f"{what} would exceed the sandbox's size limit of {LIMITS.max_items} items")


def guarded_mul(left, right):
    for sequence, count in ((left, right), (right, left)):
        if isinstance(sequence, _SIZED) and isinstance(count, int) and len(sequence) * count > LIMITS.max_items:
            raise _too_large("repeating a sequence")
    return left * right


def guarded_pow(base, exponent):
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        if base.bit_length() * exponent > LIMITS.max_items * 4:
            raise _too_large("this power")
    return base ** exponent


def guarded_lshift(value, shift):
    if isinstance(value, int) and isinstance(shift, int) and shift > LIMITS.max_items * 4:
        raise _too_large("this shift")
    return value << shift


_WIDTH = re.compile(r"\d+")


def guarded_format(value, spec: str = "", conversion: int = -1):
    if any(int(number) > LIMITS.max_items for number in _WIDTH.findall(spec or "")):
        raise _too_large("this format width")
    if conversion == ord("r"):
        value = repr(value)
    elif conversion == ord("s"):
        value = str(value)
    elif conversion == ord("a"):
        value = ascii(value)
    return format(value, spec or "")


def bounded_range(*args):
    result = range(*args)
    if len(result) > LIMITS.max_items:
        raise _too_large("this range")
    return result


# str/bytes methods whose output size is set by an argument, not by the input.
_PADDING = {"ljust", "rjust", "center", "zfill", "expandtabs"}


def bound_method(obj, name: str, method):
    if isinstance(obj, (str, bytes)) and name in _PADDING:
        def padded(*args, **kwargs):
            width = args[0] if args else kwargs.get("width", kwargs.get("tabsize", 0))
            factor = obj.count("\t" if isinstance(obj, str) else b"\t") + 1 if name == "expandtabs" else 1
            if isinstance(width, int) and width * factor > LIMITS.max_items:
                raise _too_large(f"{name}()")
            return method(*args, **kwargs)
        return padded
    if isinstance(obj, (str, bytes)) and name == "replace":
        def replace(old, new, *rest):
            if len(new) > len(old) and (len(obj) + 1) * max(len(new), 1) > LIMITS.max_items:
                raise _too_large("replace()")
            return method(old, new, *rest)
        return replace
    return method


class LimitingTransformer(RestrictingNodeTransformer):
    """RestrictedPython's policy plus rewrites of the operators that can allocate without bound."""

    _OPERATORS = {ast.Mult: "_mul_", ast.Pow: "_pow_", ast.LShift: "_lshift_"}

    def visit_BinOp(self, node):
        node = super().visit_BinOp(node)
        guard = self._OPERATORS.get(type(node.op)) if isinstance(node, ast.BinOp) else None
        if guard is None:
            return node
        call = ast.Call(func=ast.Name(id=guard, ctx=ast.Load()), args=[node.left, node.right], keywords=[])
        return ast.fix_missing_locations(ast.copy_location(call, node))

    def visit_FormattedValue(self, node):
        node = super().visit_FormattedValue(node)
        spec = node.format_spec if node.format_spec is not None else ast.Constant(value="")
        call = ast.Call(func=ast.Name(id="_format_", ctx=ast.Load()),
                        args=[node.value, spec, ast.Constant(value=node.conversion)], keywords=[])
        replacement = ast.FormattedValue(value=call, conversion=-1, format_spec=None)
        return ast.fix_missing_locations(ast.copy_location(replacement, node))


GUARD_FUNCTIONS = {"_mul_": guarded_mul, "_pow_": guarded_pow, "_lshift_": guarded_lshift,
                   "_format_": guarded_format}

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


def run_limited(function, *args):
    """Call `function` with a deadline and a memory budget enforced on this thread's script frames."""
    deadline = time.monotonic() + LIMITS.seconds
    baseline = _resident_bytes()
    counter = 0

    def on_line(frame, event, arg):
        nonlocal counter
        counter += 1
        if counter % _CHECK_EVERY == 0:
            if time.monotonic() > deadline:
                raise ScriptLimitExceeded(f"the script ran longer than the sandbox's limit of {LIMITS.seconds:g} s")
            if _resident_bytes() - baseline > LIMITS.memory_bytes:
                raise ScriptLimitExceeded(f"the script used more than the sandbox's memory limit of "
                                          f"{LIMITS.memory_bytes // (1024 * 1024)} MB")
        return on_line

    def on_call(frame, event, arg):
        # Only the script's own frames are traced: library code runs at full speed. Opcode events too,
        # because a loop on one line (`while True: pass`, a comprehension) produces no line events.
        if frame.f_code.co_filename != SCRIPT_FILENAME:
            return None
        frame.f_trace_opcodes = True
        return on_line

    previous = sys.gettrace()
    sys.settrace(on_call)
    try:
        return function(*args)
    finally:
        sys.settrace(previous)
