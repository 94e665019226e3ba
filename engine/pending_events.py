"""What a case waits for, one event at a time.

SpiffWorkflow reports each waiting task's event. A task that waits for any of several events (an event-based
gateway, a catch event with several definitions) has one MultipleEventDefinition, reported as a single event
of type "Multiple" with no name: a message sent to it would be refused as unawaited and its timer never
scheduled. So such a task's events are taken apart here, each reported as the task's own event would be.
"""
from __future__ import annotations

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.specs.event_definitions.multiple import MultipleEventDefinition
from SpiffWorkflow.bpmn.util import PendingBpmnEvent


def pending_events(workflow: BpmnWorkflow) -> list[PendingBpmnEvent]:
    pending: list[PendingBpmnEvent] = []
    for task in workflow.event_manager.tasks.values():
        definition = task.task_spec.event_definition
        parts = definition.event_definitions if isinstance(definition, MultipleEventDefinition) else [definition]
        pending.extend(part.details(task) for part in parts)
    return pending
