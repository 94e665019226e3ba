"""What Python expressions and scripts read and set, and what their uses say of each name's type.

The analysis behind a version's start inputs (start_inputs.py): pure functions over Python's own parse
tree, no engine state. Types come from use only:

- compared with a number, ordered against another name, or in arithmetic with a number → a number;
- compared with strings (`==`, `!=`, `in [...]`) → one of those strings;
- compared with True/False, or used as a truth value (`approved`, `not approved`, `if a and b:`) → a boolean;
- iterated (`for x in items`, `any(... for x in items)`) → a list, its items typed by their own uses;
- an item read (`request["size"]`) → an object with that key; parsed as a date → a date text.

A name whose use says nothing of its type is read but not typed. Names that are called are functions,
and Python's builtins and what the sandbox gives every script are nobody's data.
"""
from __future__ import annotations

import ast
import builtins
import functools
from typing import Any

from .restricted import script_globals, script_modules

_ORDER = (ast.Lt, ast.Gt, ast.LtE, ast.GtE)
_EQUALITY = (ast.Eq, ast.NotEq, ast.Is, ast.IsNot)

# Names every script and expression has (Python's builtins such as NameError or str, and the date, time and
# other modules the sandbox gives): not data anybody sets.
_GIVEN = frozenset(dir(builtins)) | frozenset(script_globals()) | frozenset(script_modules())


def typed_reads(source: str, mode: str = "eval") -> dict[str, dict | None]:
    """{name: JSON Schema of the name's type, or None when its use does not say} of the plain names a
    Python expression (mode "eval") or script ("exec") reads; functions it calls and names bound inside it
    (a comprehension's or lambda's variables) left out. The schemas are shared: read them, do not change
    them."""
    return dict(_typed_reads(source, mode))


def value_reads(expression: str, schema: dict | None) -> dict[str, dict | None]:
    """typed_reads of an expression whose value is used as `schema` says, not as a truth (a decision table's
    input column: `request["size"]` read by a column of texts makes request an object with that text)."""
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return {}
    uses = _Uses(tree, as_truth=False)
    if schema is not None:
        uses.note(tree.body, schema)
    return {name: found for name, found in uses.reads().items() if name not in _GIVEN}


@functools.lru_cache(maxsize=4096)  # the same condition or script is read once per process that holds it
def _typed_reads(source: str, mode: str) -> dict[str, dict | None]:
    try:
        tree = ast.parse(source.strip() if mode == "eval" else source, mode=mode)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return {}
    return {name: schema for name, schema in _Uses(tree).reads().items() if name not in _GIVEN}


class _Uses:
    """What the uses of each name in one parsed expression or script say of its type."""

    def __init__(self, tree: ast.AST, as_truth: bool = True):
        self.tree = tree
        self.as_truth = as_truth  # an expression on its own is a condition, read as a truth
        called = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
        # `service.api.get(x)`: neither service.api nor service is a field read, but what a call goes through.
        self.called = set(called)
        for node in ast.walk(tree):
            part = node.func if isinstance(node, ast.Call) else None
            while isinstance(part, (ast.Attribute, ast.Subscript)):
                self.called.add(id(part))
                part = part.value
        self.names = {node.id for node in ast.walk(tree)
                      if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and id(node) not in called}
        # `total += 1` reads total first.
        self.names |= {node.target.id for node in ast.walk(tree)
                       if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name)}
        self.local = {node.id for generator in ast.walk(tree) if isinstance(generator, ast.comprehension)
                      for node in ast.walk(generator.target) if isinstance(node, ast.Name)}
        self.local |= {arg.arg for node in ast.walk(tree) if isinstance(node, ast.Lambda) for arg in node.args.args}
        self.local |= {node.target.id for node in ast.walk(tree)
                       if isinstance(node, ast.NamedExpr) and isinstance(node.target, ast.Name)}
        self.types: dict[str, dict | None] = {}

    def reads(self) -> dict[str, dict | None]:
        if isinstance(self.tree, ast.Expression) and self.as_truth:
            self.truth(self.tree.body)
        for node in ast.walk(self.tree):
            if isinstance(node, (ast.If, ast.While, ast.IfExp, ast.Assert)):
                self.truth(node.test)
            elif isinstance(node, ast.comprehension):
                for condition in node.ifs:
                    self.truth(condition)
            elif isinstance(node, ast.Compare):
                operands = [node.left, *node.comparators]
                for op, left, right in zip(node.ops, operands, operands[1:], strict=False):
                    for one, other in ((left, right), (right, left)):
                        schema = _compared_with(op, other)
                        if schema is not None:
                            self.note(one, schema)
            elif isinstance(node, ast.Call) and node.args:
                schema = _parsed_as(node)
                if schema is not None:
                    self.note(node.args[0], schema)
            elif isinstance(node, (ast.BinOp, ast.AugAssign)):
                pairs = [(node.target, node.value)] if isinstance(node, ast.AugAssign) else \
                    [(node.left, node.right), (node.right, node.left)]
                for one, other in pairs:
                    value = _constant(other)
                    if isinstance(value, (int, float)) and not isinstance(value, bool):
                        self.note(one, {"type": "number"})
                    elif isinstance(value, str) and isinstance(node.op, ast.Add):
                        self.note(one, {"type": "string"})
        for generator in (n for n in ast.walk(self.tree) if isinstance(n, ast.comprehension)):
            if isinstance(generator.iter, ast.Name) and generator.iter.id not in self.local:
                target = generator.target.id if isinstance(generator.target, ast.Name) else None
                items = self.types.get(target or "") or {"type": "string"}
                self.note(generator.iter, {"type": "array", "items": items, "minItems": 1, "maxItems": 3})
        for node in ast.walk(self.tree):
            if isinstance(node, (ast.Subscript, ast.Attribute)) and isinstance(node.ctx, ast.Load) \
                    and self.key(node) is not None:
                self.note(node, {})  # `x["key"]` read: x holds an object with that key, of a type not said here
        return {name: self.types.get(name) for name in sorted(self.names - self.local)}

    def truth(self, node: ast.AST) -> None:
        if isinstance(node, ast.BoolOp):
            for value in node.values:
                self.truth(value)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            self.truth(node.operand)
        else:
            self.note(node, {"type": "boolean"})

    def note(self, node: ast.AST, schema: dict) -> None:
        """`node` (a name, or a name's field `x["key"]` or `x.key`, at any depth) is used as `schema` says."""
        while isinstance(node, (ast.Subscript, ast.Attribute)) and (key := self.key(node)) is not None:
            schema = {"type": "object", "properties": {key: schema}, "required": [key]}
            node = node.value
        if not isinstance(node, ast.Name) or node.id not in self.names:
            return
        if node.id in self.types:
            self.types[node.id] = merge(self.types[node.id], schema)
        else:
            self.types[node.id] = schema

    def key(self, node: ast.Subscript | ast.Attribute) -> str | None:
        """The field `x["key"]` or `x.key` reads (the sandbox gives a dict's fields as attributes too,
        restricted.py); None for an index, or for what a call goes through (`x.get(…)`)."""
        if isinstance(node, ast.Subscript):
            key = _constant(node.slice)
            return key if isinstance(key, str) else None
        return node.attr if id(node) not in self.called else None


def _parsed_as(call: ast.Call) -> dict | None:
    """The text a date parser's first argument holds: `datetime.strptime(x, "%Y-%m-%d")` or
    `date.fromisoformat(x)` read a date, `datetime.fromisoformat(x)` a date and time."""
    func = call.func
    if not isinstance(func, ast.Attribute) or not isinstance(func.value, ast.Name):
        return None
    if func.attr == "strptime" and len(call.args) == 2 and _constant(call.args[1]) == "%Y-%m-%d":
        return {"type": "string", "format": "date"}
    if func.attr == "fromisoformat":
        return {"type": "string", "format": "date-time" if func.value.id == "datetime" else "date"}
    return None


def _compared_with(op: ast.cmpop, other: ast.AST) -> dict | None:
    """The type a name compared by `op` with `other` has; None when the comparison does not say."""
    value = _constant(other)
    if isinstance(op, _ORDER) and isinstance(other, ast.Name):
        return {"type": "number"}
    if isinstance(op, ast.In) and isinstance(other, (ast.List, ast.Tuple, ast.Set)):
        items = [_constant(item) for item in other.elts]
        if items and all(isinstance(item, str) for item in items):
            return {"type": "string", "enum": sorted(set(items))}
        return None
    if isinstance(value, bool) and isinstance(op, _EQUALITY):
        return {"type": "boolean"}
    if isinstance(value, (int, float)) and not isinstance(value, bool) and isinstance(op, (*_EQUALITY, *_ORDER)):
        return {"type": "number"}
    if isinstance(value, str) and isinstance(op, _EQUALITY):
        return {"type": "string", "enum": [value]}
    return None


def _constant(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
        value = node.operand.value
        return -value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    return None


def merge(old: dict | None, new: dict) -> dict | None:
    """One type for two uses of a name; None when they disagree (a number here, a string there)."""
    if old is None:
        return None
    if not new or not old:  # {}: any value, which says nothing against the other use
        return old or new
    if old.get("type") != new.get("type"):
        return None
    if old.get("type") == "object":
        properties = dict(old["properties"])
        for key, schema in new["properties"].items():
            merged = merge(properties[key], schema) if key in properties else schema
            if merged is None:
                return None
            properties[key] = merged
        return {"type": "object", "properties": properties, "required": sorted(properties)}
    if old.get("type") == "array":
        items = merge(old["items"], new["items"])
        return {**old, "items": items} if items is not None else None
    if "enum" in old and "enum" in new:
        return {**old, "enum": sorted(set(old["enum"]) | set(new["enum"]))}
    return {key: value for key, value in old.items() if key != "enum"} if "enum" in old or "enum" in new else old


def script_writes(script: str | None) -> set[str]:
    """The names a Python script sets without needing them first: `x = x + 1` or `total += 1` needs the
    name before it sets it, so such a script is no source of it (whoever runs the case must be)."""
    assigned, needed = _script_names(script)
    return set(assigned - needed)


def script_reads(script: str | None) -> dict[str, dict | None]:
    """The names a script needs before it sets them, typed from their uses in it (typed_reads)."""
    _, needed = _script_names(script)
    if not needed:
        return {}
    return {name: schema for name, schema in typed_reads(script or "", "exec").items() if name in needed}


@functools.lru_cache(maxsize=4096)
def _script_names(script: str | None) -> tuple[frozenset[str], frozenset[str]]:
    """(names the script assigns, names it reads, deletes or raises before it assigns them). Cached: an
    upload's scripts are read for what they set and for what they need, per process that holds them."""
    if not script or not script.strip():
        return frozenset(), frozenset()
    try:
        tree = ast.parse(script)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return frozenset(), frozenset()
    assigned: set[str] = set()
    needed: set[str] = set()
    _visit(tree.body, assigned, needed, guarded=False)
    return frozenset(assigned), frozenset(needed - _GIVEN)


def _visit(statements: list[ast.stmt], assigned: set[str], needed: set[str], guarded: bool) -> None:
    """Statements in order; inside a compound one, its test, then each block in turn (a name assigned in
    any block counts as assigned after it: fewer warnings, never a false one for an `if` that sets and
    then reads). Reads under `try: ... except NameError:` are ones the script does without."""
    for statement in statements:
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            assigned.add(statement.name)  # its body runs when called, with names of its own
            continue
        blocks = [getattr(statement, part) for part in ("body", "orelse", "finalbody")
                  if isinstance(getattr(statement, part, None), list)]
        if not blocks:
            _note(statement, assigned, needed, guarded)
            continue
        for header in ("test", "iter", "target"):
            if isinstance(getattr(statement, header, None), ast.AST):
                _note(getattr(statement, header), assigned, needed, guarded)
        for item in getattr(statement, "items", None) or []:
            _note(item, assigned, needed, guarded)
        catches = isinstance(statement, ast.Try) and _catches_name_error(statement)
        _visit(statement.body, assigned, needed, guarded or catches)  # type: ignore[attr-defined]
        for handler in getattr(statement, "handlers", None) or []:
            _visit(handler.body, assigned, needed, guarded)
        for block in blocks[1:]:
            _visit(block, assigned, needed, guarded)


def _note(node: ast.AST, assigned: set[str], needed: set[str], guarded: bool) -> None:
    uses: set[str] = set()
    stores: set[str] = set()
    for n in ast.walk(node):  # one walk: deploys analyse every script of an upload
        if isinstance(n, ast.Name):
            (stores if isinstance(n.ctx, ast.Store) else uses).add(n.id)
        elif isinstance(n, ast.AugAssign) and isinstance(n.target, ast.Name):
            uses.add(n.target.id)
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            stores |= {alias.asname or alias.name.split(".")[0] for alias in n.names}
    if not guarded:
        needed |= uses - assigned
    assigned |= stores


def _catches_name_error(attempt: ast.Try) -> bool:
    caught = {getattr(handler.type, "id", None) for handler in attempt.handlers}
    return bool(caught & {None, "NameError", "Exception", "BaseException"})
