"""Tasks drawn without what they would run or wait for, given what Camunda 7 and SpiffWorkflow's own
modeler give them. Part of deployment (see deployment.py).

- A script task with no script at all (no <script>, no camunda:resource) is what SpiffWorkflow's
  modeler leaves when nobody wrote one; SpiffWorkflow's parser refuses it. It has nothing to do, so it
  runs the script `pass` (a case passes it at once). A script task naming an external resource
  (camunda:resource) stays refused: that script exists, but not in the upload.
- A receive task that names no message waits, in Camunda 7, until something triggers it. Here a case
  continues on a message, so the task waits for a message named after the task's id: the tree the
  parser reads gets a <message> of that name, and the warning says which name to send.

The stored source keeps the file as uploaded.
"""
from __future__ import annotations

from lxml import etree

from .deploy_problems import DeployProblem, describe
from .deploy_schema import BPMN_NS, CAMUNDA_NS

_B = f"{{{BPMN_NS}}}"


def give_tasks_defaults(filename: str, tree: etree._ElementTree) -> list[DeployProblem]:
    """Rewrite, in place, the empty script tasks and the receive tasks without a message of the executable
    processes; returns a warning for each."""
    root = tree.getroot()
    taken = {str(e.get("id")) for e in root.iter() if isinstance(e.tag, str) and e.get("id")}
    warnings = []
    for process in root.iterchildren(f"{_B}process"):
        if process.get("isExecutable", "true") != "true":
            continue
        for task in list(process.iter(f"{_B}scriptTask")):
            script = task.find(f"{_B}script")
            if (script is None or not (script.text or "").strip()) and not task.get(f"{{{CAMUNDA_NS}}}resource"):
                warnings.append(_empty_script(filename, task))
        for task in process.iter(f"{_B}receiveTask"):
            if not _names_message(task):
                warnings.append(_implicit_message(filename, root, task, taken))
    return warnings


def _empty_script(filename: str, task: etree._Element) -> DeployProblem:
    warning = DeployProblem(filename, f"{describe(task)} has no script, so it does nothing: a case passes it at once; "
                                      "write its Python code in the task to have it do something",
                            task.sourceline, task.get("id"))
    # The script `pass`, not a plain task: this engine waits for someone to complete a plain task.
    script = task.find(f"{_B}script")
    if script is None:
        script = etree.SubElement(task, f"{_B}script")
    script.text = "pass"
    return warning


def _names_message(task: etree._Element) -> bool:
    if task.get("messageRef"):
        return True
    definition = task.find(f"{_B}messageEventDefinition")
    return definition is not None and bool(definition.get("messageRef"))


def _implicit_message(filename: str, root: etree._Element, task: etree._Element, taken: set[str]) -> DeployProblem:
    task_id = task.get("id") or ""
    message_id, number = f"{task_id}_implicit_message", 1
    while message_id in taken:
        number += 1
        message_id = f"{task_id}_implicit_message_{number}"
    taken.add(message_id)
    # Inserted first among the root elements: the parser finds messages anywhere in the file.
    root.insert(0, etree.Element(f"{_B}message", id=message_id, name=task_id))
    definition = task.find(f"{_B}messageEventDefinition")
    (definition if definition is not None else task).set("messageRef", message_id)
    return DeployProblem(filename, f"{describe(task)} names no message: as in Camunda 7 it waits until it is "
                                   f"triggered, here by a message named '{task_id}' (its id), sent to the case or "
                                   "routed by its name; set messageRef to a message (Camunda Modeler: "
                                   "Message) to choose the name", task.sourceline, task_id)
