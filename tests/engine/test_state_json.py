"""The case state is written with orjson where it writes what json.dumps would, and by json.dumps otherwise
(engine/state_json.py): what is stored reads back as the same value, and what JSON cannot hold is refused as
before, so that the save's own fallback (drop the value, raise an incident) still sees it."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime

import pytest

from usm_engine.engine.state_json import state_text, state_value


class Text(str):
    pass


@dataclass
class Point:
    x: int


@pytest.mark.parametrize("value", [
    {"tasks": {"a": {"data": {"n": 1, "x": 1.5, "ok": True, "none": None, "list": [1, "two", [3]]}}}},
    {"name": "Zoë — ☎ \u2028 \"quoted\" \\ back"},
    {"outputs": {0: "first", 1: "second"}},  # a multi-instance output: int keys, which orjson refuses
    {"big": 2 ** 80, "small": -(2 ** 70)},  # past 64 bits: orjson refuses, json.dumps writes them
    {"sub": Text("a str subclass")},
    {"tuple": (1, 2)},
])
def test_what_is_stored_reads_back_as_json_would_read_it(value):
    assert state_value(state_text(value)) == json.loads(json.dumps(value))


@pytest.mark.parametrize("value", [{"when": datetime(2026, 1, 2)}, {"day": date(2026, 1, 2)}, {"p": Point(1)},
                                   {"set": {1, 2}}, {"bytes": b"x"}, {"self": object()}])
def test_what_json_dumps_refuses_is_refused(value):
    with pytest.raises(TypeError):
        json.dumps(value)
    with pytest.raises(TypeError):
        state_text(value)


def test_a_state_written_by_json_dumps_before_still_reads():
    written_before = json.dumps({"data": {"odd": float("inf"), "name": "Zoë"}})  # json.dumps wrote Infinity
    assert state_value(written_before) == {"data": {"odd": float("inf"), "name": "Zoë"}}
