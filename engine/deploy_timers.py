"""Timer events drawn without a date, duration or cycle, run as what they can then be. Part of deployment
(see deployment.py).

Modelers export a timer's symbol without its time when nobody filled it in (the MIWG exports of
bpmn.io and Trisotech). SpiffWorkflow refuses every such timer. Where the missing time only means
"this never happens", the file deploys, and the warning names what never happens:

- a boundary timer never fires: it is removed from the tree the parser reads, with its outgoing flows,
  so its activity always completes normally and the path it starts never runs;
- an event subprocess started by such a timer never starts: it is removed;
- a timer after an event-based gateway never fires, while the gateway's other events still can: it is
  removed with the flow leading to it and the path it starts;
- a process's (or subprocess's) timer start event without a time is a plain start event: a case starts
  when it is started, as the designer could not have said when else.

An intermediate timer in the flow itself stays refused by the parser: a case would wait there forever.
The stored source keeps the file as uploaded.
"""
from __future__ import annotations

from lxml import etree

from .deploy_problems import DeployProblem, describe, label
from .deploy_schema import BPMN_NS

_B = f"{{{BPMN_NS}}}"
_TIMES = (f"{_B}timeDate", f"{_B}timeDuration", f"{_B}timeCycle")
_SET_ONE = "set a date, duration or cycle (a Python expression, e.g. \"PT1H\" in quotes) to have it fire"


def timers_without_time(filename: str, tree: etree._ElementTree) -> list[DeployProblem]:
    """Rewrite, in place, the timers of the executable processes that have no time and can run without one;
    returns a warning for each. Runs after deploy_implicit.py, so removed flows start nothing implicitly."""
    warnings: list[DeployProblem | None] = []
    for process in tree.getroot().iterchildren(f"{_B}process"):
        if process.get("isExecutable", "true") != "true":
            continue
        for definition in list(process.iter(f"{_B}timerEventDefinition")):
            if any(definition.find(time) is not None for time in _TIMES):
                continue
            event = definition.getparent()
            container = event.getparent() if event is not None else None
            if event is None or container is None or not _within(event, process):
                continue  # already removed, with an event subprocess
            if event.tag == f"{_B}boundaryEvent":
                warnings.append(_boundary(filename, event, container))
            elif event.tag == f"{_B}startEvent" and container.get("triggeredByEvent") == "true":
                warnings.append(_event_subprocess(filename, event, container))
            elif event.tag == f"{_B}startEvent":
                event.remove(definition)
                warnings.append(DeployProblem(
                    filename, f"{describe(event)} is a timer start event without a date, duration or cycle, so it "
                              "is run as a plain start event: a case starts when it is started; " + _SET_ONE,
                    event.sourceline, event.get("id")))
            elif event.tag == f"{_B}intermediateCatchEvent":
                warnings.append(_after_event_gateway(filename, event, container))
    return [warning for warning in warnings if warning is not None]


def _boundary(filename: str, event: etree._Element, container: etree._Element) -> DeployProblem:
    activity = next((e for e in container if e.get("id") == event.get("attachedToRef")), None)
    paths = _remove_with_outgoing(event, container)
    interrupts = event.get("cancelActivity", "true").strip().lower() != "false"
    attached = describe(activity) if activity is not None else "its activity"
    never = [f"it never interrupts {attached}, which always completes normally" if interrupts
             else f"it never fires while {attached} runs"]
    if paths:
        never.append(f"the path it starts (to {paths}) never runs")
    return DeployProblem(filename, f"{describe(event)} is a timer without a date, duration or cycle, so it never "
                                   f"fires: {', and '.join(never)}; {_SET_ONE}", event.sourceline, event.get("id"))


def _within(element: etree._Element, process: etree._Element) -> bool:
    current: etree._Element | None = element
    while current is not None and current is not process:
        current = current.getparent()
    return current is process


def _event_subprocess(filename: str, event: etree._Element, subprocess: etree._Element) -> DeployProblem:
    if len(subprocess.findall(f"{_B}startEvent")) > 1:  # another start event may still start it
        paths = _remove_with_outgoing(event, subprocess)
        after = f", and the path it starts (to {paths}) never runs" if paths else ""
        return DeployProblem(filename, f"{describe(event)} of event subprocess {label(subprocess)} is a timer "
                                       f"without a date, duration or cycle, so it never fires{after}; {_SET_ONE}",
                             event.sourceline, event.get("id"))
    parent = subprocess.getparent()
    if parent is not None:
        parent.remove(subprocess)
    return DeployProblem(filename, f"{describe(event)} starts event subprocess {label(subprocess)} on a timer without "
                                   "a date, duration or cycle, so the event subprocess never starts and "
                                   f"nothing in it runs; {_SET_ONE}", event.sourceline, event.get("id"))


def _after_event_gateway(filename: str, event: etree._Element, container: etree._Element) -> DeployProblem | None:
    """A timer that is one of an event-based gateway's events; None (left to the parser's refusal) for
    a timer in the flow itself, where a case would wait forever, or for a gateway it is the only event of."""
    incoming = [f for f in container.iterchildren(f"{_B}sequenceFlow") if f.get("targetRef") == event.get("id")]
    nodes = {e.get("id"): e for e in container if isinstance(e.tag, str) and e.get("id")}
    sources = [nodes.get(f.get("sourceRef")) for f in incoming]
    gateways = [g for g in sources if g is not None and g.tag == f"{_B}eventBasedGateway"]
    if not gateways or len(gateways) < len(sources):  # a flow from anything but an event-based gateway
        return None
    for gateway in gateways:
        others = [f for f in container.iterchildren(f"{_B}sequenceFlow")
                  if f.get("sourceRef") == gateway.get("id") and f.get("targetRef") != event.get("id")]
        if not others:
            return None
    for flow in incoming:
        _remove_flow(flow, container)
    paths = _remove_with_outgoing(event, container)
    after = f", and the path it starts (to {paths}) never runs" if paths else ""
    return DeployProblem(filename, f"{describe(event)} is a timer without a date, duration or cycle after "
                                   f"{describe(gateways[0])}, so it never fires: the gateway waits only for its "
                                   f"other events{after}; {_SET_ONE}", event.sourceline, event.get("id"))


def _remove_with_outgoing(event: etree._Element, container: etree._Element) -> str:
    """Remove the event and its outgoing flows; returns the targets of those flows, for the warning. What
    they lead to stays in the tree: the parser reads only what a start event leads to."""
    targets = []
    nodes = {e.get("id"): e for e in container if isinstance(e.tag, str) and e.get("id")}
    for flow in list(container.iterchildren(f"{_B}sequenceFlow")):
        if flow.get("sourceRef") == event.get("id"):
            target = nodes.get(flow.get("targetRef"))
            targets.append(label(target) if target is not None else f"'{flow.get('targetRef')}'")
            _remove_flow(flow, container)
    container.remove(event)
    return ", ".join(targets)


def _remove_flow(flow: etree._Element, container: etree._Element) -> None:
    """A flow, and the <incoming>/<outgoing> entries that name it."""
    flow_id = flow.get("id")
    for ref in list(container.iter(f"{_B}incoming", f"{_B}outgoing")):
        holder = ref.getparent()
        if (ref.text or "").strip() == flow_id and holder is not None:
            holder.remove(ref)
    container.remove(flow)
