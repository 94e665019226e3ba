"""Responses written by orjson (api/json_responses.py) read as Flask's own provider's would."""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from flask.json.provider import DefaultJSONProvider


@dataclass
class _Point:
    x: int


def test_a_response_reads_as_flasks_own_would(app):
    document = {"é": "ünï 🙂", "when": datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc), "id": uuid.UUID(int=7),
                "point": _Point(3), "nested": [1, 2.5, None, True, {"b": 1, "a": 2}], "big": 2**70}
    with app.app_context():
        ours = app.json.response(document)
        flasks = DefaultJSONProvider(app)
        flasks.sort_keys = False
        theirs = flasks.response(document)
    assert ours.mimetype == theirs.mimetype == "application/json"
    assert json.loads(ours.get_data()) == json.loads(theirs.get_data())
    assert list(json.loads(ours.get_data())["nested"][4]) == ["b", "a"]  # keys in the order given


def test_characters_beyond_ascii_are_sent_as_utf8(app):
    with app.app_context():
        body = app.json.response({"name": "Zoë"}).get_data()
    assert body == '{"name":"Zoë"}\n'.encode()
