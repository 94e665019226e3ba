"""Parallel and inclusive joins that fire exactly once per arrival of their branches, loops included.

SpiffWorkflow 3.2 decides whether a join may fire by looking at every instance of the join in the task
tree. Inside a loop that goes wrong: its inclusive join stops its search at the instance that fired in
the previous round (so it sees none of this round's branches and fires once per branch), and its
parallel join counts branches that arrived in the previous round (so it fires early when this round's
branches arrive in another order, and again when the last one comes). Each extra firing runs
everything after the join a second time; behind a call activity it leaves a subprocess without its
parent task ("A task with id … was not found").

Here a join looks only at its current round: the part of the tree below the instance that fired last
on this path (or the whole tree the first time). In that round
- a branch has *arrived* when an instance of the join has a completed parent and was not consumed by
  an earlier firing;
- a parallel join fires when every incoming flow has arrived;
- an inclusive join fires when at least one has arrived and no unfinished task of the round can still
  reach it (the BPMN 2.0 rule, §13.3.2);
- firing merges the data of every arrived branch and consumes their instances.

The classes keep SpiffWorkflow's names, so stored specs and cases restore into them unchanged.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.specs.defaults import InclusiveGateway as _SpiffInclusiveGateway
from SpiffWorkflow.bpmn.specs.defaults import ParallelGateway as _SpiffParallelGateway
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.specs.base import TaskSpec
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.deep_merge import DeepMerge
from SpiffWorkflow.util.task import TaskState

CONSUMED = "joined_into"   # internal data of a join instance whose branch an earlier firing took in

# ERROR too: a failed task is run (or begun) again by a retry, so it may still reach the join. A multi-instance
# activity refused for too many instances stays in ERROR while the rest of its step goes on (multi_instance.py).
_PENDING = TaskState.FUTURE | TaskState.WAITING | TaskState.READY | TaskState.STARTED | TaskState.ERROR


class _RoundJoin:
    """The firing rule shared by both joins. Each subclass says, in `_may_fire(arrived, pending)`, when the
    input flows that have arrived (task specs) are enough, given the unfinished tasks of the round."""

    if TYPE_CHECKING:  # declared for the type checker only, so that SpiffWorkflow's methods stay in the MRO
        def _may_fire(self, arrived: set[TaskSpec], pending: list[Task]) -> bool: ...  # each subclass's rule

        def _update(self, my_task: Task) -> bool: ...  # SpiffWorkflow's TaskSpec._update

    def _update_hook(self, my_task: Task) -> bool:
        if my_task.has_state(TaskState.FINISHED_MASK) or not _has_arrived(my_task):
            return False  # consumed by a firing in the same engine step, or its branch is not done
        instances, pending = _current_round(self, my_task)
        arrived = [t for t in instances if _has_arrived(t)]
        if my_task not in arrived or not self._may_fire({t.parent.task_spec for t in arrived}, pending):
            # Only the newest arrival waits; the others stay arrived (their parents are completed).
            for other in instances:
                if other is not my_task and other.state == TaskState.WAITING:
                    other.cancel()
            my_task._set_state(TaskState.WAITING)
            return False
        for other in sorted(arrived, key=lambda t: t.last_state_change):
            if other is not my_task:
                DeepMerge.merge(my_task.data, other.parent.data)
                other.internal_data[CONSUMED] = str(my_task.id)
                if not other.has_state(TaskState.FINISHED_MASK):
                    other.cancel()
        my_task._inherit_data()  # this branch's data last, as SpiffWorkflow does
        return True

    def _run_hook(self, my_task: Task) -> bool:
        return True  # the data was merged when the join decided to fire


class ParallelGateway(_RoundJoin, _SpiffParallelGateway):
    def _may_fire(self, arrived: set[TaskSpec], pending: list[Task]) -> bool:
        return set(self.inputs) <= arrived


class InclusiveGateway(_RoundJoin, _SpiffInclusiveGateway):
    def _may_fire(self, arrived: set[TaskSpec], pending: list[Task]) -> bool:
        upstream = _upstream_of(self)
        return bool(arrived) and not any(task.task_spec in upstream for task in pending)

    def _run_hook(self, my_task: Task) -> bool:
        # As SpiffWorkflow's, minus its own merge: take every flow whose condition holds, else the default.
        matches, defaults = self._get_matching_outputs(my_task)
        if len(matches + defaults) == 0:
            raise WorkflowTaskException('No conditions satisfied on gateway', task=my_task)
        my_task._sync_children(matches or defaults, TaskState.FUTURE)
        for child in my_task.children:
            child.task_spec._predict(child, mask=TaskState.FUTURE | TaskState.PREDICTED_MASK)
        return True


def refresh_waiting_joins(workflow: BpmnWorkflow) -> bool:
    """Decide again for every waiting join. A join is otherwise only asked when a branch arrives, but an
    inclusive join may also become free when a branch that could have reached it goes elsewhere.
    Returns whether any join fired."""
    fired = False
    for task in workflow.get_tasks(state=TaskState.WAITING):
        if isinstance(task.task_spec, _RoundJoin):
            task.task_spec._update(task)
            fired = fired or task.state == TaskState.READY
    return fired


def _has_arrived(task: Task) -> bool:
    return (task.parent is not None and task.parent.state == TaskState.COMPLETED
            and task.state != TaskState.COMPLETED and CONSUMED not in task.internal_data)


def _current_round(spec: _RoundJoin, my_task: Task) -> tuple[list[Task], list[Task]]:
    """The join's instances and the unfinished other tasks of the round my_task belongs to."""
    last = my_task.parent
    while last is not None and last.task_spec is not spec:
        last = last.parent
    stack = list(last.children) if last is not None else [my_task.workflow.task_tree]
    instances: list[Task] = []
    pending: list[Task] = []
    while stack:
        task = stack.pop()
        if task.task_spec is spec:
            instances.append(task)   # what follows an instance belongs to the next round
            continue
        if task.has_state(_PENDING):
            pending.append(task)
        stack.extend(task.children)
    return instances, pending


def _upstream_of(spec: TaskSpec) -> frozenset[TaskSpec]:
    """Every task spec from which the join can be reached without passing through it (kept on the spec:
    specs are immutable per definition version, and the serializer stores only the fields it knows)."""
    found = spec.__dict__.get("_upstream")
    if found is None:
        seen: set[TaskSpec] = set()
        stack = list(spec.inputs)
        while stack:
            current = stack.pop()
            if current is spec or current in seen:
                continue
            seen.add(current)
            stack.extend(current.inputs)
        found = spec.__dict__["_upstream"] = frozenset(seen)
    return found
