"""Camunda's expression languages, translated at deploy into the Python expressions the engine evaluates.

Camunda 7 diagrams write conditions, timers and loop cardinalities in JUEL (`${amount > 1000 && !urgent}`),
Camunda 8 diagrams in FEEL after an `=` (`=status = "open"`, `=not(flag)`), and exporters that keep BPMN 2.0's
default, XPath, read data objects with `bpmn:getDataObject('approved')` (read as FEEL once each such call is the
data object's variable). SpiffWorkflow evaluates such texts as Python, so each is translated once, at deploy,
by a tokenizer and a recursive-descent parser: a string in, a Python expression out, or Untranslatable saying
what is not supported and what to write instead. Nothing here knows BPMN: spec_adjustments.py finds the texts
and locates the refusals.

The subset: names, property access (`a.b`; JUEL also `a['b']`, `a[0]`), string, number, `true`, `false`
and `null` literals, `!`/`not`, `empty`, comparisons (JUEL `==`/`eq`, `!=`/`ne`, `<`/`lt`, `>`/`gt`,
`<=`/`le`, `>=`/`ge`; FEEL `=` `!=` `<` `>` `<=` `>=`), `&&`/`and`, `||`/`or`, parentheses, and FEEL's
quantified expressions (`some x in xs satisfies x > 1`, `every …`, as Python's any()/all() over a generator).
Translations stay within what plain_expressions.py evaluates in the server's own process, but for the
quantified ones, which loop and so run in the sandbox process like a script. Refused: method and function
calls, Camunda's `execution` and like objects, text outside `${…}` (or `#{…}`, read alike), `? :`, arithmetic,
`instanceof`, and FEEL's `in` outside a quantified expression, `if`, `for`, filters and ranges.

Semantics are Python's, not JUEL's coercions, so that translations stay plain Python:
- `==`, `!=` do not coerce: JUEL's `'5' == 5` and `true == 'true'` are true, here false.
- `<`, `>`, … between a number and a string, or with null, raise a TypeError (an incident on the case),
  where JUEL coerces or answers false.
- `!x`, `&&`, `||` and a bare `${x}` use Python truthiness: the same for booleans, null, numbers, strings
  and collections, except that the string 'false' is true here (JUEL coerces it to false).
- `empty x` is true for null, '', an empty list or object, false for anything else (0 and false too),
  as in JUEL: it becomes `not x and x != 0`.
- An unknown variable is what it is for any expression of the engine: a NameError when evaluated, an
  incident on the case naming the expression (Camunda 7 fails too; FEEL would read null). A missing
  property (`a.b` without `b`) is a KeyError incident; JUEL would read null.
- A Camunda bean (`${myService.enabled}`) looks like case data and is read as such: missing at run time
  unless the case holds it.
"""
from __future__ import annotations

import ast
import keyword
import math
import re
from collections.abc import Callable, Mapping
from typing import NamedTuple, NoReturn

from .expression_tokens import (
    ARITHMETIC,
    CONTEXT_OBJECTS,
    FEEL,
    FEEL_DIALECT,
    JUEL,
    JUEL_DIALECT,
    LITERAL_WORDS,
    NAME_PATTERN,
    QUANTIFIER_WORDS,
    SCRIPT_INSTEAD,
    XPATH,
    Dialect,
    Token,
    Untranslatable,
    read_tokens,
)

__all__ = ["FEEL", "JUEL", "XPATH", "Untranslatable", "translate"]


def translate(text: str, data_objects: Mapping[str, str] | None = None) -> str | None:
    """The Python expression for a JUEL (`${…}`), FEEL (`=…`) or XPath (`bpmn:getDataObject('x') = 'y'`) text;
    None for any other text, which is taken to be Python already. `data_objects` maps the names of the data
    objects in sight to their ids, the variables that hold them. Raises Untranslatable outside the subset."""
    stripped = text.strip()
    # Deferred evaluation (#{…}) differs from ${…} only where an expression is kept to be evaluated
    # later; a condition or timer is evaluated when reached either way, so Camunda reads both alike.
    if stripped.startswith(("${", "#{")):
        return _translate(stripped[2:], JUEL_DIALECT)
    if stripped.startswith("="):
        return _translate(stripped[1:], FEEL_DIALECT)
    if _DATA_OBJECT_CALL.search(stripped):
        return _from_xpath(stripped, data_objects or {})
    if ("${" in stripped or "#{" in stripped) and not _is_python(stripped):
        raise Untranslatable(JUEL, "text outside ${…} is not translated",
                             "write the whole expression inside one ${…}, e.g. ${a > 1 && b}")
    return None


# BPMN 2.0's default expression language is XPath, in which a condition reads a data object with
# bpmn:getDataObject('name') (exporters such as Signavio write it so). Its comparisons, not(…), and/or and
# literals are FEEL's, so an XPath condition is read as FEEL once each call is the name of its data object.
_DATA_OBJECT_CALL = re.compile(r"\b(?:\w+:)?getDataObject\(\s*(?:'([^']*)'|\"([^\"]*)\")\s*\)")
_XPATH_LITERALS = re.compile(r"\b(true|false)\(\s*\)")
_XPATH_STRING = re.compile(r"'([^']*)'")


def _from_xpath(text: str, data_objects: Mapping[str, str]) -> str:
    def name_of(match: re.Match[str]) -> str:
        written = match.group(1) if match.group(1) is not None else match.group(2)
        name = data_objects.get(written, written)
        if not name.isidentifier() or keyword.iskeyword(name):
            held = f"data object '{written}' is held under its id '{name}', which" if name != written else \
                f"the data object name '{name}'"
            raise Untranslatable(XPATH, f"{held} is not a variable name an expression can read",
                                 "give the data object an id of letters, digits and _ only")
        return name

    feel = _XPATH_STRING.sub(lambda m: '"' + m.group(1).replace('"', '\\"') + '"',
                             _XPATH_LITERALS.sub(r"\1", _DATA_OBJECT_CALL.sub(name_of, text)))
    try:
        return _translate(feel, FEEL_DIALECT)
    except Untranslatable as exc:
        raise Untranslatable(XPATH, exc.reason.replace("FEEL's", "XPath's"), exc.instead) from None


def _is_python(text: str) -> bool:
    try:
        ast.parse(text, mode="eval")
    except SyntaxError:
        return False
    return True


def _translate(body: str, dialect: Dialect) -> str:
    tokens, rest = read_tokens(body, dialect)
    if rest is None:
        raise Untranslatable(JUEL, "the ${ is never closed", "end the expression with }")
    if rest.strip():
        raise Untranslatable(JUEL, "text outside ${…} is not translated",
                             "write the whole expression inside one ${…}, e.g. ${a > 1 && b}")
    if len(tokens) == 1:
        raise Untranslatable(dialect.name, "the expression is empty", "write a condition, e.g. approved")
    return _Parser(tokens, dialect).parse()


# its precedence would bind it wrongly (or, for comparisons, chain it) inside the whole.
_OR, _AND, _NOT, _COMPARE, _UNARY, _ATOM = range(6)


class _Py(NamedTuple):
    text: str
    precedence: int

    def within(self, lowest: int) -> str:
        """The text, parenthesized unless its precedence is at least `lowest`."""
        return self.text if self.precedence >= lowest else f"({self.text})"


_COMPARISONS = {"==", "!=", "<", ">", "<=", ">="}


class _Parser:
    """Recursive descent over one expression. JUEL's precedence, lowest first: or, and, == !=, < > <= >=,
    unary (! not empty -), property access. FEEL has one level of comparisons, which do not chain."""

    def __init__(self, tokens: list[Token], dialect: Dialect) -> None:
        self.tokens, self.dialect, self.position = tokens, dialect, 0

    def parse(self) -> str:
        result = self._or()
        if self._peek().kind != "end":
            self._unexpected()
        return result.text

    def _peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.position + ahead, len(self.tokens) - 1)]

    def _take(self) -> Token:
        token = self._peek()
        self.position += 1
        return token

    def _at(self, *operators: str) -> bool:
        token = self._peek()
        return token.kind == "op" and token.value in operators

    def _expect(self, operator: str) -> None:
        if not self._at(operator):
            self._unexpected(f"'{operator}' expected")
        self._take()

    def _refuse(self, reason: str, instead: str = SCRIPT_INSTEAD) -> Untranslatable:
        return Untranslatable(self.dialect.name, reason, instead)

    def _unexpected(self, expected: str = "") -> NoReturn:
        token = self._peek()
        if token.kind == "op" and token.value in ARITHMETIC:
            raise self._refuse(f"arithmetic ('{token.source}') is not translated")
        if token.kind == "op" and token.value in {"?", ":"}:
            raise self._refuse("the conditional operator (? :) is not translated",
                               "draw two sequence flows with opposite conditions out of an exclusive gateway")
        if token.kind == "op" and token.value in QUANTIFIER_WORDS and not expected:
            raise self._refuse(f"FEEL's '{token.source}' is not translated here: only in a quantified expression "
                               "(some x in xs satisfies x > 1, or every …)")
        if token.kind == "op" and token.value == "instanceof":
            raise self._refuse("instanceof is not translated", "compare values instead")
        seen = "the end" if token.kind == "end" else f"'{token.source}'"
        where = f"{expected}, found {seen}" if expected else f"{seen} is unexpected here"
        if token.kind == "end" and not expected:
            where = "it ends where a value is expected"
        raise self._refuse(f"the expression cannot be read: {where}", "correct the expression")

    def _or(self) -> _Py:
        left = self._and()
        while self._at("or"):
            self._take()
            right = self._and()
            left = _Py(f"{left.within(_OR)} or {right.within(_AND)}", _OR)
        return left

    def _and(self) -> _Py:
        left = self._equality() if self.dialect is JUEL_DIALECT else self._feel_comparison()
        while self._at("and"):
            self._take()
            right = self._equality() if self.dialect is JUEL_DIALECT else self._feel_comparison()
            left = _Py(f"{left.within(_AND)} and {right.within(_AND)}", _AND)
        return left

    def _equality(self) -> _Py:
        return self._left_to_right(("==", "!="), self._relational)

    def _relational(self) -> _Py:
        return self._left_to_right(("<", ">", "<=", ">="), self._unary)

    def _left_to_right(self, operators: tuple[str, ...], operand: Callable[[], _Py]) -> _Py:
        left = operand()
        while self._at(*operators):
            operator = self._take().value
            left = _compare(left, operator, operand())
        return left

    def _feel_comparison(self) -> _Py:
        left = self._unary()
        if not self._at(*_COMPARISONS):
            return left
        operator = self._take().value
        result = _compare(left, operator, self._unary())
        if self._at(*_COMPARISONS):
            raise self._refuse("FEEL comparisons do not chain", "compare one pair at a time: a < b and b < c")
        return result

    def _unary(self) -> _Py:
        if self._at("not") and self.dialect is FEEL_DIALECT:
            return self._feel_not()
        if self._at("not"):
            self._take()
            operand = self._unary()
            return _Py(f"not {operand.within(_NOT)}", _NOT)
        if self._at("empty"):
            self._take()
            value = self._unary().within(_UNARY)
            return _Py(f"not {value} and {value} != 0", _AND)
        if self._at("-"):
            if self._peek(1).kind != "num":
                raise self._refuse("arithmetic ('-') is not translated")
            self._take()
            return _Py(f"-{self._number(self._take())}", _UNARY)
        return self._postfix()

    def _feel_not(self) -> _Py:
        self._take()
        if not self._at("("):
            raise self._refuse("FEEL negates with the function not(…)", "write not(flag)")
        self._take()
        operand = self._or()
        self._expect(")")
        return _Py(f"not {operand.within(_NOT)}", _NOT)

    def _postfix(self) -> _Py:
        start = self._peek().source if self._peek().kind == "name" else "(…)"
        result = self._primary()
        while self._at(".", "["):
            if self._take().value == ".":
                name = self._take()
                if name.kind not in {"name", "op"} or not NAME_PATTERN.fullmatch(name.source):
                    self.position -= 1
                    self._unexpected("a property name after '.'")
                if self._at("("):
                    raise self._refuse(f"a method call ({start}.{name.source}(…)) is not translated")
                start = f"{start}.{name.source}"
                result = _Py(f"{result.within(_ATOM)}[{name.source!r}]", _ATOM)
            else:
                result = _Py(f"{result.within(_ATOM)}[{self._index()}]", _ATOM)
        return result

    def _index(self) -> str:
        if not self.dialect.brackets:
            raise self._refuse("FEEL filters and indexes ([…]) are not translated", "write the property as a.b")
        token = self._take()
        if token.kind == "str":
            index = repr(token.value)
        elif token.kind == "num" and token.source.isdigit():
            index = self._number(token)
        else:
            raise self._refuse("an index that is not a quoted name or a whole number is not translated",
                               "write a['key'], a.key or a[0]")
        self._expect("]")
        return index

    def _primary(self) -> _Py:
        token = self._take()
        if token.kind == "num":
            return _Py(self._number(token), _ATOM)
        if token.kind == "str":
            return _Py(repr(token.value), _ATOM)
        if token.kind == "name":
            return self._name(token)
        if token.kind == "op" and token.value in {"some", "every"}:
            return self._quantified(token)
        if token.kind == "op" and token.value == "(":
            inner = self._or()
            self._expect(")")
            return _Py(inner.text, inner.precedence)
        self.position -= 1
        self._unexpected()

    def _quantified(self, quantifier: Token) -> _Py:
        """FEEL's `some x in xs satisfies c` (true when c holds for an item) and `every …` (for each item) as
        Python's any() and all() over a generator; several contexts (`x in xs, y in ys`) nest, as in FEEL.
        The condition reaches as far as the expression goes, as FEEL reads it."""
        loops = []
        while True:
            variable = self._take()
            if variable.kind != "name" or variable.value in LITERAL_WORDS:
                self.position -= 1
                self._unexpected(f"a variable name after '{quantifier.source}'")
            name = self._name(variable).text
            self._expect("in")
            loops.append(f"for {name} in {self._or().within(_OR)}")
            if not self._at(","):
                break
            self._take()
        self._expect("satisfies")
        condition = self._or()
        function = "any" if quantifier.value == "some" else "all"
        return _Py(f"{function}({condition.text} {' '.join(loops)})", _ATOM)

    def _name(self, token: Token) -> _Py:
        name = token.value
        if name in LITERAL_WORDS:
            return _Py(LITERAL_WORDS[name], _ATOM)
        namespaced = self._at(":") and self._peek(1).kind == "name" and self._peek(2).value == "("
        if self._at("(") or namespaced:
            raise self._refuse(f"a function call ({name}(…)) is not translated")
        if name in CONTEXT_OBJECTS:
            read = [token.value for token in self.tokens[self.position:self.position + 4]]
            variable = f"${{{read[3]}}}" if read[:3] == [".", "getVariable", "("] else "${amount}"
            raise self._refuse(f"Camunda's '{name}' object is not available",
                               f"read case data by its name, e.g. {variable}")
        if not name.isidentifier() or keyword.iskeyword(name) or name.startswith("_"):
            raise self._refuse(f"the variable name '{name}' cannot be a Python name",
                               "rename the variable: letters, digits and '_', not starting with '_', "
                               "not a Python keyword")
        return _Py(name, _ATOM)

    def _number(self, token: Token) -> str:
        if token.value.isdecimal():  # _NUMBER is ASCII: only 0-9 here
            return str(int(token.value))  # JUEL reads 007 as 7; Python refuses the leading zeros
        value = float(token.value)
        if not math.isfinite(value):
            raise self._refuse(f"the number {token.source} is too large", "write a smaller number")
        return repr(value)


def _compare(left: _Py, operator: str, right: _Py) -> _Py:
    """Operands of a comparison are parenthesized unless atomic or unary, so that Python neither chains
    `(a < b) < c` into `a < b < c` nor reads `(not a) == b` as `not (a == b)`."""
    return _Py(f"{left.within(_UNARY)} {operator} {right.within(_UNARY)}", _COMPARE)
