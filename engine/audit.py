"""The audit trail: what happened to a case, recorded by the engine as it happens, hash-chained.

Events are collected while a command runs (from what SpiffWorkflow did, not from what a route says)
and written in the same transaction as the state change they describe. Each event's hash covers a
canonical serialization of the event and the previous event's hash; the case row keeps the newest
sequence number and hash, so removing or appending events behind the engine's back shows too.
"""
from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from SpiffWorkflow.bpmn.specs.defaults import (BoundaryEvent, EndEvent, ExclusiveGateway, InclusiveGateway,
                                               IntermediateCatchEvent, IntermediateThrowEvent, ParallelGateway,
                                               ReceiveTask, SendTask, StartEvent)
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.events.event_types import CatchingEvent
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState
from sqlalchemy.engine import Row

from .clock import rfc3339

GENESIS = "0" * 64  # the "previous hash" of every chain's first event
_GATEWAYS = (ExclusiveGateway, InclusiveGateway, ParallelGateway)
# Engine steps whose data we compare before and after; gateways and plain events change none.
_EVENT_TYPES_WITHOUT_DATA = _GATEWAYS + (StartEvent, EndEvent)


def canonical(event: dict) -> bytes:
    """The bytes a hash covers: sorted keys, no whitespace, UTF-8. Stable across databases."""
    return json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def chain_hash(event: dict, prev_hash: str) -> str:
    body = {k: v for k, v in event.items() if k not in ("hash", "prev_hash")}
    return hashlib.sha256(prev_hash.encode() + canonical(body)).hexdigest()


def data_changes(before: dict, after: dict) -> dict:
    """{field: [before, after]} for every top-level field that differs."""
    changes = {}
    for key in before.keys() | after.keys():
        old, new = before.get(key), after.get(key)
        if old != new or (key in before) != (key in after):
            changes[key] = [_json(old), _json(new)]
    return dict(sorted(changes.items()))


def _json(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


class ElementPlaces(Protocol):
    """Where an element of a running case is defined (a Blueprint answers this)."""

    def locate(self, process_id: str | None, element_id: str) -> tuple[str, dict]: ...

    def flows_from(self, process_id: str | None, element_id: str) -> dict[str, str]: ...


@dataclass
class Recorder:
    """Collects the events of one command; `places` names and places the elements they are about."""

    case_id: str | None  # None for the deployments' chain
    actor: str
    at: datetime
    definition: str
    version: int
    definition_hash: str
    places: ElementPlaces | None = None
    events: list[dict] = field(default_factory=list)
    _before: dict = field(default_factory=dict)

    def add(self, type_: str, element_id: str | None = None, data_changes_: dict | None = None,
            actor: str | None = None, process: str | None = None, **details: Any) -> None:
        """`process` is the id of the BPMN process the element ran in (the case's own, an embedded
        subprocess, or a called process): element ids are unique only within one definition."""
        event = {"type": type_, "actor": actor or self.actor, "element_id": element_id, "element_name": None,
                 "lane": None, "data_changes": data_changes_ or {},
                 "details": {k: v for k, v in details.items() if v is not None}}
        if element_id and self.places is not None:
            owner, element = self.places.locate(process, element_id)
            event.update(element_definition=owner, element_name=element.get("name"), lane=element.get("lane"))
        self.events.append(event)

    # Callbacks for do_engine_steps: they see every engine step, in the order it ran.
    def will_run(self, task: Task) -> None:
        if not isinstance(task.task_spec, _EVENT_TYPES_WITHOUT_DATA) and getattr(task.task_spec, "bpmn_id", None):
            self._before[task.id] = copy.deepcopy(task.data)

    def did_run(self, task: Task) -> None:
        spec = task.task_spec
        element_id = getattr(spec, "bpmn_id", None)
        if not element_id:
            return  # SpiffWorkflow's internal steps (Start, End, joins of boundary events)
        before = self._before.pop(task.id, None)
        if task.state == TaskState.STARTED:
            return  # it ran but waits (an external service task): its completion is recorded when it comes
        changes = data_changes(before, task.data) if before is not None else {}
        definition = getattr(spec, "event_definition", None)
        process = process_of(task)
        if isinstance(spec, _GATEWAYS):
            # The element id, not the spec's name: they differ for an id SpiffWorkflow reserves (deploy_ids.py).
            targets = [getattr(child.task_spec, "bpmn_id", None) or child.task_spec.name for child in task.children]
            flows = self.places.flows_from(process, element_id) if self.places is not None else {}
            chosen = [flows.get(target) for target in targets]
            self.add("gateway_taken", element_id, actor="system", process=process, flows=[f for f in chosen if f],
                     targets=targets)
        elif isinstance(definition, TimerEventDefinition) and isinstance(spec, CatchingEvent):
            self.add("timer_fired", element_id, changes, actor="timer", process=process)
        elif isinstance(definition, MessageEventDefinition) and isinstance(spec, (CatchingEvent, ReceiveTask)):
            self.add("message_received", element_id, changes, process=process, message=definition.name)
        elif isinstance(definition, MessageEventDefinition) or isinstance(spec, SendTask):
            self.add("message_sent", element_id, changes, actor="system", process=process,
                     message=getattr(definition, "name", None))
        elif isinstance(spec, (StartEvent, EndEvent, IntermediateCatchEvent, IntermediateThrowEvent, BoundaryEvent)):
            self.add("event_passed", element_id, changes, actor="system", process=process)
        else:
            self.add("activity_completed", element_id, changes, actor="system", process=process)


def process_of(task: Task) -> str | None:
    """The id of the BPMN process a SpiffWorkflow task runs in (a subworkflow's spec for called and
    embedded processes, the case's own spec otherwise)."""
    workflow = getattr(task, "workflow", None)
    return getattr(getattr(workflow, "spec", None), "name", None)


def seal(recorder: Recorder, start_seq: int, prev_hash: str) -> tuple[list[dict], int, str]:
    """Number and chain the collected events; returns the rows to insert and the new head."""
    rows, seq, previous = [], start_seq, prev_hash
    at_text = rfc3339(recorder.at)
    for event in recorder.events:
        seq += 1
        body = {"seq": seq, "at": at_text, "case_id": recorder.case_id, "definition": recorder.definition,
                "version": recorder.version, "definition_hash": recorder.definition_hash, **event}
        digest = chain_hash(body, previous)
        rows.append({**body, "prev_hash": previous, "hash": digest})
        previous = digest
    return rows, seq, previous


DEPLOYMENT_CHAIN = "definitions"   # the chain of deployments (cases' chains are named by the case id)


def case_of(chain: str) -> str | None:
    """The case whose trail a chain is: a case's chain is named by its id (store.py keeps no other copy)."""
    return None if chain == DEPLOYMENT_CHAIN else chain


def event_from_row(row: Row[Any]) -> dict:
    """The public form of a stored event (also exactly what its hash covers, plus the two hashes).

    `row` is as store.trail and store.stream_events read it: the definition's hash and the previous event's
    hash come from joins (the events table keeps neither); a chain's first event links to GENESIS. Without
    the join (verification, which links events itself) or with the event before missing, prev_hash is None."""
    return {"seq": row.seq, "at": rfc3339(row.at), "case_id": case_of(row.chain), "type": row.type,
            "actor": row.actor, "element_id": row.element_id, "element_name": row.element_name,
            "lane": row.lane, "definition": row.definition, "version": row.version,
            "definition_hash": row.definition_hash, "data_changes": json.loads(row.data_changes),
            "details": json.loads(row.details), "prev_hash": _previous_hash(row), "hash": bytes(row.hash).hex(),
            **({"element_definition": row.element_definition} if row.element_definition else {})}


def _previous_hash(row: Row[Any]) -> str | None:
    if row.seq == 1:
        return GENESIS
    previous = row._mapping.get("prev_hash")
    return None if previous is None else bytes(previous).hex()


@dataclass
class Verification:
    ok: bool = True
    cases: int = 0
    events: int = 0
    broken: dict | None = None

    def as_dict(self) -> dict:
        result: dict[str, Any] = {"ok": self.ok, "cases": self.cases, "events": self.events}
        if self.broken:
            result["broken"] = self.broken
        return result


def verify_chains(rows: Iterable[Row[Any]], heads: dict[str, tuple[int, str]]) -> Verification:
    """Walk events ordered by (chain, seq) and report the first broken link.

    `heads` maps each chain (a case id, or DEPLOYMENT_CHAIN) to the (seq, hash) recorded as its end:
    that is what catches events deleted from, or forged onto, the end of a chain."""
    result = Verification()
    chain, expected_seq, previous = None, 0, GENESIS
    seen_cases: set[str] = set()

    def close(chain_id: str) -> dict | None:
        if chain_id in heads:
            seen_cases.add(chain_id)
            head_seq, head_hash = heads[chain_id]
            if (head_seq, head_hash) != (expected_seq, previous):
                owner = "the case row says its trail" if chain_id != DEPLOYMENT_CHAIN else "the deployments' chain"
                return {"case_id": case_of(chain_id), "chain": chain_id,
                        "seq": min(head_seq, expected_seq) + 1,
                        "reason": f"{owner} ends at event {head_seq}, the events end at {expected_seq}: events "
                                  "were deleted from or added to the end"}
        return None

    for row in rows:
        if row.chain != chain:
            if chain is not None and (broken := close(chain)):
                return _broken(result, broken)
            chain, expected_seq, previous = row.chain, 0, GENESIS
        result.events += 1
        where = {"case_id": case_of(row.chain), "chain": row.chain, "seq": row.seq}
        if row.seq != expected_seq + 1:
            return _broken(result, {**where, "reason": f"expected event {expected_seq + 1} next, found {row.seq}: "
                                                       "events were deleted, inserted or renumbered"})
        # The hash covers the previous event's hash too: an event changed, moved, or put in place of another
        # shows here, or at the event after it if its own hash was recomputed.
        digest = chain_hash(event_from_row(row), previous)
        if digest != bytes(row.hash).hex():
            return _broken(result, {**where, "reason": "the event's content does not match its hash: it was "
                                                       "changed after it was written, or the event before it was "
                                                       "changed or moved"})
        expected_seq, previous = row.seq, digest
    if chain is not None and (broken := close(chain)):
        return _broken(result, broken)
    for case_id, (head_seq, _) in heads.items():
        if case_id not in seen_cases and head_seq > 0:
            return _broken(result, {"case_id": case_of(case_id), "chain": case_id,
                                    "seq": 1, "reason": f"the head of the chain says it has {head_seq} events, "
                                                        "none were found: they were deleted"})
    result.cases = len([chain for chain in heads if chain != DEPLOYMENT_CHAIN])
    return result


def _broken(result: Verification, broken: dict) -> Verification:
    result.ok = False
    result.broken = broken
    return result
