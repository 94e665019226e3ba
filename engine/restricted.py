"""What a script may use and how it is compiled: RestrictedPython's policy with the engine's own guards.

Shared by the two places scripts run: plain expressions in the server's process (sandbox.py) and
everything else in a sandbox process (script_process.py). Nothing here imports SpiffWorkflow, so a
sandbox process starts quickly.
"""
from __future__ import annotations

import builtins
import datetime as dt
import functools
import logging
import math
import operator
import random
import re
import string
import time
from collections.abc import Sequence
from types import CodeType
from typing import Any, Self

from RestrictedPython import (
    compile_restricted_eval,
    compile_restricted_exec,
    limited_builtins,
    safe_builtins,
    utility_builtins,
)
from RestrictedPython.Eval import default_guarded_getitem, default_guarded_getiter
from RestrictedPython.Guards import (
    full_write_guard,
    guarded_iter_unpack_sequence,
    guarded_unpack_sequence,
    safer_getattr,
)
from RestrictedPython.PrintCollector import PrintCollector

from .script_limits import SCRIPT_FILENAME, LimitingTransformer, SizeGuards
from .settings import ScriptLimits

log = logging.getLogger(__name__)

# The same few conditions and scripts run on every request; compiling (parse + AST rewrite +
# compile) costs far more than running them.
COMPILE_CACHE_SIZE = 1024


class ScriptModule:
    """A module as a script sees it: its public names, and a repr that names no file of the machine."""

    def __init__(self, name: str, names: dict[str, Any]):
        self.__dict__.update(names)
        self.__name = name

    def __repr__(self) -> str:
        return f"<module '{self.__name}'>"


class ScriptFunction:
    """A module's function as a script sees it: callable, with a repr that shows no memory address."""

    __slots__ = ("__function", "__label")

    def __init__(self, label: str, function: Any):
        self.__function = function
        self.__label = label

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.__function(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<function {self.__label}>"


def _public(source: Any, module: str) -> dict[str, Any]:
    names = {}
    for name in dir(source):
        if name.startswith("_"):
            continue
        value = getattr(source, name)
        # Bound methods and Python functions print their address; classes and C functions do not.
        is_plain_function = callable(value) and not isinstance(value, type) and "0x" in repr(value)
        names[name] = ScriptFunction(f"{module}.{name}", value) if is_plain_function else value
    return names


_MATH = ScriptModule("math", _public(math, "math"))
_STRING = ScriptModule("string", _public(string, "string"))


# What SpiffWorkflow's own platform (spiff-arena) gives scripts for dates and times, under the same names,
# so its models run here: the classes of `datetime` (pure values; `datetime.now()` reads the machine's
# clock), and of `time` only what reads a clock. `time.sleep` is left out: a script that waits holds a
# server thread, and the engine has timers for waiting.
class _DateTime(dt.datetime):
    """datetime, whose strptime imports its parser here: called from a script, the import would look for
    __import__ among the script's builtins, which have none."""

    @classmethod
    def strptime(cls, date_string: str, format: str) -> Self:
        return cls.combine(*_parsed(date_string, format))


def _parsed(date_string: str, format: str) -> tuple[dt.date, dt.time]:
    value = dt.datetime.strptime(date_string, format)
    return value.date(), value.timetz()


_DateTime.__name__ = _DateTime.__qualname__ = "datetime"
_DateTime.__module__ = "datetime"
_DATES = {"datetime": _DateTime, "date": dt.date, "timedelta": dt.timedelta, "timezone": dt.timezone}


def _no_sleep(*_args: Any) -> None:
    raise RuntimeError("time.sleep is not available to scripts: a waiting script holds a server thread; "
                       "wait with a timer event instead")


_TIME = ScriptModule("time", {"time": ScriptFunction("time.time", time.time),
                              "monotonic": ScriptFunction("time.monotonic", time.monotonic),
                              "sleep": ScriptFunction("time.sleep", _no_sleep)})


def script_globals() -> dict[str, Any]:
    """The date and time names as spiff-arena gives them: globals of the script, which a script may
    delete (`del time`, as its models do). Builtins too, for expressions."""
    return {"time": _TIME, **_DATES}


def script_modules() -> dict[str, Any]:
    """The modules scripts may use, made for one run: its `random` is a generator of its own, so a
    script seeding it (`random.seed(1)`) cannot make another case's numbers predictable."""
    generator = random.Random()
    own_random = ScriptModule("random", {**_public(generator, "random"), "Random": random.Random})
    return {"math": _MATH, "string": _STRING, "random": own_random, "whrandom": own_random, "time": _TIME,
            **_DATES}


_INPLACE_OPERATORS = {
    "+=": operator.iadd,
    "-=": operator.isub,
    "*=": operator.imul,
    "/=": operator.itruediv,
    "//=": operator.ifloordiv,
    "%=": operator.imod,
    "**=": operator.ipow,
    "@=": operator.imatmul,
    "<<=": operator.ilshift,
    ">>=": operator.irshift,
    "&=": operator.iand,
    "^=": operator.ixor,
    "|=": operator.ior,
}


# RestrictedPython's safe builtins lack much of what everyday data-shuffling scripts use
# (enumerate, sorted, dict, ...); these are harmless because they only work on values the
# script can already reach.
_PLAIN_BUILTINS = (
    "dict", "list", "set", "tuple", "enumerate", "sum", "min", "max", "any", "all", "map",
    "filter", "reversed", "sorted", "len", "range", "zip", "abs", "round", "str", "int",
    "float", "bool", "isinstance",
)

# A script that can raise these would bypass PythonScriptEngine's `except Exception` and take
# down the worker thread or process instead of failing its task.
_PROCESS_EXIT_EXCEPTIONS = ("BaseException", "SystemExit", "KeyboardInterrupt", "GeneratorExit")

# Each of these hands out objects or namespaces that the guards cannot police. Checked at import
# time so that a RestrictedPython upgrade cannot quietly add one back.
_FORBIDDEN_BUILTINS = frozenset({
    "type", "getattr", "eval", "exec", "compile", "open", "__import__", "globals", "locals",
    "vars", "dir", "input", "breakpoint", "help", "memoryview", "object", "super",
    "__metaclass__", "id",
})

# id() tells memory addresses, which no script needs; the modules are replaced (script_modules()).
_REMOVED_BUILTINS = ("id", "math", "random", "whrandom", "string")


def _build_builtins() -> dict[str, Any]:
    names: dict[str, Any] = {}
    names.update(safe_builtins)
    names.update(limited_builtins)
    names.update(utility_builtins)
    for name in _PLAIN_BUILTINS:
        names[name] = getattr(builtins, name)
    for name in (*_PROCESS_EXIT_EXCEPTIONS, *_REMOVED_BUILTINS):
        names.pop(name, None)
    leaked = _FORBIDDEN_BUILTINS.intersection(names)
    if leaked:
        raise RuntimeError(f"sandbox builtins would expose {sorted(leaked)}")
    return names


_BUILTINS = _build_builtins()


_MISSING = object()


def guards(limits: ScriptLimits) -> dict[str, Any]:
    """The names RestrictedPython's rewritten code calls. They must always win over task data and
    caller-supplied globals: replacing one would switch a guard off."""
    sizes = SizeGuards(limits.max_items)
    sized_inplace = {"*=": sizes.mul, "**=": sizes.pow, "<<=": sizes.lshift}

    def inplacevar(op: str, target: Any, value: Any) -> Any:
        # RestrictedPython rewrites `name += value` into a call to this guard.
        return (sized_inplace.get(op) or _INPLACE_OPERATORS[op])(target, value)

    def guarded_getattr(obj: Any, name: str, *default: Any) -> Any:
        # Case data is JSON: a script may read an object's field as `order.size` as well as `order["size"]`
        # (SpiffWorkflow's earlier task data and spiff-arena's models do); a dict's own methods come first.
        if isinstance(obj, dict) and name in obj and not hasattr(dict, name) and not name.startswith("_"):
            return obj[name]
        # RestrictedPython answers None for an attribute that does not exist; a typo would then read as None.
        value = safer_getattr(obj, name, *(default or (_MISSING,)))
        if value is _MISSING:
            raise AttributeError(f"'{type(obj).__name__}' object has no attribute '{name}'" +
                                 ("" if not isinstance(obj, dict) else f" (and no field '{name}')"))
        return sizes.bound_method(obj, name, value)

    return {
        # range(10**12) fed to sum() would run in C, out of the time limit's reach.
        "__builtins__": {**_BUILTINS, **script_modules(), "range": sizes.range},
        "_getattr_": guarded_getattr,
        "_getitem_": default_guarded_getitem,
        "_getiter_": default_guarded_getiter,
        "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
        "_unpack_sequence_": guarded_unpack_sequence,
        "_write_": full_write_guard,
        "_inplacevar_": inplacevar,
        # Without it any script calling print() fails with a puzzling NameError; the output is
        # collected and discarded.
        "_print_": PrintCollector,
        # Operators that can build a huge value in one C call are size-checked first (script_limits.py).
        **sizes.operators(),
    }


_LINE_RE = re.compile(r"Line (\d+)")


def _syntax_error(errors: Sequence[str], source: str) -> SyntaxError:
    # RestrictedPython reports problems as a tuple of "Line N: ..." strings with lineno=None.
    # PythonScriptEngine compares lineno with 0 and concatenates args[0] to a str, so both must
    # be proper values or the real error is hidden behind a TypeError.
    message = "; ".join(str(e) for e in errors) or "invalid script"
    match = _LINE_RE.search(message)
    lines = source.splitlines() if isinstance(source, str) else []
    lineno = int(match.group(1)) if match else 1
    # Python may point one past the last line (e.g. a missing block); SpiffWorkflow indexes the
    # source with it.
    lineno = max(1, min(lineno, len(lines))) if lines else 1
    text = lines[lineno - 1] if lines else ""
    return SyntaxError(message, (SCRIPT_FILENAME, lineno, None, text))


@functools.lru_cache(maxsize=COMPILE_CACHE_SIZE)
def compile_script(source: str, mode: str) -> CodeType:
    # compile_restricted_* rather than compile_restricted: the latter reports RestrictedPython's
    # warnings through warnings.warn (noisy, and an error under `-W error`).
    compiler = compile_restricted_exec if mode == "exec" else compile_restricted_eval
    result = compiler(source, filename=SCRIPT_FILENAME, policy=LimitingTransformer)
    if result.errors or result.code is None:
        raise _syntax_error(result.errors, source)
    return result.code


_JSON_SCALARS = (str, int, float, bool, type(None))
# json.dumps accepts (and stringifies) these as keys; Spiff's multi-instance dict outputs use
# int keys, so rejecting them would delete legitimate data.
_JSON_KEYS = _JSON_SCALARS


def is_json_value(value: Any) -> bool:
    """True if `value` is JSON data: None, bool, int, finite float, str, or lists/dicts of those.

    Tuples, sets, bytes, dates and every other object are not. NaN and infinity are not either:
    json.dumps writes them, but they are not JSON and PostgreSQL's jsonb rejects them. Iterative, so
    deep nesting cannot exhaust the stack, and a self-containing list or dict is rejected instead
    of looping.
    """
    on_path: set[int] = set()  # containers being checked: meeting one again means a cycle
    checked: set[int] = set()  # containers already known good (shared references are fine)
    stack: list[tuple[Any, bool]] = [(value, False)]
    while stack:
        item, leaving = stack.pop()
        if leaving:
            on_path.discard(id(item))
            checked.add(id(item))
            continue
        if isinstance(item, float) and not math.isfinite(item):
            return False
        if isinstance(item, _JSON_SCALARS):
            continue
        if not isinstance(item, (list, dict)):
            return False
        key = id(item)
        if key in checked:
            continue
        if key in on_path:
            return False
        on_path.add(key)
        stack.append((item, True))
        if isinstance(item, dict):
            if not all(isinstance(k, _JSON_KEYS) for k in item):
                return False
            stack.extend((v, False) for v in item.values())
        else:
            stack.extend((v, False) for v in item)
    return True


def drop_non_json(context: dict) -> None:
    for name in list(context):
        if not is_json_value(context[name]):
            log.debug("dropping non-JSON value %r (%s) from task data", name, type(context[name]).__name__)
            del context[name]


def ensure_str_message(err: BaseException) -> None:
    # PythonScriptEngine builds its message with `name + ":" + err.args[0]`; an everyday
    # `KeyError(0)` from `d[0]` would turn into a TypeError there and lose the task and line.
    if err.args and not isinstance(err.args[0], str):
        err.args = (str(err.args[0]), *err.args[1:])
