"""How usm-engine configures SpiffWorkflow: one parser flavour, the matching serializer, and
instance state stored without its spec.

We use the Camunda flavour because process designers edit our files in Camunda Modeler: user tasks
name their form with `camunda:formKey`, business rule tasks their decision with `camunda:decisionRef`,
and `camunda:properties` are kept. Parser and serializer configuration must match.
"""
from __future__ import annotations

import logging
from copy import deepcopy
from typing import Any
from uuid import UUID

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.parser.BpmnParser import BpmnValidator, full_tag
from SpiffWorkflow.bpmn.parser.event_parsers import SendTaskParser
from SpiffWorkflow.bpmn.parser.task_parsers import ConditionalGatewayParser, GatewayParser
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.serializer.default.task_spec import BpmnTaskSpecConverter, MultiInstanceTaskConverter
from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter, WorkflowConverter
from SpiffWorkflow.bpmn.specs.bpmn_process_spec import BpmnProcessSpec
from SpiffWorkflow.bpmn.specs.defaults import ReceiveTask, SendTask, ServiceTask
from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import LoopTask
from SpiffWorkflow.camunda.parser import CamundaParser
from SpiffWorkflow.camunda.parser.event_parsers import CamundaEventDefinitionParser
from SpiffWorkflow.camunda.parser.task_spec import CAMUNDA_MODEL_NS, BusinessRuleTaskParser, CamundaTaskParser
from SpiffWorkflow.camunda.specs.business_rule_task import BusinessRuleTask

from .ad_hoc import wire_ad_hoc
from .spiff_scripts import run_task_scripts
from SpiffWorkflow.camunda.serializer.config import CAMUNDA_CONFIG

from . import joins, multi_instance, spiff_messages


def wire_loop_tasks(*specs: BpmnProcessSpec | None) -> None:
    """Connect multi-instance/loop children to their parent's merge step.

    The parser leaves this to the first child created in a process; a case restored around a cached
    spec in another process would otherwise never merge its children and stall silently.
    Idempotent, so it is safe on specs that are already wired.
    """
    for spec in specs:
        if spec is None:
            continue
        for task_spec in list(spec.task_specs.values()):
            if isinstance(task_spec, LoopTask):
                child = spec.task_specs[task_spec.task_spec]
                if not child.completed_event.is_connected(task_spec.merge_child):
                    child.completed_event.connect(task_spec.merge_child)


class SpeclessWorkflowConverter(BpmnWorkflowConverter):
    """Serializes a case without its spec; restores it around the cached spec objects.

    Specs are immutable per definition version, so storing them in every case row would only cost
    space and time (a spec is often larger than the instance).
    """

    def to_dict(self, workflow: BpmnWorkflow) -> dict[str, Any]:
        # BpmnWorkflowConverter.to_dict less the specs, in its order: calling it would serialize them only for
        # us to drop them, which was 45% of a save's serialization (BENCHMARKS.md).
        dct: dict[str, Any] = WorkflowConverter.to_dict(self, workflow)
        dct["subprocesses"] = self.mapping_to_dict(workflow.subprocesses)
        dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
        return dct

    def from_dict(self, dct: dict[str, Any], spec: BpmnProcessSpec | None = None,
                  subprocess_specs: dict[str, BpmnProcessSpec] | None = None) -> BpmnWorkflow:
        wire_loop_tasks(spec, *(subprocess_specs or {}).values())
        dct = dict(dct)
        workflow: BpmnWorkflow = self.target_class(spec, subprocess_specs, deserializing=True)
        workflow.tasks = self.mapping_from_dict(dct["tasks"], UUID, workflow=workflow)
        workflow.task_tree = workflow.tasks.get(UUID(dct["root"]))
        self.set_default_attributes(workflow, dct)
        self.subprocesses_from_dict(dct["subprocesses"], workflow)
        workflow.bpmn_events = self.registry.restore(dct.pop("bpmn_events", []))
        return workflow


def _config() -> dict[type, Any]:
    config = deepcopy(CAMUNDA_CONFIG)
    # Our joins replace SpiffWorkflow's under the same type names (joins.py says why).
    for ours in (joins.ParallelGateway, joins.InclusiveGateway):
        base = next(cls for cls in config if isinstance(cls, type) and cls.__name__ == ours.__name__)
        config[ours] = config.pop(base)
    # Multi-instance activities with a ceiling (multi_instance.py) keep the Camunda names too, but the parser
    # still makes the Camunda classes, so both stay known: registered after those, ours are what the
    # serializer restores a stored spec of that name as.
    for ours in (multi_instance.ParallelMultiInstanceTask, multi_instance.SequentialMultiInstanceTask):
        config[ours] = MultiInstanceTaskConverter
    # Message definitions with a catch's own variable (spiff_messages.py), under the flavour's class name.
    config[spiff_messages.MessageEventDefinition] = spiff_messages.MessageVariableConverter
    # Plain service tasks have no converter in the Camunda config.
    config[ServiceTask] = BpmnTaskSpecConverter
    config[BpmnWorkflow] = SpeclessWorkflowConverter
    return config


SERIALIZER = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(_config()))

# SpiffWorkflow logs every task state change at INFO, several lines per completion; the audit trail
# already records what matters, so under a server's INFO logging those lines would only cost time.
logging.getLogger("spiff").setLevel(logging.WARNING)
SERIALIZER_VERSION = SERIALIZER.VERSION

_validator: BpmnValidator | None = None


def xsd_validator() -> BpmnValidator:
    """Loading the BPMN XSDs costs milliseconds; do it once per process."""
    global _validator
    if _validator is None:
        _validator = BpmnValidator()
    return _validator


class MessageTaskParser(CamundaEventDefinitionParser, SendTaskParser, CamundaTaskParser):
    """Send and receive tasks as the Camunda flavour's message throw and catch. CamundaParser leaves them
    to the plain BPMN parser, whose message definition (and multi-instance classes) the Camunda
    serializer cannot store; this one makes the same Camunda message definition as message events,
    with the payload expression of camunda:expression, and the Camunda multi-instance classes.
    A send task with camunda:type="external" is, as in Camunda 7, a job for a worker: a service task."""

    def create_task(self) -> Any:
        if self.node.get(f"{{{CAMUNDA_MODEL_NS}}}type") == "external":
            return ServiceTask(self.spec, self.bpmn_id, **self.bpmn_attributes)
        return super().create_task()


class ServiceTaskParser(CamundaTaskParser):
    """Service tasks with the Camunda flavour's multi-instance classes (and camunda:collection), which the
    Camunda serializer stores; CamundaParser leaves them to the plain BPMN parser."""


class DecisionTaskParser(BusinessRuleTaskParser):
    """A business rule task that names no decision (camunda:decisionRef; deploy_files.py gives
    spiffworkflow:calledDecisionId to the parser as that) has, like a service task that is not external,
    nothing to run: it is made one, so that a case reaching it stops with the same incident (runner.py),
    and deploy_warnings.py says so at deploy. Drawings exported by other tools leave the decision out."""

    def create_task(self) -> Any:
        if self.get_decision_ref(self.node) is None:
            return ServiceTask(self.spec, self.bpmn_id, **self.bpmn_attributes)
        return super().create_task()

    @staticmethod
    def get_decision_ref(node: Any) -> str | None:
        # The parser also asks this of every business rule task when it lists a file's dependencies.
        return node.get(f"{{{CAMUNDA_MODEL_NS}}}decisionRef")


class Parser(CamundaParser):
    """The Camunda flavour with joins that fire once per round (joins.py), send, receive and service
    tasks parsed in that flavour too, and business rule tasks without a decision as service tasks."""

    OVERRIDE_PARSER_CLASSES = {
        **CamundaParser.OVERRIDE_PARSER_CLASSES,
        full_tag("parallelGateway"): (GatewayParser, joins.ParallelGateway),
        full_tag("inclusiveGateway"): (ConditionalGatewayParser, joins.InclusiveGateway),
        full_tag("sendTask"): (MessageTaskParser, SendTask),
        full_tag("receiveTask"): (MessageTaskParser, ReceiveTask),
        full_tag("serviceTask"): (ServiceTaskParser, ServiceTask),
        full_tag("businessRuleTask"): (DecisionTaskParser, BusinessRuleTask),
    }


def new_parser() -> Parser:
    """A fresh parser per deployment: one parser cannot take the same process twice."""
    return Parser()


def spec_to_dict(spec: BpmnProcessSpec) -> dict[str, Any]:
    return SERIALIZER.to_dict(spec)


def spec_from_dict(dct: dict[str, Any]) -> BpmnProcessSpec:
    spec: BpmnProcessSpec = SERIALIZER.from_dict(dct)
    wire_loop_tasks(spec)
    wire_ad_hoc(spec)
    run_task_scripts(spec)
    return spec


def workflow_to_dict(workflow: BpmnWorkflow) -> dict[str, Any]:
    return SERIALIZER.to_dict(workflow)


def workflow_from_dict(dct: dict[str, Any], spec: BpmnProcessSpec,
                       subprocess_specs: dict[str, BpmnProcessSpec]) -> BpmnWorkflow:
    return SERIALIZER.from_dict(dct, spec=spec, subprocess_specs=subprocess_specs)
