"""Expressions cheap enough to evaluate in the server's own process.

A gateway condition such as `approved == True` or `priority in ('P1', 'P2')` runs on nearly every step;
sending it to a sandbox process would cost more than the step. An expression made only of names,
literals, comparisons, boolean operators and subscripts by a name or literal cannot call anything,
build anything larger than the data it reads, or loop: it ends in time linear in the case data, which is
bounded. Everything else (calls, arithmetic, comprehensions, slices, attributes) runs in a sandbox
process (script_process.py).
"""
from __future__ import annotations

import ast
import functools

_PLAIN_NODES = (
    ast.Expression, ast.Name, ast.Load, ast.Constant,
    ast.Compare, ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn, ast.Is, ast.IsNot,
    ast.BoolOp, ast.And, ast.Or,
    ast.UnaryOp, ast.Not, ast.USub, ast.UAdd,
    ast.Tuple, ast.List, ast.Set,
)


@functools.lru_cache(maxsize=4096)
def is_plain(expression: str) -> bool:
    """True if `expression` (already stripped) is made only of the nodes above, with subscripts whose
    index is a name or a literal."""
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError:
        return False  # the sandbox compiles it again and reports the error as usual
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript):
            if not isinstance(node.slice, (ast.Name, ast.Constant)):
                return False
            continue
        if isinstance(node, ast.Name) and node.id.startswith("_"):
            return False  # RestrictedPython refuses these; let it say so, in the usual place
        if not isinstance(node, _PLAIN_NODES):
            return False
    return True
