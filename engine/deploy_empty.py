"""Processes with nothing to run: black-box pools, empty processes, and processes holding only event
subprocesses. Part of deployment (see deployment.py).

Modelers write a <process> for every pool, also for a pool drawn collapsed (a "black box": a partner
whose inside is not modelled) and for a pool nobody filled in; bpmn-moddle's examples are processes
holding only extension elements. SpiffWorkflow refuses each of them for having no start event, which
made a whole file undeployable for a process that is documentation. So before it parses the file:

- beside a process that has something to run (in the same file, executable or not), each process with
  nothing to run is set aside as documentation: marked not executable in the tree the parser reads,
  so it is not deployed as a definition;
- when nothing in the file has anything to run, each such executable process gets an implicit start
  event leading to an end event, so a case on it completes as soon as it starts (as BPMN 2.0 runs a
  process in which nothing holds a token). A process holding only event subprocesses is the same: an
  event subprocess runs only while a case is in its process, and nothing keeps a case there, so they
  are removed from the tree the parser reads (they could never start) and the warning names them.

A process that a call activity of the file calls is never set aside: the call would find nothing.
It completes at once instead. The stored source keeps the file as uploaded.
"""
from __future__ import annotations

from lxml import etree

from .deploy_implicit import FLOW_NODES, add_element, connect
from .deploy_problems import DeployProblem, label
from .deploy_schema import BPMN_NS

_B = f"{{{BPMN_NS}}}"
# What runs in a process besides the flow nodes a token moves through.
_RUNNABLE = FLOW_NODES | {f"{_B}startEvent", f"{_B}boundaryEvent"}


def set_empty_processes_aside(filename: str, tree: etree._ElementTree) -> list[DeployProblem]:
    """Set aside, in place, each process of the file with nothing to run, or make it complete at once
    when nothing in the file has anything to run; returns a warning for each."""
    root = tree.getroot()
    processes = list(root.iterchildren(f"{_B}process"))
    warnings = _set_empty_event_subprocesses_aside(filename, processes)
    idle = [process for process in processes if not _runs_something(process)]
    if not idle:
        return warnings
    something_runs = len(idle) < len(processes)
    called = {activity.get("calledElement") for activity in root.iter(f"{_B}callActivity")}
    taken = {str(e.get("id")) for e in root.iter() if isinstance(e.tag, str) and e.get("id")}
    for process in idle:
        if process.get("isExecutable", "true") != "true":
            continue  # never deployed anyway
        if something_runs and process.get("id") not in called:
            process.set("isExecutable", "false")
            only_event_subprocesses = process.find(f"{_B}subProcess") is not None
            nothing = _nothing(process, only_event_subprocesses)
            warnings.append(_warning(filename, process, f"{nothing}, so it is set aside as documentation "
                                     "(a black-box pool or an empty process): it is not deployed as a definition "
                                     "and no case can start on it; model its flow (a start event and what follows) "
                                     "to run it"))
            continue
        removed = _remove_event_subprocesses(process)
        start = add_element(process, "startEvent", taken, process.get("id"))
        connect(process, start, add_element(process, "endEvent", taken, process.get("id")), taken)
        never = (f"; its event subprocesses {', '.join(removed)} can only start while a case is in the process, "
                 "so they never run" if removed else "")
        warnings.append(_warning(filename, process, f"{_nothing(process, bool(removed))}, so a case on it completes "
                                 f"as soon as it starts{never}; model its flow (a start event and what follows) to "
                                 "have it do something"))
    return warnings


def _set_empty_event_subprocesses_aside(filename: str, processes: list[etree._Element]) -> list[DeployProblem]:
    """An event subprocess with nothing in it (not even the start event that would trigger it) never
    starts and has nothing to do: removed, in place, with a warning, instead of refusing the file."""
    warnings = []
    for process in processes:
        if process.get("isExecutable", "true") != "true":
            continue
        for subprocess in list(process.iter(f"{_B}subProcess")):
            parent = subprocess.getparent()
            if subprocess.get("triggeredByEvent") != "true" or _runs_something(subprocess) or parent is None:
                continue
            parent.remove(subprocess)
            warnings.append(_warning(filename, subprocess, f"event subprocess {label(subprocess)} is empty (no start "
                                     "event, nothing inside), so nothing can start it and it is set aside as "
                                     "documentation; model its start event and flow to have it run"))
    return warnings


def _runs_something(process: etree._Element) -> bool:
    return any(child.tag in _RUNNABLE and child.get("triggeredByEvent") != "true" for child in process)


def _nothing(process: etree._Element, only_event_subprocesses: bool = False) -> str:
    what = "holds nothing but event subprocesses" if only_event_subprocesses else "has nothing to run (no flow node)"
    return f"process {label(process)} {what}"


def _remove_event_subprocesses(process: etree._Element) -> list[str]:
    removed = []
    for child in list(process):
        if child.tag == f"{_B}subProcess" and child.get("triggeredByEvent") == "true":
            removed.append(label(child))
            process.remove(child)
    return removed


def _warning(filename: str, process: etree._Element, message: str) -> DeployProblem:
    return DeployProblem(filename, message, process.sourceline, process.get("id"))
