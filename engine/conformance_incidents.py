"""Whose an incident is: the model's own (a script that fails, a variable the model never sets, a BPMN
error nothing catches, a service task with nothing to run) or the engine's (an exception the engine or
its library raised where the diagram asked for nothing wrong, or timers it could not fire).

Read from the incident's message, which incidents.py builds in one sentence per kind; the kinds the
engine owns are the two whose sentences say so. A failed step is the model's: the exception it names
was raised by the step's own script or expression (step_failed keeps it), and the report names that
exception so a reader can check."""
from __future__ import annotations

import re

# (cause, owner, how the message of incidents.py begins or what it contains), first match wins.
KINDS = [
    ("the engine could not go on", "engine", re.compile(r"^the engine could not go on")),
    ("timers could not be fired", "engine", re.compile(r"^the case's due timers could not be fired")),
    ("service task without implementation", "model", re.compile(r"is a service task that has no implementation")),
    ("uncaught BPMN error", "model", re.compile(r"^BPMN error .* no boundary event caught it")),
    ("stuck: nothing ready, nothing awaited", "model", re.compile(r"^the case is stuck at")),
    ("deeper than SpiffWorkflow's limit", "model", re.compile(r"went deeper than SpiffWorkflow's limit")),
    ("data that cannot be stored", "model", re.compile(r"left data that cannot be stored")),
    ("too many instances", "model", re.compile(r"more than the limit of \d+ \(setting USM_MAX_INSTANCES\)")),
    ("no condition of a gateway holds", "model", re.compile(r"none of the conditions of its outgoing flows holds")),
    ("a data input or output the model never sets", "model",
     re.compile(r"failed: (A data object could not be set|Missing data (ouput|input)"
                r"|You are missing a required Data Input)")),
    ("a multi-instance collection the model never sets (or that holds no items)", "model",
     re.compile(r"failed: its collection '.*' is (not set|.*, not a list or map)")),
    ("a worker reported a failure", "model", re.compile(r"^worker '.*' could not do this task")),
    ("a thrown message cannot start its process", "model",
     re.compile(r"^message '.*' thrown at .* could not start the process it starts")),
]
# A failed step: "<element> failed[ evaluating <expression>]: <ExceptionClass>: <text>".
STEP_FAILED = re.compile(r" failed(?P<expression> evaluating .*?)?: (?P<what>[A-Za-z_][\w.]*)(?::|$)")


def classify(message: str) -> tuple[str, str]:
    """(owner, cause) of an incident's message: owner is "model" or "engine"."""
    for cause, owner, pattern in KINDS:
        if pattern.search(message):
            return owner, cause
    failed = STEP_FAILED.search(message)
    if failed:
        what = failed["what"] if failed["what"][0].isupper() else "an error"
        return "model", f"{'an expression' if failed['expression'] else 'a step'} failed: {what}"
    return "model", "other"
