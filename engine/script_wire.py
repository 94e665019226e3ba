"""What travels between the server and a sandbox process: case data as JSON lines, checked on the way.

JSON alone would turn the int keys of SpiffWorkflow's multi-instance outputs into strings, so a dict
with any key that is not a string travels as `{"\\u0000items": [[key, value], ...]}`. Everything the
sandbox sends back is parsed as JSON, never unpickled: the sandbox runs code of whoever may deploy.

Before a script's data is encoded it is measured, without copying it: a value that would encode larger
than the case data may be, or nests deeper than it may, is refused and named, so `y = [s] * 100` of a
ten-megabyte string costs nothing to find out.
"""
from __future__ import annotations

import builtins
import json
import math
import re
from typing import Any

from .script_limits import ScriptLimitExceeded

ITEMS = "\u0000items"


class OutputTooLarge(ScriptLimitExceeded):
    """A value a script left (or an expression returned) is too large or too deep to keep."""


def to_wire(value: Any) -> Any:
    """`value` (JSON data, dict keys of any JSON scalar) as plain JSON."""
    if isinstance(value, dict):
        if all(isinstance(key, str) for key in value):
            return {key: to_wire(item) for key, item in value.items()}
        return {ITEMS: [[key, to_wire(item)] for key, item in value.items()]}
    if isinstance(value, (list, tuple)):
        return [to_wire(item) for item in value]
    return value


def from_wire(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {ITEMS} and isinstance(value[ITEMS], list):
            return {_key(pair[0]): from_wire(pair[1]) for pair in value[ITEMS]}
        return {key: from_wire(item) for key, item in value.items()}
    if isinstance(value, list):
        return [from_wire(item) for item in value]
    return value


def _key(key: Any) -> Any:
    if isinstance(key, (list, dict)):
        raise ValueError("a dict key from the sandbox must be a string, number, boolean or null")
    return key


def encode(message: dict) -> bytes:
    return json.dumps(message, allow_nan=False, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> dict:
    message = json.loads(line)
    if not isinstance(message, dict):
        raise ValueError("a sandbox message must be a JSON object")
    return message


def check_size(name: str, value: Any, max_bytes: int, max_depth: int) -> None:
    """Raise OutputTooLarge naming `name` if `value` would encode to more than `max_bytes` of JSON or
    nests deeper than `max_depth`. Iterative and early-stopping: it never builds the encoding, and
    a value shared a hundred times is counted a hundred times, as the encoding would be."""
    total = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > max_depth:
            raise OutputTooLarge(f"'{name}' is nested more than {max_depth} levels deep, deeper than case data "
                                 "may be")
        total += _own_size(item)
        if total > max_bytes:  # checked before the children are stacked: a huge list stops here
            raise OutputTooLarge(f"'{name}' would take more than {max_bytes} bytes as JSON, more than case data "
                                 "may (USM_MAX_CASE_DATA_BYTES)")
        if isinstance(item, dict):
            for key, inner in item.items():
                stack.append((key, depth + 1))
                stack.append((inner, depth + 1))
        elif isinstance(item, (list, tuple)):
            stack.extend((inner, depth + 1) for inner in item)


def _own_size(item: Any) -> int:
    """What `item` adds to the encoding, leaving out its members."""
    if isinstance(item, str):
        return len(item) + 2
    if isinstance(item, (bool, type(None))):
        return 5
    if isinstance(item, (int, float)):
        return _number_size(item)
    if isinstance(item, dict):
        return 2 + 2 * len(item)
    if isinstance(item, (list, tuple)):
        return 2 + len(item)
    return 0


def _number_size(number: int | float) -> int:
    if isinstance(number, float):
        return 24 if math.isfinite(number) else 0
    # An int's decimal length without str(), which is itself slow for a huge int.
    return max(1, int(number.bit_length() * 0.30103) + 2)


def error_of(exc: BaseException, script_file: str) -> dict:
    """An exception a script raised, as the server rebuilds it: its type's name, its message and the
    line of the script it came from (0 when unknown)."""
    line = 0
    traceback = exc.__traceback__
    while traceback is not None:
        if traceback.tb_frame.f_code.co_filename == script_file:
            line = traceback.tb_lineno
        traceback = traceback.tb_next
    message = str(exc.args[0]) if exc.args else ""
    kind = "ScriptLimitExceeded" if isinstance(exc, ScriptLimitExceeded) else type(exc).__name__
    return {"type": kind, "message": message, "line": line, "name": getattr(exc, "name", None)}


_TYPE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,79}")


def rebuild(error: dict) -> Exception:
    """The exception `error_of` described, of the same type where that is one of Python's own (the
    incident then reads `NameError: name 'x' is not defined`, as Python would print it)."""
    name, message = str(error.get("type")), str(error.get("message") or "")
    if name == "ScriptLimitExceeded":
        return ScriptLimitExceeded(message)
    kind = getattr(builtins, name, None)
    if isinstance(kind, type) and issubclass(kind, Exception):
        try:
            exc = kind(message) if message else kind()
        except TypeError:  # e.g. UnicodeDecodeError wants five arguments
            pass
        else:
            if isinstance(exc, NameError) and isinstance(error.get("name"), str):
                exc.name = error["name"]
            return exc
    # A class the script defined itself: a plain Exception under the same name.
    safe_name = name if _TYPE_NAME.fullmatch(name) else "ScriptError"
    return type(safe_name, (Exception,), {})(message)
