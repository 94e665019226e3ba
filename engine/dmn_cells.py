"""DMN cells written in FEEL, as Camunda Modeler's decision table editor writes them, read as the Python
SpiffWorkflow evaluates them. Part of deployment: applied to the parsed table, the stored file stays as
uploaded.

SpiffWorkflow compares a column's input with each cell as Python (`(size) == ("Large")`, or `v < 10` for a
cell that starts with an operator). Four FEEL forms read differently, or not at all, that way:

- `true`, `false`, `null` (a boolean column's entries): Python knows no such names, so a case reaching the
  decision failed with "name 'true' is not defined" though the deployment had read the table;
- `"a","b"` (one of several values): Python compares the input with a tuple, which never holds, so the rule
  silently never matched;
- `[1..5]`, `(1..5]`, `[1..5)`, `(1..5)` (a range): not Python at all;
- `not("a")`, `not("a","b")` (none of these values): Python negates the value itself.

Each becomes its Python reading (`True`; ` in ("a", "b")`; `1 <= ? <= 5`, SpiffWorkflow's `?` being the
input; ` not in ("a",)`). A cell in any other form is left as written: `< 10` and `"Large"` already read
the same in both.
"""
from __future__ import annotations

import ast
import re

from lxml import etree

_LITERALS = {"true": "True", "false": "False", "null": "None"}
_RANGE = re.compile(r"([\[(\]])\s*(.+?)\s*\.\.\s*(.+?)\s*([\])\[])")
_NOT = re.compile(r"not\s*\((.*)\)", re.DOTALL)


def feel_cells_as_python(tree: etree._ElementTree) -> None:
    """Rewrite, in place, the input and output entries of the DMN tree's tables that are in one of the FEEL
    forms above."""
    for cell in tree.iter("{*}inputEntry", "{*}outputEntry"):
        text = cell.find("{*}text")
        if text is not None and text.text:
            python = as_python(text.text.strip(), output=etree.QName(cell).localname == "outputEntry")
            if python is not None:
                text.text = python


def as_python(cell: str, output: bool = False) -> str | None:
    """The Python reading of a FEEL cell in one of the forms above; None when it is in none of them. An
    output cell only ever holds a value, so only its literals are read."""
    if cell in _LITERALS:
        return _LITERALS[cell]
    if output:
        return None
    values = _values(cell)
    if values is not None and len(values) > 1:
        return f" in ({', '.join(values)})"  # SpiffWorkflow appends a cell that starts with an operator as is
    negated = _NOT.fullmatch(cell)
    if negated:
        inner = _values(negated.group(1).strip())
        return f" not in ({', '.join(inner)},)" if inner else None
    bounds = _RANGE.fullmatch(cell)
    ends = [end for end in (_values(bounds.group(2)), _values(bounds.group(3))) if end and len(end) == 1] \
        if bounds else []
    if bounds and len(ends) == 2:
        low = "<=" if bounds.group(1) == "[" else "<"
        high = "<=" if bounds.group(4) == "]" else "<"
        return f"{ends[0][0]} {low} ? {high} {ends[1][0]}"
    return None


def _values(text: str) -> list[str] | None:
    """The literals of a comma-separated list of FEEL literals (texts, numbers, true/false/null) as Python
    source; None when it is anything else."""
    try:
        node = ast.parse(f"({text},)", mode="eval").body
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None
    if not isinstance(node, ast.Tuple):
        return None
    found = []
    for item in node.elts:
        if isinstance(item, ast.Name) and item.id in _LITERALS:
            found.append(_LITERALS[item.id])
        elif isinstance(item, ast.Constant) and isinstance(item.value, (str, int, float)):
            found.append(repr(item.value))
        elif isinstance(item, ast.UnaryOp) and isinstance(item.op, ast.USub) \
                and isinstance(item.operand, ast.Constant) and isinstance(item.operand.value, (int, float)):
            found.append(repr(-item.operand.value))
        else:
            return None
    return found
