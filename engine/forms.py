"""A user task's form is a JSON Schema (draft 2020-12); completing the task must satisfy it."""
from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError

OPEN_FORM = {"type": "object"}
_FORMAT_CHECKER = FormatChecker()


def missing_field(error: ValidationError) -> str | None:
    """The name of the field a "required" error is about, which jsonschema reports on the field's parent.

    jsonschema raises one error per missing name, saying "<repr(name)> is a required property"; the name
    comes from the schema's list, not from the message, which quotes names with quotes in them differently.
    """
    instance = error.instance if isinstance(error.instance, dict) else {}
    names = error.validator_value if isinstance(error.validator_value, list) else []
    for name in names:
        if name not in instance and error.message == f"{name!r} is a required property":
            return str(name)
    return None


class Form:
    def __init__(self, schema: dict | None):
        self.schema = schema if schema is not None else OPEN_FORM
        self._validator = Draft202012Validator(self.schema, format_checker=_FORMAT_CHECKER)

    def problems(self, data: dict) -> list[dict]:
        """Field-level problems, empty when the data is acceptable."""
        problems = []
        for error in sorted(self._validator.iter_errors(data), key=lambda e: list(e.absolute_path)):
            path: list[Any] = list(error.absolute_path)
            message = error.message
            if error.validator == "required":
                missing = missing_field(error)
                path += [missing] if missing is not None else []
                message = "this field is required"
            field = ".".join(str(part) for part in path) or "data"
            problems.append({"field": field, "message": message})
        return problems
