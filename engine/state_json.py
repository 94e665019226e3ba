"""A case's engine state as JSON text: written and read with orjson, which does it several times faster than
the standard library, wherever orjson's answer is the standard library's.

The state is SpiffWorkflow's serialization: dicts, lists, strings, numbers, booleans and null, its own types
(datetimes, UUIDs) already turned into dicts by its registry. orjson writes those as json.dumps reads them back
(without spaces, and non-ASCII characters as UTF-8 rather than escaped). What it would write though json.dumps
refuses it is told to refuse where it can (datetimes, dataclasses, subclasses of the built-in types, and any
type it does not know), and it refuses what it cannot write (keys other than strings, as multi-instance
outputs have, and integers past 64 bits): such a state is written by json.dumps, which stores it, or raises as
it always did. Left are enums, UUIDs and non-finite floats, which orjson writes (a NaN as null) and json.dumps
does not: case data cannot hold them (scripts answer over a JSON wire, requests are JSON without NaN, and
engine/restricted.py refuses them in what expressions give).
"""
from __future__ import annotations

import json
from typing import Any

import orjson

_EXACTLY_AS_JSON = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS


def _refuse(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is left to json.dumps")


def state_text(value: Any) -> str:
    """`value` as JSON text; raises TypeError or ValueError as json.dumps does for what JSON cannot hold."""
    try:
        return orjson.dumps(value, default=_refuse, option=_EXACTLY_AS_JSON).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value)


def state_value(text: str) -> Any:
    """The value of a stored state (json.loads for what orjson does not read: NaN in a state written before)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)
