"""Pre- and post-scripts as SpiffWorkflow's modeler writes them, run by the Camunda flavour this engine
parses with.

The SpiffWorkflow modeler lets a designer put a Python script on any task that runs before the task
(`spiffworkflow:preScript`: e.g. what a form shows) and after it (`spiffworkflow:postScript`: e.g. what the
next step reads). The Camunda flavour read neither, so what they set was silently missing further on. At
deploy the two scripts are kept with the task's spec in its `extensions` (which the serializer stores); when
a spec is restored, the task's hooks run them with the case's sandboxed script engine, as SpiffWorkflow's own
flavour does: the pre-script as the task is reached, the post-script as it completes. A script that
fails is an incident at the task, like a failing script task.
"""
from __future__ import annotations

from types import MethodType
from typing import Any

from lxml import etree
from SpiffWorkflow.bpmn.specs.bpmn_process_spec import BpmnProcessSpec
from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import LoopTask
from SpiffWorkflow.util.task import TaskState

from .deploy_schema import BPMN_NS, SPIFF_NS

PRE_SCRIPT = "spiffworkflow:preScript"
POST_SCRIPT = "spiffworkflow:postScript"
_ON_INSTANCES = f"{{{SPIFF_NS}}}scriptsOnInstances"
_PRE_SCRIPT_FAILED = "pre_script_failed"
_LOOPS = (f"{{{BPMN_NS}}}multiInstanceLoopCharacteristics", f"{{{BPMN_NS}}}standardLoopCharacteristics")


def keep_task_scripts(spec: BpmnProcessSpec, process_node: etree._Element) -> None:
    """Put each task's pre- and post-script from the XML into its spec's extensions, in place. A loop or
    multi-instance activity runs them once around all its instances, or, with
    spiffworkflow:scriptsOnInstances="true" on its loop characteristics, in each instance (as SpiffWorkflow's
    flavour does): the spec that does not run them is left without."""
    elements = {element.get("id"): element for element in process_node.iter()
                if isinstance(element.tag, str) and element.get("id")}
    instances = {task_spec.task_spec for task_spec in spec.task_specs.values() if isinstance(task_spec, LoopTask)}
    for task_spec in spec.task_specs.values():
        element = elements.get(getattr(task_spec, "bpmn_id", None))
        if element is None:
            continue
        if isinstance(task_spec, LoopTask) or task_spec.name in instances:
            on_instances = any(loop.get(_ON_INSTANCES) == "true" for loop in element.iterchildren(*_LOOPS))
            if on_instances == isinstance(task_spec, LoopTask):
                continue
        scripts = {}
        for key in (PRE_SCRIPT, POST_SCRIPT):
            found = element.find(f"{{{BPMN_NS}}}extensionElements/{{{SPIFF_NS}}}{key.split(':')[1]}")
            if found is not None and (found.text or "").strip():
                scripts[key] = found.text or ""
        if scripts:
            task_spec.extensions = {**(getattr(task_spec, "extensions", None) or {}), **scripts}


def task_scripts(task_spec: Any) -> tuple[str | None, str | None]:
    """(pre-script, post-script) of a task spec, as keep_task_scripts stored them."""
    extensions = getattr(task_spec, "extensions", None)
    if not isinstance(extensions, dict):
        return None, None
    return extensions.get(PRE_SCRIPT), extensions.get(POST_SCRIPT)


def run_task_scripts(spec: BpmnProcessSpec) -> None:
    """Make the tasks of a restored spec run their pre- and post-scripts. They are attached to the spec
    objects, not to classes: only tasks that have a script run one, and the serializer never sees them.
    The pre-script runs on the task's update event, which SpiffWorkflow emits when the task is reached, once
    it has its data and before its own hook goes on (as in SpiffWorkflow's flavour, where a multi-instance
    activity's pre-script may set the collection that hook then reads)."""
    for task_spec in spec.task_specs.values():
        pre, post = task_scripts(task_spec)
        if pre:
            task_spec.update_event.connect(_run_pre_script, pre)
        if post:
            task_spec._on_complete_hook = MethodType(_with_post_script(type(task_spec)._on_complete_hook, post),
                                                     task_spec)


def _run_pre_script(_workflow: Any, my_task: Any, script: str) -> None:
    try:
        _execute(my_task, script)
    except Exception:
        my_task.internal_data[_PRE_SCRIPT_FAILED] = True  # a retry reaches the task again (reach_again)
        raise


def reach_again(task: Any) -> bool:
    """Reach a task whose pre-script failed once more (a retry): its pre-script runs again, with the data the
    retry gave, and the task's own hook goes on as if it had just been reached. False for any other task,
    which a retry runs again as usual."""
    if not task.internal_data.pop(_PRE_SCRIPT_FAILED, False):
        return False
    task.task_spec._update(task)
    return True


def _with_post_script(complete_hook: Any, script: str) -> Any:
    def _on_complete_hook(self: Any, my_task: Any) -> None:
        _execute(my_task, script)
        complete_hook(self, my_task)
    return _on_complete_hook


def _execute(my_task: Any, script: str) -> None:
    try:
        my_task.workflow.script_engine.execute(my_task, script)
    except Exception:
        my_task._set_state(TaskState.ERROR)  # as SpiffWorkflow's own flavour does; the runner makes it an incident
        raise
