"""Multi-instance activities with a ceiling on their instances (EngineSettings.max_instances).

SpiffWorkflow creates every instance of a parallel multi-instance activity as a task the moment the
activity begins, and the case stores them all: 100,000 instances took 16 s and 408 MB of database, a
million killed the worker. So the number an activity asks for (its loop cardinality, or the length of
its collection) is checked before any instance exists: at deploy time when the cardinality is a literal
(deploy_process.py), and here, as the activity begins, otherwise.

An activity that asks for more begins no instance: its task is put in ERROR, noting what it asked for,
and the runner makes that the case's incident. It is not raised, because it happens inside the
completion of the step before, and an exception there would leave that step's other successors (the
other branches of a parallel split) never started. A retry begins the activity again with the retry's
data; so does one after any other failure as the activity began (a cardinality that does not evaluate,
a collection that is missing), which SpiffWorkflow alone would leave stuck.

The classes keep the names of the Camunda flavour's, so stored specs restore into them unchanged. The
parser still makes SpiffWorkflow's own, which are only serialized (spiff_setup.py registers both).
"""
from __future__ import annotations

import ast
from collections.abc import Iterable, Sized
from typing import Any, ClassVar

from SpiffWorkflow.bpmn.exceptions import WorkflowDataException
from SpiffWorkflow.bpmn.specs.bpmn_process_spec import BpmnProcessSpec
from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import MultiInstanceTask
from SpiffWorkflow.camunda.specs.multiinstance_task import ParallelMultiInstanceTask as _CamundaParallel
from SpiffWorkflow.camunda.specs.multiinstance_task import SequentialMultiInstanceTask as _CamundaSequential
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState

from .settings import EngineSettings

# Internal data of a multi-instance task that failed as it began, so a retry begins it again instead of
# running it (running it would complete it without a single instance).
BEGIN_AGAIN = "begin_again"
# ... and of one refused for asking too many: {"asked", "limit", and "cardinality" or "collection"}.
REFUSED = "instances_refused"


class _BoundedInstances(MultiInstanceTask):
    """What both kinds share. Based on SpiffWorkflow's multi-instance class so that super() in the
    subclasses below reaches the Camunda flavour's methods, then SpiffWorkflow's."""

    # A setting, not part of the definition: the spec cache gives each spec it loads the engine's own
    # (blueprints.py), and the serializer does not store it.
    max_instances: int = EngineSettings.max_instances
    # The Camunda flavour's class, whose beginning the standard form skips. A class object (not `type`), so
    # that mypy accepts it as super()'s first argument.
    _camunda_flavour: ClassVar[type[MultiInstanceTask]]

    def _update_hook(self, my_task: Task) -> bool | None:
        my_task.internal_data.pop(REFUSED, None)
        my_task.internal_data.pop(BEGIN_AGAIN, None)
        try:
            ready: bool | None = self._begin(my_task)
        except Exception:
            if next(self._instances(my_task), None) is None:  # with instances begun, beginning again would double them
                _did_not_begin(my_task)
            raise
        if REFUSED in my_task.internal_data:
            # ERROR also keeps it out of SpiffWorkflow's updates of waiting tasks, which would ask again.
            _did_not_begin(my_task)
            return False
        return ready

    def _begin(self, my_task: Task) -> bool | None:
        """SpiffWorkflow's beginning. A spec in BPMN's standard form (a collection and no cardinality,
        standard_loops.py) skips the Camunda flavour's step, which rewrites the spec as if the collection
        were `camunda:collection` (input and output at once) and fails without an output. A Camunda spec
        that step already rewrote has that form too, and skipping the step again changes nothing."""
        if self._standard_form():
            return super(self._camunda_flavour, self)._update_hook(my_task)
        return super()._update_hook(my_task)

    def _standard_form(self) -> bool:
        return self.cardinality is None and self.data_input is not None

    def merge_child(self, workflow: Any, child: Task) -> None:
        # Without an output collection SpiffWorkflow merges an instance's whole data into the activity's,
        # its input item too, and the next instance then fails on an item that "already exists". In BPMN
        # the item is the instance's own: it is not merged.
        if self._standard_form() and self.data_output is None and self.input_item is not None:
            child.data.pop(self.input_item.bpmn_id, None)
        # An instance that did not set its output item (a plain task, a script that leaves it out) adds
        # null to the output collection, as Camunda 8's outputElement does; SpiffWorkflow fails the case.
        if self.data_output is not None and self.output_item is not None and not self.output_item.exists(child):
            child.data[self.output_item.bpmn_id] = None
        super().merge_child(workflow, child)

    def begin_again(self, my_task: Task) -> None:
        """Begin again after failing to, with the data the task holds now (a retry's merged in).
        Beginning inherits the data of the step before anew, so that step is given this data first."""
        my_task.parent.data.update(my_task.data)
        my_task._set_state(TaskState.WAITING)
        self._update(my_task)

    def _refused(self, my_task: Task, asked: Any, counted: dict[str, str]) -> bool:
        """Whether `asked` instances are too many; if so, noted on the task for the runner's incident."""
        if not isinstance(asked, int) or asked <= self.max_instances:
            return False  # not a number: SpiffWorkflow fails on it as it would without a ceiling
        my_task.internal_data[REFUSED] = {"asked": asked, "limit": self.max_instances, **counted}
        return True


class ParallelMultiInstanceTask(_BoundedInstances, _CamundaParallel):
    _camunda_flavour = _CamundaParallel

    def create_children(self, my_task: Task) -> None:
        # The library creates every instance here at once: count them first. The cardinality is
        # evaluated once more for that (the Camunda flavour already evaluates it twice).
        if self.data_input is not None:
            items = _collection(self, my_task)
            asked = len(items) if isinstance(items, Sized) else None
            counted = {"collection": self.data_input.bpmn_id}
        else:
            asked = my_task.workflow.script_engine.evaluate(my_task, self.cardinality)
            counted = {"cardinality": self.cardinality}
        if not self._refused(my_task, asked, counted):
            super().create_children(my_task)


class SequentialMultiInstanceTask(_BoundedInstances, _CamundaSequential):
    _camunda_flavour = _CamundaSequential

    def add_next_child(self, my_task: Task) -> None:
        # Instances come one after another, but all of them would be worked through (and a collection's
        # indices are stored up front): count them before the first.
        if not my_task.internal_data.get("merged"):
            if self.data_input is not None:
                asked: Any = len(my_task.internal_data.get("remaining") or [])
                counted = {"collection": self.data_input.bpmn_id}
            else:
                asked, counted = my_task.internal_data.get("cardinality"), {"cardinality": self.cardinality}
            if self._refused(my_task, asked, counted):
                my_task.internal_data["remaining"] = []
                return
        super().add_next_child(my_task)

    def init_remaining_items(self, my_task: Task) -> list:
        _collection(self, my_task)  # the library's own check names neither the activity's collection nor its value
        remaining: list = super().init_remaining_items(my_task)
        return remaining


def _collection(task_spec: MultiInstanceTask, my_task: Task) -> Any:
    """The items of a collection multi-instance activity, or the model's failure, in a sentence naming the
    variable: missing or not iterable, SpiffWorkflow would raise a TypeError of its own (the parallel kind)
    or a sentence naming neither the variable nor what it held (the sequential kind)."""
    reference = task_spec.data_input
    name = reference.bpmn_id
    if not reference.exists(my_task):
        raise WorkflowDataException(
            f"its collection '{name}' is not set: the multi-instance activity needs the list (or map) of its "
            f"items in the case data '{name}' before it begins", my_task, data_input=reference)
    items = reference.get(my_task)
    if items is None or not isinstance(items, Iterable):
        shown = repr(items)
        raise WorkflowDataException(
            f"its collection '{name}' is {type(items).__name__} {shown[:40]}{'…' if len(shown) > 40 else ''}, "
            "not a list or map of the items the multi-instance activity has one instance each for",
            my_task, data_input=reference)
    return items


def _did_not_begin(my_task: Task) -> None:
    my_task._set_state(TaskState.ERROR)
    my_task.internal_data[BEGIN_AGAIN] = True


def as_bounded(task_spec: MultiInstanceTask) -> None:
    """Make a multi-instance spec the plain BPMN parser made one of the classes above, in place. The
    Camunda flavour leaves script tasks to that parser, whose classes the serializer of the Camunda flavour
    cannot store; ours are subclasses of them with no state of their own, stored under the same names."""
    for ours in (ParallelMultiInstanceTask, SequentialMultiInstanceTask):
        plain = ours._camunda_flavour.__mro__[1]  # SpiffWorkflow's own class, the Camunda flavour's base
        if type(task_spec) is plain:
            task_spec.__class__ = ours


def set_ceiling(max_instances: int, *specs: BpmnProcessSpec) -> bool:
    """Give every multi-instance activity of these (restored) specs the engine's ceiling; True if there
    was one (a case without any never needs looking for a refused one)."""
    found = False
    for spec in specs:
        for task_spec in spec.task_specs.values():
            if isinstance(task_spec, _BoundedInstances):
                task_spec.max_instances = max_instances
                found = True
    return found


def began_again(task: Task) -> bool:
    """Begin this failed task again, if it is one whose instances were refused: True if it was (a retry then
    does not run it, which would complete it without instances)."""
    if not (isinstance(task.task_spec, _BoundedInstances) and task.internal_data.get(BEGIN_AGAIN)):
        return False
    task.task_spec.begin_again(task)
    return True


def refusal(task: Task) -> dict | None:
    """What a refused multi-instance task asked for: {"asked", "limit", "cardinality" or "collection"}."""
    found = task.internal_data.get(REFUSED) if task.state == TaskState.ERROR else None
    return found if isinstance(found, dict) else None


def literal_cardinality(task_spec: Any) -> int | None:
    """The number of instances a multi-instance activity always asks for, when its loop cardinality is an
    integer literal ("100000", "100_000"); None for an expression, a collection, or any other task."""
    text = getattr(task_spec, "cardinality", None) if isinstance(task_spec, MultiInstanceTask) else None
    if not isinstance(text, str):
        return None
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except (SyntaxError, ValueError):
        return None
    return node.value if isinstance(node, ast.Constant) and type(node.value) is int else None
