"""The words of Camunda's expression languages: JUEL and FEEL read into tokens for the translation into
Python (expression_translation.py), and the error that says what is outside the translated subset.

Each dialect says which symbols and keywords it has, how it quotes strings, and which FEEL words are not
translated (`if`, `for`, `between` …); a refused word stops the reading at once with the reason.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

JUEL = "JUEL (Camunda 7)"
FEEL = "FEEL (Camunda 8)"
XPATH = "XPath (BPMN 2.0's default expression language)"

SCRIPT_INSTEAD = ("compute the value in a script task before this point, or write the expression in Python "
                  "(e.g. amount > 1000 and not urgent)")


class Untranslatable(ValueError):
    """An expression outside the translated subset. `reason` says what is not supported (or wrong) in it,
    `instead` what to write; `dialect` is JUEL or FEEL above."""

    def __init__(self, dialect: str, reason: str, instead: str) -> None:
        super().__init__(f"{reason}: {instead}")
        self.dialect, self.reason, self.instead = dialect, reason, instead


@dataclass(frozen=True)
class Dialect:
    name: str
    symbols: dict[str, str]          # as written -> canonical operator, longest first ('<=' before '<')
    words: dict[str, str]            # keyword -> canonical operator
    quotes: str
    refused_words: frozenset[str] = frozenset()
    brackets: bool = True            # JUEL's a['b'] and a[0]; FEEL's brackets filter, and count from 1


def _symbols(same: str, **renamed: str) -> dict[str, str]:
    table = {symbol: symbol for symbol in same.split()} | {symbol: name for name, symbol in renamed.items()}
    return dict(sorted(table.items(), key=lambda item: -len(item[0])))


# FEEL's quantified expressions (`some x in xs satisfies c`), read by the translation's parser.
QUANTIFIER_WORDS = ("some", "every", "in", "satisfies")
ARITHMETIC = {"+", "-", "*", "/", "%", "div", "mod", "**"}
JUEL_DIALECT = Dialect(
    JUEL, _symbols("== != <= >= < > ( ) . [ ] ? : , + - * / %", **{"and": "&&", "or": "||", "not": "!"}),
    {"eq": "==", "ne": "!=", "lt": "<", "gt": ">", "le": "<=", "ge": ">=", "and": "and", "or": "or",
     "not": "not", "empty": "empty", "div": "div", "mod": "mod", "instanceof": "instanceof"}, "'\"")
FEEL_DIALECT = Dialect(
    FEEL, _symbols("!= <= >= .. ** < > ( ) . [ ] , : ? + - * /", **{"==": "="}),
    {"and": "and", "or": "or", "not": "not", **{word: word for word in QUANTIFIER_WORDS}}, '"',
    frozenset({"if", "then", "else", "for", "return", "between", "instance", "of", "function"}), brackets=False)
LITERAL_WORDS = {"true": "True", "false": "False", "null": "None"}
# Camunda's context objects: not case data, and nothing here stands for them.
CONTEXT_OBJECTS = {"execution", "variableScope", "authenticatedUserId", "externalTask"}

_NUMBER = re.compile(r"(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", re.ASCII)
NAME_PATTERN = re.compile(r"(?:[^\W\d]|\$)(?:\w|\$)*")
_STRINGS = {quote: re.compile(rf"{quote}((?:[^{quote}\\]|\\.)*){quote}", re.DOTALL) for quote in "'\""}
_ESCAPES = {"\\": "\\", "'": "'", '"': '"'}
_FEEL_ESCAPES = {**_ESCAPES, "n": "\n", "t": "\t", "r": "\r"}


class Token(NamedTuple):
    kind: str      # num, str, name, op, end
    value: str     # the number as written, the decoded string, the name, or the canonical operator
    source: str    # as written, for messages


def read_tokens(body: str, dialect: Dialect) -> tuple[list[Token], str | None]:
    """The tokens of `body`, and the text after JUEL's closing '}' (None if there is none)."""
    tokens: list[Token] = []
    position = 0
    while position < len(body):
        char = body[position]
        number, name = _NUMBER.match(body, position), NAME_PATTERN.match(body, position)
        if char.isspace():
            position += 1
        elif char == "}" and dialect is JUEL_DIALECT:
            return [*tokens, Token("end", "", "the end")], body[position + 1:]
        elif number:
            tokens.append(Token("num", number.group(), number.group()))
            position = number.end()
        elif char in dialect.quotes:
            value, end = _string(body, position, dialect)
            tokens.append(Token("str", value, body[position:end]))
            position = end
        elif name:
            tokens.append(_word(name.group(), dialect))
            position = name.end()
        else:
            symbol = next((s for s in dialect.symbols if body.startswith(s, position)), None)
            if symbol is None:
                raise Untranslatable(dialect.name, f"the character '{char}' is not part of the translated "
                                                   "subset", "remove it, or write the expression in Python")
            tokens.append(Token("op", dialect.symbols[symbol], symbol))
            position += len(symbol)
    return [*tokens, Token("end", "", "the end")], (None if dialect is JUEL_DIALECT else "")


def _word(word: str, dialect: Dialect) -> Token:
    if word in dialect.words:
        return Token("op", dialect.words[word], word)
    if word in dialect.refused_words:
        raise Untranslatable(dialect.name, f"FEEL's '{word}' is not translated", SCRIPT_INSTEAD)
    return Token("name", word, word)


def _string(body: str, start: int, dialect: Dialect) -> tuple[str, int]:
    """The decoded string literal starting at `start`, and the position after it."""
    match = _STRINGS[body[start]].match(body, start)
    if match is None:
        raise Untranslatable(dialect.name, f"the string starting {body[start:start + 12]} is never closed",
                             f"end it with {body[start]}")
    escapes = _FEEL_ESCAPES if dialect is FEEL_DIALECT else _ESCAPES  # JUEL keeps other backslashes as written
    return re.sub(r"\\(.)", lambda m: escapes.get(m.group(1), m.group()), match.group(1), flags=re.DOTALL), match.end()


# Python precedences of what the translation builds, lowest first; a part is put in parentheses when
