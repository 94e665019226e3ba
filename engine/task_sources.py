"""The scripts and expressions a case could run at one task spec, named by what they are: one list for
what reads them at deploy (start_inputs.py: what they read; deploy_syntax.py: whether they compile)."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .spiff_scripts import task_scripts

_EVENT_EXPRESSIONS = {"MessageEventDefinition": "message payload", "ConditionalEventDefinition": "condition",
                      "TimerEventDefinition": "timer expression", "TimeDateEventDefinition": "timer expression",
                      "DurationTimerEventDefinition": "timer expression",
                      "CycleTimerEventDefinition": "timer expression"}


def task_sources(task_spec: Any) -> Iterator[tuple[str, str, str]]:
    """(what, source, "eval" or "exec") of each expression (conditions, a loop's cardinality, an event's
    condition, message payload or timer) and then each script (pre-script, script, post-script), in the
    order they run."""
    for condition, _ in getattr(task_spec, "cond_task_specs", None) or []:
        text = _condition_text(condition)
        if text:
            yield "condition", text, "eval"
    for attribute in ("condition", "cardinality"):
        value = getattr(task_spec, attribute, None)
        if isinstance(value, str) and value.strip():
            yield attribute, value, "eval"
    event = getattr(task_spec, "event_definition", None)
    # A throw or catch of several events holds one definition per event.
    for definition in [event, *(getattr(event, "event_definitions", None) or [])]:
        kind = _EVENT_EXPRESSIONS.get(type(definition).__name__)
        expression = getattr(definition, "expression", None)
        if kind and isinstance(expression, str) and expression.strip():
            yield kind, expression, "eval"
    pre, post = task_scripts(task_spec)
    for what, script in (("pre-script", pre), ("script", getattr(task_spec, "script", None)), ("post-script", post)):
        if isinstance(script, str) and script.strip():
            yield what, script, "exec"


def _condition_text(condition: Any) -> str | None:
    """The text of a gateway's condition: SpiffWorkflow holds it as a string or wrapped in its args."""
    if isinstance(condition, str):
        return condition
    args = getattr(condition, "args", None)
    return args[0] if args and isinstance(args[0], str) else None
