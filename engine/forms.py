"""A user task's form is a JSON Schema (draft 2020-12); completing the task must satisfy it."""
from __future__ import annotations

from jsonschema import Draft202012Validator, FormatChecker

OPEN_FORM = {"type": "object"}
_FORMAT_CHECKER = FormatChecker()


class Form:
    def __init__(self, schema: dict | None):
        self.schema = schema if schema is not None else OPEN_FORM
        self._validator = Draft202012Validator(self.schema, format_checker=_FORMAT_CHECKER)

    def problems(self, data: dict) -> list[dict]:
        """Field-level problems, empty when the data is acceptable."""
        problems = []
        for error in sorted(self._validator.iter_errors(data), key=lambda e: list(e.absolute_path)):
            path = list(error.absolute_path)
            if error.validator == "required":
                # jsonschema reports a missing field on its parent; name the field itself (from the schema's
                # list, not the message, which quotes names with quotes in them differently).
                # jsonschema raises one error per missing name, saying "<repr(name)> is a required property".
                instance = error.instance if isinstance(error.instance, dict) else {}
                missing = [name for name in error.validator_value if name not in instance
                           and error.message == f"{name!r} is a required property"]
                for name in missing[:1]:
                    path = path + [name]
                message = "this field is required"
            elif error.validator == "additionalProperties":
                message = error.message
            else:
                message = error.message
            field = ".".join(str(part) for part in path) or "data"
            problems.append({"field": field, "message": message})
        return problems
