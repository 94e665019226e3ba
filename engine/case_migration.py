"""Moving unfinished cases to another version of their definition.

A definition version is immutable and a case keeps the version it started on, so a corrected or changed
process reaches running cases only when they are moved. SpiffWorkflow's diff utilities (bpmn/util/diff.py)
do the moving; this module decides what may move and records it:

- Elements correspond by id, after the caller's mapping {old element id: new element id}. SpecDiff also
  pairs elements by their place in the flow; those guesses are dropped, because a guess could put a
  person's task on a different step without anyone having said so.
- Every step the case has not finished (ready, waiting, running, failed) needs a counterpart, and a join
  some branches have reached needs the same branches. Else the refusal (and a dry run) names the step.
- migrate_workflow swaps the specs and predicts again from the ready and waiting steps. Those keep their
  ids (worklists stay valid) and their data; a waiting event whose event is unchanged keeps its due time.
- A running step (a call activity, an external task) or a failed one is not reset: what follows is.
- Finished steps the new version no longer has leave the task tree; the trail keeps them. Embedded
  subprocesses move with the case; called definitions keep their pinned versions (one called for the
  first time is pinned at its latest version, as for a new case).
- A running case moves and then runs what became possible. A suspended case stays suspended, and a case
  with an incident keeps it until retried: moving a case to a corrected version and then retrying it is
  how a fix reaches a failed step. A finished case refuses.
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from copy import deepcopy
from dataclasses import dataclass, field
from typing import Any

from SpiffWorkflow.bpmn.specs.bpmn_process_spec import BpmnProcessSpec
from SpiffWorkflow.bpmn.specs.mixins.unstructured_join import UnstructuredJoin
from SpiffWorkflow.bpmn.util.diff import SpecDiff, WorkflowDiff, migrate_workflow
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState
from sqlalchemy.engine import Connection, Row

from . import store_migration
from .blueprints import Blueprint
from .case_reading import read_case
from .case_start import pin_called_versions
from .case_state import recorder_for
from .case_views import get_case
from .case_work import CaseWork, open_case
from .errors import Conflict, InvalidInput
from .incidents import Incident
from .parts import EngineParts
from .runner import Outcome, outcome_with_incident
from .spiff_setup import SERIALIZER, workflow_from_dict, workflow_to_dict

ACTIVE = TaskState.READY | TaskState.WAITING | TaskState.STARTED | TaskState.ERROR
_RESET = TaskState.READY | TaskState.WAITING
# Steps that have not happened: predictions, and FUTURE (which SpiffWorkflow counts as definite).
_UNBORN = TaskState.FUTURE | TaskState.PREDICTED_MASK
_HELD = Incident(message="held", action="")  # only to read where a held case stands; never stored


@dataclass(frozen=True)
class Migration:
    to_version: int
    mapping: Mapping[str, str] = field(default_factory=dict)
    dry_run: bool = False


@dataclass(frozen=True)
class Selection:
    """Which cases a bulk migration considers: unfinished cases of a definition, narrowed by the rest."""

    definition: str
    version: int | None = None
    status: str | None = None
    waiting_at: str | None = None  # an element id where the case has a step it has not finished


@dataclass
class _Part:
    """One workflow of the case (its own process, or an embedded subprocess running) and where it goes."""

    workflow: Any            # a BpmnWorkflow or BpmnSubWorkflow
    spec: BpmnProcessSpec | None  # None: the new version no longer has this subprocess
    diff: SpecDiff | None


def migrate(parts: EngineParts, which: str | Selection, migration: Migration, actor: str,
            if_match: str | None = None, cursor: str | None = None, limit: int = 100) -> dict:
    """One case (by id): its report, or a Conflict naming what stops it. A selection: a report per case."""
    if isinstance(which, Selection):
        return _migrate_many(parts, which, migration, actor, cursor, limit)
    return _migrate(parts, open_case(parts, which, actor, _not_finished, if_match), migration)


def active_elements(workflow: Any) -> set[str]:
    """Ids of the elements where the case has a step it has not finished (called processes included)."""
    return {task.task_spec.bpmn_id for task in workflow.get_tasks(state=ACTIVE)
            if getattr(task.task_spec, "bpmn_id", None)}


def _migrate_many(parts: EngineParts, selection: Selection, migration: Migration, actor: str,
                  cursor: str | None, limit: int) -> dict:
    _check_targets(parts, selection.definition, migration)  # a wrong request is refused as a whole
    statuses = [selection.status] if selection.status else list(store_migration.NOT_FINISHED)
    with parts.db.reader.connect() as conn:
        ids, next_cursor = store_migration.cases_to_migrate(conn, selection.definition, selection.version,
                                                            statuses, migration.to_version, cursor, limit)
    items = [item for case_id in ids if (item := _one_of_many(parts, case_id, selection, migration, actor))]
    return {"dry_run": migration.dry_run, "items": items, "next": next_cursor,
            "migrated": sum(item["result"] == "migrated" for item in items),
            "refused": sum(item["result"] == "refused" for item in items)}


def _one_of_many(parts: EngineParts, case_id: str, selection: Selection, migration: Migration,
                 actor: str) -> dict | None:
    """A case of a bulk migration: its report, a refusal (one case's refusal never stops the others), or
    None when it does not wait where the selection says."""
    try:
        work = open_case(parts, case_id, actor, _not_finished)
        if selection.waiting_at and selection.waiting_at not in active_elements(work.workflow):
            return None
        return _migrate(parts, work, migration)
    except (Conflict, InvalidInput) as exc:  # finished meanwhile, lost a race, or cannot move
        missing = [error for error in exc.errors if "state" in error]  # steps without counterpart
        return _report(read_case(parts.db, case_id), migration, "refused", missing, [exc.detail])


def _migrate(parts: EngineParts, work: CaseWork, migration: Migration) -> dict:
    row = work.row
    if migration.to_version == row.definition_version:
        raise Conflict(f"the case already runs on version {row.definition_version} of '{row.definition_key}'; "
                       "there is nothing to migrate")
    _check_mapping(parts, row.definition_key, row.definition_version, migration)
    target, pins = _target(parts, row, migration.to_version)
    plan = _plan(work.workflow, work.blueprint, target, migration.mapping)
    missing = _missing(plan, work.blueprint, migration.to_version, migration.mapping)
    if missing:
        refusal = _refusal(row, migration, missing)
        if not migration.dry_run:
            raise Conflict(refusal, missing)
        return _report(row, migration, "refused", missing, [refusal])
    if migration.dry_run:
        return _report(row, migration, "would_migrate")
    _move_all(plan, work.workflow, target, migration)
    case = _save(parts, work, target, pins, migration)
    return _report(row, migration, "migrated", case=case)


def _not_finished(row: Row[Any]) -> None:
    if row.status not in store_migration.NOT_FINISHED:
        raise Conflict(f"the case is already {row.status}; only a case that has not finished can be migrated")


def _check_targets(parts: EngineParts, key: str, migration: Migration) -> None:
    """The target version exists (else DefinitionNotFound) and has every element the mapping names."""
    elements = parts.specs.compiled(key, migration.to_version).meta["elements"]
    errors = [{"field": f"mapping.{source}", "element_id": target,
               "message": f"version {migration.to_version} of '{key}' has no element '{target}'"}
              for source, target in migration.mapping.items() if target not in elements]
    if errors:
        raise InvalidInput(f"the mapping names an element the target does not have: {errors[0]['message']}; "
                           "map to ids of the target version (GET its BPMN to see them)", errors)


def _check_mapping(parts: EngineParts, key: str, from_version: int, migration: Migration) -> None:
    _check_targets(parts, key, migration)
    elements = parts.specs.compiled(key, from_version).meta["elements"]
    targets = parts.specs.compiled(key, migration.to_version).meta["elements"]
    errors = []
    for source, target in migration.mapping.items():
        kinds = (elements.get(source, {}).get("type"), targets[target].get("type"))
        if source not in elements:
            message = f"version {from_version} of '{key}' has no element '{source}'; map from ids of that version"
        elif kinds[0] != kinds[1]:
            # A step carried onto an element of another kind (a user task onto an event) would resume as
            # something it never was.
            message = f"'{source}' is a {kinds[0]} and '{target}' a {kinds[1]}; map to an element of the same kind"
        else:
            continue
        errors.append({"field": f"mapping.{source}", "element_id": source, "message": message})
    if errors:
        raise InvalidInput(f"the mapping cannot be used: {errors[0]['message']}", errors)


def _target(parts: EngineParts, row: Row[Any], version: int) -> tuple[Blueprint, dict[str, int]]:
    """The blueprint the case moves to, and its pins: the called versions it had, and the latest version
    of each definition the new version calls for the first time."""
    key = row.definition_key
    pins = pin_called_versions(parts, key, version, json.loads(row.pins))
    return parts.specs.blueprint(key, version, pins), pins


def _renamed(name: str, mapping: Mapping[str, str]) -> str:
    """A task spec's name in the new version. SpiffWorkflow names some internal specs after their element
    ('Activity_X.BoundaryEventSplit'), so those follow a renamed element too."""
    if name in mapping:
        return mapping[name]
    head, dot, tail = name.partition(".")
    return f"{mapping[head]}.{tail}" if dot and head in mapping else name


def _plan(workflow: Any, source: Blueprint, target: Blueprint, mapping: Mapping[str, str]) -> list[_Part]:
    """The case's own workflow and its running embedded subprocesses, each with its new spec and the
    correspondence of its task specs. Called definitions keep their pinned versions and are left alone."""
    plan = [_part(workflow, target.spec, mapping)]
    for subprocess in workflow.subprocesses.values():
        if source.owner_of.get(subprocess.spec.name) != source.key:
            continue
        name = _renamed(subprocess.spec.name, mapping)
        spec = target.subprocess_specs.get(name) if target.owner_of.get(name) == target.key else None
        plan.append(_part(subprocess, spec, mapping))
    return plan


def _part(workflow: Any, spec: BpmnProcessSpec | None, mapping: Mapping[str, str]) -> _Part:
    if spec is None:
        return _Part(workflow, None, None)
    diff = SpecDiff(SERIALIZER.registry, workflow.spec, spec)
    # By id (after the mapping) only: SpecDiff's guesses by position are replaced, see the module's note.
    diff.alignment = {old: spec.task_specs.get(_renamed(name, mapping))
                      for name, old in workflow.spec.task_specs.items()}
    return _Part(workflow, spec, diff)


def _missing(plan: list[_Part], source: Blueprint, to_version: int, mapping: Mapping[str, str]) -> list[dict]:
    """The unfinished steps that would have no counterpart, or a join that would wait for good, as problem
    entries a person can act on."""
    found: dict[str, dict] = {}
    for part in plan:
        for task in part.workflow.tasks.values():
            counterpart = part.diff.alignment.get(task.task_spec) if part.diff is not None else None
            if not task.has_state(ACTIVE) or (counterpart and not _join_changed(task, counterpart, mapping)):
                continue
            element_id = getattr(task.task_spec, "bpmn_id", None) or task.task_spec.name.partition(".")[0]
            name = getattr(task.task_spec, "bpmn_name", None) or source.locate(part.workflow.spec.name,
                                                                               element_id)[1].get("name")
            state = TaskState.get_name(task.state).lower()
            message = (f"{_named(name, element_id)} is a join waiting for its branches, and version {to_version} "
                       "joins other branches there: the case could wait at it for good; let the case pass the "
                       "join before migrating it" if counterpart else
                       f"{_named(name, element_id)} is {state} in this case, and version {to_version} has no "
                       "element with this id: map it to one")
            found.setdefault(element_id, {"element_id": element_id, "element_name": name, "state": state,
                                          "message": message})
    return list(found.values())


def _join_changed(task: Task, counterpart: Any, mapping: Mapping[str, str]) -> bool:
    """A join some branches have reached, whose incoming branches differ in the new version: moved, it could
    wait for a branch no token is on, or count the branches wrongly, so such a case is refused."""
    if not isinstance(task.task_spec, UnstructuredJoin) or not task.has_state(TaskState.WAITING):
        return False
    before = {_renamed(spec.name, mapping) for spec in task.task_spec.inputs}
    return before != {spec.name for spec in counterpart.inputs}


def _named(name: str | None, element_id: str) -> str:
    return f"'{name}' ({element_id})" if name else f"'{element_id}'"


def _refusal(row: Row[Any], migration: Migration, missing: list[dict]) -> str:
    if joins := [item["message"] for item in missing if "join waiting" in item["message"]]:
        return "; ".join(joins)
    steps = ", ".join(_named(item["element_name"], item["element_id"]) for item in missing)
    example = json.dumps({item["element_id"]: "<element id in the new version>" for item in missing[:1]})
    return (f"version {migration.to_version} of '{row.definition_key}' has no counterpart for where this case "
            f"stands: {steps}; give a mapping to elements of version {migration.to_version} (e.g. {example}), "
            f"or let the case finish on version {row.definition_version}")


def _move_all(plan: list[_Part], workflow: Any, target: Blueprint, migration: Migration) -> None:
    """Move every part, and make sure the result restores around the new specs before anything is written:
    a case stored in a shape it cannot be read back from would fail every later command."""
    try:
        for part in plan:
            _move(part)
        workflow.subprocess_specs = target.subprocess_specs
        workflow_from_dict(workflow_to_dict(workflow), target.spec, target.subprocess_specs)
    except Exception as exc:  # SpiffWorkflow may refuse a shape no check here foresaw; nothing is written yet
        raise Conflict(f"the case cannot be put on version {migration.to_version}: {exc}; check the mapping, or "
                       "let the case finish on the version it runs on") from exc


def _move(part: _Part) -> None:
    """Put one workflow on its new spec (see the module's note for what happens to which step)."""
    workflow, spec = part.workflow, part.spec
    held = {task.id: (task.state, task.task_spec, deepcopy(task.data), deepcopy(task.internal_data))
            for task in workflow.tasks.values() if task.has_state(_RESET)}
    migrate_workflow(WorkflowDiff(workflow, part.diff), workflow, spec)
    for task_id, (state, old_spec, data, internal_data) in held.items():
        task = workflow.tasks.get(task_id)
        if task is None:
            continue
        task.data = data  # reset_branch gave it its parent's data; the case's data is kept as it was
        if task.state == state and _same_event(old_spec, task.task_spec):
            task.internal_data = internal_data  # e.g. a timer's due time, which a reset would start again
    _predict_after_unfinished(workflow)
    _forget_without_counterpart(workflow, spec)


def _same_event(old: Any, new: Any) -> bool:
    before, after = getattr(old, "event_definition", None), getattr(new, "event_definition", None)
    if before is None or after is None:
        return before is after
    return bool(SERIALIZER.registry.convert(before) == SERIALIZER.registry.convert(after))


def _predict_after_unfinished(workflow: Any) -> None:
    """What follows a running or failed step was predicted from the old version: predict it again."""
    for task in list(workflow.tasks.values()):
        if task.has_state(TaskState.STARTED | TaskState.ERROR) and all(
                child.has_state(_UNBORN) for child in task.children):
            for child in task.children:
                workflow._remove_task(child.id)
            state = task.state
            # A failed step predicts as the ready step it was: SpiffWorkflow would copy ERROR to its children.
            task._state = TaskState.READY if state == TaskState.ERROR else state
            task.task_spec._predict(task, mask=_UNBORN | task.state)
            task._state = state


def _forget_without_counterpart(workflow: Any, spec: BpmnProcessSpec) -> None:
    """Finished steps the new version does not have leave the tree (their children take their place), and
    so do predictions of them; otherwise the case could not be restored around the new spec."""
    def kept(task: Task) -> bool:
        return spec.task_specs.get(task.task_spec.name) is task.task_spec

    last = workflow.last_task
    while last is not None and not kept(last):
        last = last.parent
    for task in list(workflow.tasks.values()):
        if task.id not in workflow.tasks or kept(task):
            continue
        if task.has_state(_UNBORN):
            workflow._remove_task(task.id)
        elif task.has_state(TaskState.FINISHED_MASK) and task.parent is not None:
            _splice(workflow, task)
    workflow.last_task = last


def _splice(workflow: Any, task: Task) -> None:
    parent, children = task.parent, task.children
    at = parent._children.index(task.id)
    parent._children[at:at + 1] = [child.id for child in children]
    for child in children:
        child._parent = parent.id
    del workflow.tasks[task.id]


def _save(parts: EngineParts, work: CaseWork, target: Blueprint, pins: dict[str, int], migration: Migration) -> dict:
    """Record the move and write it in the command's one transaction, then read the case as it now is."""
    row = work.row
    work.blueprint = target
    # Events from here on ran on the new version: the trail says so, event by event.
    work.recorder = recorder_for(row.id, work.recorder.actor, target, work.recorder.at)
    work.recorder.add("case_migrated", from_version=row.definition_version, to_version=migration.to_version,
                      mapping=dict(migration.mapping))
    outcome = _outcome(work)
    before = {task.id: task for task in work.ready_rows}
    renamed = [dataclasses.asdict(task) for task in outcome.ready if task.id in before and (
        task.element_id, task.process_id, task.name, task.lane) != (
        before[task.id].element_id, before[task.id].process_id, before[task.id].name, before[task.id].lane)]
    kept_incident = row.incident if row.status != "running" else None

    def repoint(conn: Connection) -> None:
        store_migration.repin_case(conn, row.id, migration.to_version, pins, kept_incident)
        store_migration.retag_ready_tasks(conn, renamed)

    work.save(outcome, in_transaction=repoint)
    return get_case(parts, row.id)


def _outcome(work: CaseWork) -> Outcome:
    """A running case runs what became possible; a held one (suspended, or with an incident) stays where
    it is. Its incident is written back unchanged by the save, not recorded as a new one."""
    if work.row.status == "running":
        return work.advance()
    standing = outcome_with_incident(work.workflow, work.blueprint, _HELD)
    return dataclasses.replace(standing, status=work.row.status, incident=None)


def _report(row: Row[Any], migration: Migration, result: str, missing: list[dict] | None = None,
            reasons: list[str] | None = None, case: dict | None = None) -> dict:
    report = {"case_id": row.id, "definition": row.definition_key, "from_version": row.definition_version,
              "to_version": migration.to_version, "status": row.status, "dry_run": migration.dry_run,
              "result": result, "mapping": dict(migration.mapping), "missing": missing or [],
              "reasons": reasons or []}
    if case is not None:
        report["case"] = case
    return report
