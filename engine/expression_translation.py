"""Camunda's expression languages, translated at deploy into the Python expressions the engine evaluates.

Camunda 7 diagrams write conditions, timers and loop cardinalities in JUEL (`${amount > 1000 && !urgent}`),
Camunda 8 diagrams in FEEL after an `=` (`=status = "open"`, `=not(flag)`). SpiffWorkflow evaluates such
texts as Python, so each is translated once, at deploy, by a tokenizer and a recursive-descent parser: a
string in, a Python expression out, or Untranslatable saying what is not supported and what to write
instead. Nothing here knows BPMN: spec_adjustments.py finds the texts and locates the refusals.

The subset: names, property access (`a.b`; JUEL also `a['b']`, `a[0]`), string, number, `true`, `false`
and `null` literals, `!`/`not`, `empty`, comparisons (JUEL `==`/`eq`, `!=`/`ne`, `<`/`lt`, `>`/`gt`,
`<=`/`le`, `>=`/`ge`; FEEL `=` `!=` `<` `>` `<=` `>=`), `&&`/`and`, `||`/`or`, parentheses. Translations
stay within what plain_expressions.py evaluates in the server's own process. Refused: method and function
calls, Camunda's `execution` and like objects, text outside `${…}` (or `#{…}`, read alike), `? :`, arithmetic,
`instanceof`, and FEEL's `some`/`every`/`in`/`if`/`for`, filters and ranges.

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
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, NoReturn

JUEL = "JUEL (Camunda 7)"
FEEL = "FEEL (Camunda 8)"

SCRIPT_INSTEAD = ("compute the value in a script task before this point, or write the expression in Python "
                  "(e.g. amount > 1000 and not urgent)")


class Untranslatable(ValueError):
    """An expression outside the translated subset. `reason` says what is not supported (or wrong) in it,
    `instead` what to write; `dialect` is JUEL or FEEL above."""

    def __init__(self, dialect: str, reason: str, instead: str) -> None:
        super().__init__(f"{reason}: {instead}")
        self.dialect, self.reason, self.instead = dialect, reason, instead


@dataclass(frozen=True)
class _Dialect:
    name: str
    symbols: dict[str, str]          # as written -> canonical operator, longest first ('<=' before '<')
    words: dict[str, str]            # keyword -> canonical operator
    quotes: str
    refused_words: frozenset[str] = frozenset()
    brackets: bool = True            # JUEL's a['b'] and a[0]; FEEL's brackets filter, and count from 1


def _symbols(same: str, **renamed: str) -> dict[str, str]:
    table = {symbol: symbol for symbol in same.split()} | {symbol: name for name, symbol in renamed.items()}
    return dict(sorted(table.items(), key=lambda item: -len(item[0])))


_ARITHMETIC = {"+", "-", "*", "/", "%", "div", "mod", "**"}
_JUEL = _Dialect(
    JUEL, _symbols("== != <= >= < > ( ) . [ ] ? : , + - * / %", **{"and": "&&", "or": "||", "not": "!"}),
    {"eq": "==", "ne": "!=", "lt": "<", "gt": ">", "le": "<=", "ge": ">=", "and": "and", "or": "or",
     "not": "not", "empty": "empty", "div": "div", "mod": "mod", "instanceof": "instanceof"}, "'\"")
_FEEL = _Dialect(
    FEEL, _symbols("!= <= >= .. ** < > ( ) . [ ] , : ? + - * /", **{"==": "="}),
    {"and": "and", "or": "or", "not": "not"}, '"',
    frozenset({"some", "every", "in", "satisfies", "if", "then", "else", "for", "return", "between",
               "instance", "of", "function"}), brackets=False)
_LITERAL_WORDS = {"true": "True", "false": "False", "null": "None"}
# Camunda's context objects: not case data, and nothing here stands for them.
_CONTEXT_OBJECTS = {"execution", "variableScope", "authenticatedUserId", "externalTask"}

_NUMBER = re.compile(r"(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", re.ASCII)
_NAME = re.compile(r"(?:[^\W\d]|\$)(?:\w|\$)*")
_STRINGS = {quote: re.compile(rf"{quote}((?:[^{quote}\\]|\\.)*){quote}", re.DOTALL) for quote in "'\""}
_ESCAPES = {"\\": "\\", "'": "'", '"': '"'}
_FEEL_ESCAPES = {**_ESCAPES, "n": "\n", "t": "\t", "r": "\r"}


class _Token(NamedTuple):
    kind: str      # num, str, name, op, end
    value: str     # the number as written, the decoded string, the name, or the canonical operator
    source: str    # as written, for messages


def translate(text: str) -> str | None:
    """The Python expression for a JUEL (`${…}`) or FEEL (`=…`) text; None for any other text, which is
    taken to be Python already. Raises Untranslatable for JUEL or FEEL outside the subset."""
    stripped = text.strip()
    # Deferred evaluation (#{…}) differs from ${…} only where an expression is kept to be evaluated
    # later; a condition or timer is evaluated when reached either way, so Camunda reads both alike.
    if stripped.startswith(("${", "#{")):
        return _translate(stripped[2:], _JUEL)
    if stripped.startswith("="):
        return _translate(stripped[1:], _FEEL)
    if ("${" in stripped or "#{" in stripped) and not _is_python(stripped):
        raise Untranslatable(JUEL, "text outside ${…} is not translated",
                             "write the whole expression inside one ${…}, e.g. ${a > 1 && b}")
    return None


def _is_python(text: str) -> bool:
    try:
        ast.parse(text, mode="eval")
    except SyntaxError:
        return False
    return True


def _translate(body: str, dialect: _Dialect) -> str:
    tokens, rest = _tokens(body, dialect)
    if rest is None:
        raise Untranslatable(JUEL, "the ${ is never closed", "end the expression with }")
    if rest.strip():
        raise Untranslatable(JUEL, "text outside ${…} is not translated",
                             "write the whole expression inside one ${…}, e.g. ${a > 1 && b}")
    if len(tokens) == 1:
        raise Untranslatable(dialect.name, "the expression is empty", "write a condition, e.g. approved")
    return _Parser(tokens, dialect).parse()


def _tokens(body: str, dialect: _Dialect) -> tuple[list[_Token], str | None]:
    """The tokens of `body`, and the text after JUEL's closing '}' (None if there is none)."""
    tokens: list[_Token] = []
    position = 0
    while position < len(body):
        char = body[position]
        number, name = _NUMBER.match(body, position), _NAME.match(body, position)
        if char.isspace():
            position += 1
        elif char == "}" and dialect is _JUEL:
            return [*tokens, _Token("end", "", "the end")], body[position + 1:]
        elif number:
            tokens.append(_Token("num", number.group(), number.group()))
            position = number.end()
        elif char in dialect.quotes:
            value, end = _string(body, position, dialect)
            tokens.append(_Token("str", value, body[position:end]))
            position = end
        elif name:
            tokens.append(_word(name.group(), dialect))
            position = name.end()
        else:
            symbol = next((s for s in dialect.symbols if body.startswith(s, position)), None)
            if symbol is None:
                raise Untranslatable(dialect.name, f"the character '{char}' is not part of the translated "
                                                   "subset", "remove it, or write the expression in Python")
            tokens.append(_Token("op", dialect.symbols[symbol], symbol))
            position += len(symbol)
    return [*tokens, _Token("end", "", "the end")], (None if dialect is _JUEL else "")


def _word(word: str, dialect: _Dialect) -> _Token:
    if word in dialect.words:
        return _Token("op", dialect.words[word], word)
    if word in dialect.refused_words:
        raise Untranslatable(dialect.name, f"FEEL's '{word}' is not translated", SCRIPT_INSTEAD)
    return _Token("name", word, word)


def _string(body: str, start: int, dialect: _Dialect) -> tuple[str, int]:
    """The decoded string literal starting at `start`, and the position after it."""
    match = _STRINGS[body[start]].match(body, start)
    if match is None:
        raise Untranslatable(dialect.name, f"the string starting {body[start:start + 12]} is never closed",
                             f"end it with {body[start]}")
    escapes = _FEEL_ESCAPES if dialect is _FEEL else _ESCAPES  # JUEL keeps other backslashes as written
    return re.sub(r"\\(.)", lambda m: escapes.get(m.group(1), m.group()), match.group(1), flags=re.DOTALL), match.end()


# Python precedences of what the translation builds, lowest first; a part is put in parentheses when
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

    def __init__(self, tokens: list[_Token], dialect: _Dialect) -> None:
        self.tokens, self.dialect, self.position = tokens, dialect, 0

    def parse(self) -> str:
        result = self._or()
        if self._peek().kind != "end":
            self._unexpected()
        return result.text

    def _peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.position + ahead, len(self.tokens) - 1)]

    def _take(self) -> _Token:
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
        if token.kind == "op" and token.value in _ARITHMETIC:
            raise self._refuse(f"arithmetic ('{token.source}') is not translated")
        if token.kind == "op" and token.value in {"?", ":"}:
            raise self._refuse("the conditional operator (? :) is not translated",
                               "draw two sequence flows with opposite conditions out of an exclusive gateway")
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
        left = self._equality() if self.dialect is _JUEL else self._feel_comparison()
        while self._at("and"):
            self._take()
            right = self._equality() if self.dialect is _JUEL else self._feel_comparison()
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
        if self._at("not") and self.dialect is _FEEL:
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
                if name.kind not in {"name", "op"} or not _NAME.fullmatch(name.source):
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
        if token.kind == "op" and token.value == "(":
            inner = self._or()
            self._expect(")")
            return _Py(inner.text, inner.precedence)
        self.position -= 1
        self._unexpected()

    def _name(self, token: _Token) -> _Py:
        name = token.value
        if name in _LITERAL_WORDS:
            return _Py(_LITERAL_WORDS[name], _ATOM)
        namespaced = self._at(":") and self._peek(1).kind == "name" and self._peek(2).value == "("
        if self._at("(") or namespaced:
            raise self._refuse(f"a function call ({name}(…)) is not translated")
        if name in _CONTEXT_OBJECTS:
            read = [token.value for token in self.tokens[self.position:self.position + 4]]
            variable = f"${{{read[3]}}}" if read[:3] == [".", "getVariable", "("] else "${amount}"
            raise self._refuse(f"Camunda's '{name}' object is not available",
                               f"read case data by its name, e.g. {variable}")
        if not name.isidentifier() or keyword.iskeyword(name) or name.startswith("_"):
            raise self._refuse(f"the variable name '{name}' cannot be a Python name",
                               "rename the variable: letters, digits and '_', not starting with '_', "
                               "not a Python keyword")
        return _Py(name, _ATOM)

    def _number(self, token: _Token) -> str:
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
