"""The limits case data must keep: how deeply it nests, a field name it may not use, and its size.

Checked on the data a client sends before anything runs, and on the data a case would store before it
is written; the API layer also uses the nesting check on whole request bodies.
"""
from __future__ import annotations

import json
from typing import Any

from .errors import InvalidInput, TooLarge

MAX_DATA_DEPTH = 100
SERIALIZER_MARKER = "typename"  # SpiffWorkflow's serializer reads an object with this key as one of its own


def marker_path(value: Any) -> str | None:
    """Where in the data an object uses SpiffWorkflow's serializer marker, if anywhere."""
    stack = [(value, "data")]
    while stack:
        current, path = stack.pop()
        if isinstance(current, dict):
            if SERIALIZER_MARKER in current:
                return f"{path}.{SERIALIZER_MARKER}"
            stack.extend((child, f"{path}.{key}") for key, child in current.items())
        elif isinstance(current, list):
            stack.extend((child, f"{path}[{index}]") for index, child in enumerate(current))
    return None


def nesting_depth(value: Any) -> int:
    """How deeply lists and objects nest, measured without recursion (the input is untrusted)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        current, depth = stack.pop()
        if isinstance(current, (dict, list)):
            deepest = max(deepest, depth)
            if depth > MAX_DATA_DEPTH:
                return depth
            children = current.values() if isinstance(current, dict) else current
            stack.extend((child, depth + 1) for child in children)
    return deepest


def check_incoming_data(data: dict, max_bytes: int) -> None:
    """Data a client sends to a case: refused before anything runs."""
    depth = nesting_depth(data)
    if depth > MAX_DATA_DEPTH:
        # SpiffWorkflow's serializer recurses per level: deeper data would be stored but never load again.
        raise InvalidInput(f"the data is nested {depth} levels deep; the limit is {MAX_DATA_DEPTH}",
                           [{"field": "data", "message": f"nested deeper than {MAX_DATA_DEPTH} levels"}])
    marked = marker_path(data)
    if marked:
        # Stored, such an object would be taken for a serialized object when the case is loaded again.
        raise InvalidInput(f"'{SERIALIZER_MARKER}' is a reserved field name in case data ({marked}); rename it",
                           [{"field": marked, "message": f"'{SERIALIZER_MARKER}' is reserved"}])
    size = len(json.dumps(data))
    if size > max_bytes:
        raise TooLarge(f"the data is {size} bytes; the limit per case is {max_bytes}")


def check_stored_data_size(data_json: str, max_bytes: int) -> None:
    """The data a case would store after a command, as JSON: too large, and the command saves nothing."""
    if len(data_json) > max_bytes:
        raise TooLarge(f"the case data would be {len(data_json)} bytes; the limit per case is {max_bytes}; "
                       "nothing was saved")
