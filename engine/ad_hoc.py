"""Ad-hoc subprocesses as BPMN describes them, over two gaps in SpiffWorkflow 3's support. Applied to each
spec restored from storage (spiff_setup.spec_from_dict), so versions deployed before run this way too.

- BPMN's completionCondition is optional: without one, the ad-hoc subprocess ends when its activities have.
  SpiffWorkflow evaluates the missing condition each time a path ends, and fails ("Not allowed source
  type"). A missing condition is read as "not yet" (False): the subprocess ends when its last path does.
- When a path ends while another still runs, SpiffWorkflow copies the subprocess's data into the running
  task and then removes a `data_objects` entry that SpiffWorkflow 3 no longer puts there (KeyError). The
  step is wrapped so that the entry is there to remove, and is gone again afterwards.
"""
from __future__ import annotations

from typing import Any

from SpiffWorkflow.bpmn.specs.bpmn_process_spec import AdHocSubprocessSpec, BpmnProcessSpec

_ENTRY = "data_objects"


def wire_ad_hoc(spec: BpmnProcessSpec) -> None:
    """Fill the gaps for an ad-hoc subprocess's spec (any other spec is left alone). Idempotent."""
    if not isinstance(spec, AdHocSubprocessSpec):
        return
    if not (spec.completion_condition or "").strip():
        spec.completion_condition = "False"
    for task_spec in spec.task_specs.values():
        event = task_spec.completed_event
        if event.is_connected(spec.path_complete):
            event.disconnect(spec.path_complete)
            event.connect(_path_complete, spec)


def _path_complete(workflow: Any, task: Any, spec: AdHocSubprocessSpec) -> None:
    added = _ENTRY not in workflow.data
    if added:
        workflow.data[_ENTRY] = {}
    try:
        spec.path_complete(workflow, task)
    finally:
        if added:
            workflow.data.pop(_ENTRY, None)
