"""Explaining SpiffWorkflow's parse failures: what it raises becomes a located problem saying what to change.
Part of deployment (see deployment.py)."""
from __future__ import annotations

import logging
import re

from lxml import etree
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException

from .deploy_files import BPMN_NS, Bundle
from .deploy_ids import designer_id
from .deploy_problems import DeployProblem, describe, kind, label, source_line

log = logging.getLogger(__name__)


def spiff_problem(bundle: Bundle, exc: Exception, default_file: str | None) -> DeployProblem:
    """A problem for anything the parser raised, located by the element id SpiffWorkflow names.

    Uploads are untrusted and the parser was not written for hostile or foreign input: besides its
    ValidationExceptions it raises KeyError, AttributeError, AssertionError, TypeError,
    NotImplementedError and RecursionError on diagrams it cannot handle. Every one of them means "this upload cannot be
    deployed", so all are turned into problems rather than 500s; the unexpected ones are logged with
    their traceback, because they may also point at a bug of ours.
    """
    raw_id = getattr(exc, "id", None)
    element_id = designer_id(raw_id) if raw_id else None
    exc_file = getattr(exc, "file_name", None) or None
    file, element = bundle.element(element_id, exc_file or default_file)
    file = file or exc_file or default_file
    raw = str(exc.args[0]) if exc.args else ""
    # TaskParser wraps any non-validation error as ValidationException(repr(error)); the original
    # is its __context__, and saying what it means beats showing its repr.
    cause = exc
    if isinstance(exc, ValidationException) and exc.__context__ is not None and raw == repr(exc.__context__):
        cause = exc.__context__
    what = _what(element, exc, element_id)
    unresolved = (_explain_missing_reference(what, element, bundle, file)
                  if isinstance(cause, (AssertionError, TypeError)) else None)

    if isinstance(cause, RecursionError):
        message = (f"the process is too long to parse in one piece (the path through {what} is too deep): "
                   "split it into call activities")
    elif isinstance(exc, ValidationException) and cause is exc:
        message = _explain_validation(raw, what, element, bundle, exc)
    elif unresolved:
        message = unresolved
    elif isinstance(cause, NotImplementedError) and "Unsupported Catch Event" in str(cause.args[:1]):
        message = (f"{what} has no event definition the engine can wait for: give the boundary event a timer, "
                   "message, signal, error, escalation, conditional or cancel definition")
    else:
        log.warning("unexpected parser failure in %s (%s)", file, element_id, exc_info=exc)
        message = (f"the engine could not read {what if element_id else 'this diagram'} (SpiffWorkflow failed "
                   f"with {type(cause).__name__}); this construct is not supported: simplify or remove it")
    return DeployProblem(file, message, source_line(element), element_id)


def _what(element: etree._Element | None, exc: Exception, element_id: str | None) -> str:
    tag = getattr(exc, "tag", None) or None
    if element is not None:
        return describe(element)
    if element_id:
        return f"{kind(tag=tag)} {label(name=getattr(exc, 'name', None), element_id=element_id)}"
    return "the diagram"


# How SpiffWorkflow's fixed messages start, and what to tell the designer instead; {what} names the
# element ("exclusive gateway 'Approved?' (Gateway_1)"). Messages with variable parts follow below.
_REWRITES = [
    ("No start event found",
     "{what} has no start event: add one (a plain start event, or a message or timer start event)"),
    ("A SubWorkflow Must contain an End event", "{what} has no end event: add one inside the subprocess"),
    ("Multiple outgoing flows are not supported",
     "{what} has several outgoing sequence flows, and the engine does not split implicitly after an activity "
     "or event: lead them into a parallel gateway (take all paths) or an exclusive gateway with conditions "
     "(take one path)"),
    ("Non-default exclusive outgoing sequence flow without condition",
     "{what} leaves a gateway without a condition and is not the default flow of that gateway: give it a "
     "condition (a Python expression) or make it the default flow"),
    ("Time Specification Error. Unknown Time Specification",
     "{what} is a timer without a date, duration or cycle: set one, as a Python expression (e.g. \"PT1H\" "
     "in quotes)"),
    ("A multiinstance task must specify a cardinality",
     "{what} is multi-instance but says neither how many instances nor over what: set a loop cardinality, "
     "camunda:collection (with camunda:elementVariable), or loopDataInputRef (with inputDataItem)"),
    ("Invalid Script Task",
     "{what} has no inline script: write the Python code in the task itself (external script resources are "
     "not supported)"),
    ("There is no support implemented for this task type",
     "{what} is of a type this engine does not support: model the behaviour with tasks, events, gateways "
     "(exclusive, parallel, inclusive, event-based) and subprocesses"),
    ('No "calledElement" attribute for Call Activity',
     "{what} does not say which process it calls: set calledElement to the id of that process"),
    ("Conditional event definition with missing condition",
     "{what} is a conditional event without a condition: set its condition (a Python expression)"),
]


def _explain_validation(raw: str, what: str, element: etree._Element | None, bundle: Bundle,
                        exc: ValidationException) -> str:
    """SpiffWorkflow's ValidationException texts, each rewritten to say what to change."""
    raw = " ".join(raw.split())
    for start, rewrite in _REWRITES:
        if raw.startswith(start):
            return rewrite.format(what=what)
    if raw.startswith("Exactly one start event is required in a SubWorkflow Task"):
        found = re.search(r"found (\d+)", raw)
        return (f"{what} must contain exactly one start event, but has {found.group(1) if found else 'several'}: "
                "give the subprocess a single plain start event (a collapsed subprocess needs its inner flow "
                "modelled too)")
    if raw.startswith("Time Specification Error"):
        detail = raw[len("Time Specification Error."):].strip().rstrip(".")
        return f"the timer of {what} cannot be read ({detail}): write its expression in Python, e.g. \"PT1H\""
    if raw.startswith("Cannot resolve dataInputAssociation") or raw.startswith("Cannot resolve dataOutputAssociation"):
        return _explain_data_association(raw, what, element)
    if raw.startswith("When looking for a task spec"):
        target = re.search(r"\(([^)]*)\)\s*$", raw)
        return (f"{what} has an outgoing sequence flow to '{target.group(1) if target else '?'}', which is not a "
                "flow node of the same process: reconnect the flow to an element of the process, or delete it")
    duplicate = re.match(r"Duplicate process ID: (.*)", raw)
    if duplicate:
        files = bundle.files_defining(duplicate.group(1))
        where = f" (in {' and '.join(files)})" if len(files) > 1 else ""
        return (f"the id '{duplicate.group(1)}' names more than one process or subprocess{where}: ids of "
                "processes and subprocesses must be unique within one deployment; rename one (and the call "
                "activities that call it)")
    missing_dmn = re.match(r'No DMN Diagram available with id "([^"]*)"', raw)
    if missing_dmn:
        return _explain_missing_decision(missing_dmn.group(1), what, bundle)
    missing_id = re.match(r"(Message|Signal|Error|Escalation|Correlation|Data Store) identifier is missing", raw)
    if missing_id:
        kind = missing_id.group(1).lower()
        return f"a {kind} element has no id: give every <{kind}> an id"
    # A message we have no better words for: SpiffWorkflow's own, naming the element.
    return f"{what}: {raw.rstrip('.')}" if getattr(exc, "id", None) else raw.rstrip(".")


def _explain_data_association(raw: str, what: str, element: etree._Element | None) -> str:
    """The exception's text is a repr of an lxml element; name the unresolved reference instead."""
    incoming = raw.startswith("Cannot resolve dataInputAssociation")
    path = "dataInputAssociation/bpmn:sourceRef" if incoming else "dataOutputAssociation/bpmn:targetRef"
    refs = []
    if element is not None:
        refs = [(ref.text or "").strip() for ref in element.xpath(f"./bpmn:{path}", namespaces={"bpmn": BPMN_NS})]
    named = ", ".join(f"'{ref}'" for ref in refs if ref) or "an element"
    direction = "reads from" if incoming else "writes to"
    return (f"{what} {direction} {named} through a data association, but that is not a data object of this "
            "process (data stores, and data objects of other processes or pools, are not supported): "
            "connect the association to a data object reference of the same process, or remove it")


def _explain_missing_reference(what: str, element: etree._Element | None, bundle: Bundle,
                               file: str | None) -> str | None:
    """Name the messageRef/signalRef/errorRef/escalationRef of `element` that points at nothing.

    SpiffWorkflow does not check these: an unresolved one ends in an AssertionError from its `one()`
    helper or a TypeError from a mistyped call on its error path (corpus: Trisotech writes prefixed
    references such as 'semantic:sid-…', which match no id). None when every reference resolves.
    """
    if element is None:
        return None
    for holder in [element, *element.iter()]:
        for attribute in ("messageRef", "signalRef", "errorRef", "escalationRef"):
            ref = holder.get(attribute)
            if ref and bundle.in_file(file, ref) is None:
                kind = attribute[: -len("Ref")]
                return (f"{what} refers to {kind} '{ref}', which is not defined in this file: point {attribute} "
                        f"at the id of a <bpmn:{kind}> (without a namespace prefix), or define it")
    return None


def _explain_missing_decision(decision_id: str, what: str, bundle: Bundle) -> str:
    # SpiffWorkflow indexes a DMN file by its first decision only.
    in_files = [name for name in bundle.files_defining(decision_id) if name in bundle.dmn]
    if in_files:
        return (f"{what} calls decision '{decision_id}', which is not the first decision of {in_files[0]}; "
                "the engine can call only the first decision of each DMN file: move it to a file of its own")
    available = []
    for tree in bundle.dmn.values():
        first = tree.getroot().find("{*}decision")
        if first is not None and first.get("id"):
            available.append(first.get("id"))
    listed = ", ".join(f"'{d}'" for d in available) or "none"
    return (f"{what} calls decision '{decision_id}', which no .dmn file of this upload defines (decisions in the "
            f"upload: {listed}): add the DMN file to the upload, or correct camunda:decisionRef")


