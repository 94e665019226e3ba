"""What a Camunda model says that this engine runs differently, told at deploy instead of found in a
case: warnings located like problems, and the few constructs that cannot run at all, refused.
Part of deployment (see deployment.py).

- Send tasks are message throws: one without a message sends nothing; one without camunda:expression
  sends the message name only. Sending the case data instead (what SpiffWorkflow would do) could hand
  everything a case holds to whoever starts on the message, so the designer chooses what goes. A send
  task with camunda:type="external" is a job for a worker, as in Camunda 7 (spiff_setup.py).
- A receive task without a message waits for a message named after its id (deploy_tasks.py).
- A service task that is not an external task (camunda:type="external") has no implementation here:
  a case reaching it stops with an incident. Java classes, expressions, connectors and Camunda 8 job
  types are named, so the designer knows what is not run. A business rule task that names no decision
  (MIWG and other exports leave the implementation out) is the same: a task with nothing to run. Each
  warning names the topic the server's opt-ins (java_tasks.py) would make it an external task on.
- Who completes a user task is decided by its lane (the lane's role, projections.lane_role), not by
  camunda:assignee or candidate groups and users; and forms are JSON Schema files, not Camunda's
  embedded, generated or deployed forms.
- Variable mappings (camunda:inputOutput, camunda:in and camunda:out) and listeners are Camunda 7
  features this engine does not apply; each is named, so nothing silently behaves otherwise.
"""
from __future__ import annotations

from lxml import etree

from .deploy_problems import DeployProblem, describe
from .deploy_schema import BPMN_NS, CAMUNDA_NS
from .java_tasks import JAVA_ATTRIBUTES, topic_of, unimplemented_topic
from .projections import lane_role
from .worker_tasks import worker_topic

ZEEBE_NS = "http://camunda.org/schema/zeebe/1.0"
_ASSIGNMENT = ("assignee", "candidateGroups", "candidateUsers")
JSON_FORM = ".json"


def camunda_findings(filename: str, tree: etree._ElementTree) -> tuple[list[DeployProblem], list[DeployProblem]]:
    """(problems, warnings) for the send and service tasks of the executable processes, and for
    the Camunda extensions in them that this engine does not apply."""
    problems: list[DeployProblem] = []
    warnings: list[DeployProblem] = []
    for process in tree.getroot().iterchildren(f"{{{BPMN_NS}}}process"):
        # SpiffWorkflow's ProcessParser takes a process without isExecutable to be executable.
        if process.get("isExecutable", "true") != "true":
            continue
        for task in process.iter(f"{{{BPMN_NS}}}sendTask"):
            if task.get(f"{{{CAMUNDA_NS}}}type") == "external":
                continue  # a job for a worker, like an external service task (spiff_setup.py)
            warning = _send_task_warning(filename, task)
            if warning is not None:
                warnings.append(warning)
        for task in process.iter(f"{{{BPMN_NS}}}serviceTask"):
            if task.get(f"{{{CAMUNDA_NS}}}type") != "external" and worker_topic(task) is None:  # worker_tasks.py
                warnings.append(DeployProblem(
                    filename, f"{describe(task)} has no implementation this engine runs{_not_run(task)}: a case "
                              "that reaches it stops with an incident; make it an external task "
                              "(camunda:type=\"external\" with a camunda:topic) that a worker completes"
                              f"{_opt_in(task)}", task.sourceline, task.get("id")))
        for task in process.iter(f"{{{BPMN_NS}}}businessRuleTask"):
            if not task.get(f"{{{CAMUNDA_NS}}}decisionRef"):
                warnings.append(DeployProblem(
                    filename, f"{describe(task)} names no decision, so it has nothing to run{_not_run(task)}: a case "
                              "that reaches it stops with an incident; set camunda:decisionRef to the id of a "
                              "decision in a .dmn file of this upload (Camunda Modeler: Implementation \"DMN\", "
                              f"Decision reference){_opt_in(task)}", task.sourceline, task.get("id")))
        warnings += _not_applied(filename, process)
    return problems, warnings


# Camunda 7 extensions that change what a step sees or does, which this engine does not apply.
_NOT_APPLIED = {
    "inputOutput": "maps variables with camunda:inputOutput, which this engine does not apply: the step reads "
                   "and writes the case data itself",
    "in": "passes variables with camunda:in, which this engine does not apply: the called process starts with "
          "all of the case data",
    "out": "takes variables back with camunda:out, which this engine does not apply: the case gets all of the "
           "called process's data back",
    "executionListener": "has a camunda:executionListener (Camunda 7 code run on its events), which this engine "
                         "does not run",
    "taskListener": "has a camunda:taskListener (Camunda 7 code run on its events), which this engine does not run",
}


def _not_applied(filename: str, process: etree._Element) -> list[DeployProblem]:
    """A warning per element and kind of Camunda extension in it that is not applied."""
    warnings = []
    for holder in process.iter(f"{{{BPMN_NS}}}extensionElements"):
        owner = holder.getparent()
        if owner is None:
            continue
        kinds = dict.fromkeys(etree.QName(e).localname for e in holder.iterchildren(f"{{{CAMUNDA_NS}}}*"))
        for kind_of in kinds:
            if kind_of in _NOT_APPLIED:
                warnings.append(DeployProblem(filename, f"{describe(owner)} {_NOT_APPLIED[kind_of]}",
                                              owner.sourceline, owner.get("id")))
    return warnings


def _send_task_warning(filename: str, task: etree._Element) -> DeployProblem | None:
    message_ref = _message_ref(task)
    if message_ref is None:
        return DeployProblem(filename, f"{describe(task)} names no message, so it sends nothing and the process "
                                       f"goes straight on{_not_run(task)}: set messageRef to the message to send",
                             task.sourceline, task.get("id"))
    if _payload_expression(task):
        return None
    message = next((m for m in task.getroottree().getroot().iterchildren(f"{{{BPMN_NS}}}message")
                    if m.get("id") == message_ref), None)
    name = message.get("name") if message is not None else None
    return DeployProblem(filename, f"{describe(task)} sends message '{name or message_ref}' with its name only, no "
                                   "data: to send data, set camunda:expression to a Python expression of it (e.g. "
                                   "{'order': order}); the case data is never sent whole",
                         task.sourceline, task.get("id"))


def _message_ref(task: etree._Element) -> str | None:
    """The message a send or receive task names, on itself or (as SpiffWorkflow also reads it) on a
    message event definition inside it."""
    if task.get("messageRef"):
        return task.get("messageRef")
    definition = task.find(f"{{{BPMN_NS}}}messageEventDefinition")
    if definition is None:
        return None
    return definition.get("messageRef") or None


def _payload_expression(task: etree._Element) -> str | None:
    """camunda:expression where the Camunda flavour reads it: on the element that names the message."""
    holder = task if task.get("messageRef") else task.find(f"{{{BPMN_NS}}}messageEventDefinition")
    if holder is None:
        return None
    return (holder.get(f"{{{CAMUNDA_NS}}}expression") or "").strip() or None


def _opt_in(task: etree._Element) -> str:
    """The topic a server's opt-in (java_tasks.py) gives a task with nothing to run: the settings are read
    when a version is loaded, not known at deploy, so the warning says what each would make of it."""
    java = topic_of(task) if etree.QName(task).localname == "serviceTask" else None
    variable, topic = (("USM_JAVA_AS_EXTERNAL_TASKS", java) if java else
                       ("USM_UNIMPLEMENTED_AS_EXTERNAL_TASKS", unimplemented_topic(task)))
    return f"; a server run with {variable} makes it an external task on the topic '{topic}' instead" if topic else ""


def _not_run(task: etree._Element) -> str:
    """' (its camunda:class 'x' is Camunda 7 Java, not run here)': what the model meant to run instead."""
    for attribute in JAVA_ATTRIBUTES:
        value = task.get(f"{{{CAMUNDA_NS}}}{attribute}")
        if value and not (attribute == "expression" and etree.QName(task).localname == "sendTask"):
            return f" (its camunda:{attribute} '{value}' is Camunda 7 Java, not run here)"
    if task.find(f"{{{BPMN_NS}}}extensionElements/{{{CAMUNDA_NS}}}connector") is not None:
        return " (its camunda:connector is a Camunda 7 connector, not run here)"
    job = task.find(f"{{{BPMN_NS}}}extensionElements/{{{ZEEBE_NS}}}taskDefinition")
    if job is not None:
        return f" (its zeebe:taskDefinition type '{job.get('type') or ''}' is a Camunda 8 job, not run here)"
    decision = task.find(f"{{{BPMN_NS}}}extensionElements/{{{ZEEBE_NS}}}calledDecision")
    if decision is not None:
        return f" (its zeebe:calledDecision '{decision.get('decisionId') or ''}' is Camunda 8's, not read here)"
    return ""


def user_task_warnings(filename: str | None, element: etree._Element, lane: str | None,
                       form_key: str | None) -> list[DeployProblem]:
    """Who may complete a user task, and which form it shows, where the model says more than the engine
    does. `lane` is the lane SpiffWorkflow put the task in; `form_key` its camunda:formKey."""
    warnings = []
    role = lane_role(lane)
    for attribute in _ASSIGNMENT:
        value = (element.get(f"{{{CAMUNDA_NS}}}{attribute}") or "").strip()
        named = [part.strip() for part in value.split(",") if part.strip()]
        if not named or all(lane_role(part) == role for part in named):
            continue
        decides = (f"its lane '{lane}' (role '{role}') decides who completes the task" if lane else
                   "its lane decides who completes the task, and it is in no lane, so only the system role may: "
                   "put it in a lane named after the role that should")
        warnings.append(DeployProblem(filename, f"{describe(element)} names camunda:{attribute} '{value}', which "
                                                f"this engine does not assign tasks by: {decides}",
                                      element.sourceline, element.get("id")))
    fields = element.findall(f"{{{BPMN_NS}}}extensionElements/{{{CAMUNDA_NS}}}formData/{{{CAMUNDA_NS}}}formField")
    if form_key and not form_key.lower().endswith(JSON_FORM):
        shown = f"names the form '{form_key}', which this engine does not show"
    elif fields and not form_key:
        shown = f"defines {len(fields)} form field{'s' if len(fields) != 1 else ''} in camunda:formData, which " \
                "this engine does not show or check"
    else:
        return warnings
    warnings.append(DeployProblem(filename, f"{describe(element)} {shown}: the task takes any data; to check what "
                                            "is entered, set camunda:formKey to a JSON Schema file of the upload "
                                            f"(e.g. {_example_form(element)})",
                                  element.sourceline, element.get("id")))
    return warnings


def _example_form(element: etree._Element) -> str:
    words = "".join(c if c.isalnum() else " " for c in element.get("name") or "").lower().split()
    return "-".join(words[:3] or ["form"]) + ".schema.json"
