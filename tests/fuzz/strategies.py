"""Hypothesis strategies for JSON shaped like what clients send as case and task data."""
from __future__ import annotations

from hypothesis import strategies as st

# Keys that have tripped JSON tooling before: paths (dots), quoting, escapes, control characters,
# non-BMP text, names that mean something to JavaScript, JSON Schema, the forms or SpiffWorkflow's serializer
# ("typename": it reads any object with that key as one of its own; the engine refuses it, see
# test_engine_bugs.py).
SPECIAL_KEYS = ["", " ", "a.b", "a.b.c", ".", "it's", 'say "hi"', "x'y\"z", "back\\slash", "new\nline", "tab\t",
                "\u0000", "nul\u0000inside", "über", "键", "😀", "\u202e", "$ref", "__class__", "__proto__",
                "constructor", "item", "quantity", "approved", "0", "-1", "null", "true", "data", "typename"]
KEYS = st.one_of(st.text(max_size=12), st.sampled_from(SPECIAL_KEYS))
BIG_INTS = st.sampled_from([2**31, -(2**31) - 1, 2**53 + 1, 2**63, -(2**63) - 1, 2**64, 10**100, -(10**300)])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), BIG_INTS,
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=40))
JSON = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                     st.dictionaries(KEYS, inner, max_size=4)), max_leaves=25)
JSON_OBJECTS = st.dictionaries(KEYS, JSON, max_size=6)


def nested(depth: int) -> dict:
    """An object nested `depth` levels deep (the object itself is level 1)."""
    value: dict = {}
    for _ in range(depth - 1):
        value = {"d": value}
    return value
