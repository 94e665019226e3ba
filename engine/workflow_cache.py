"""The workflows this process saved last, kept live so that the case's next command need not restore them.

Restoring a case (json.loads, then SpiffWorkflow's from_dict) was about a fifth of the instructions of an
in-process task completion (BENCHMARKS.md). A client working through a case sends its commands one after
another, over one kept-alive connection and so to one process: the workflow that process just saved is the one
the next command needs.

A kept workflow is exactly the state its save wrote, and is handed out only for the row that save wrote (its
row version, and the head of its trail's hash chain, which differs in a history that diverged, as after a
database was restored from a backup under a running server) and for the same blueprint (a migration changes
the definition version, and the spec cache may have loaded the blueprint again): a command of another
process, a timer or a migration writes a new row, and the next command here restores from the database.
Taking a workflow removes it, so a command that fails after changing it leaves nothing behind; only a
committed save puts one back.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import NamedTuple

from SpiffWorkflow.bpmn import BpmnWorkflow

from .blueprints import Blueprint


class _Kept(NamedTuple):
    row: tuple[int, str]  # row version, trail head
    blueprint: Blueprint
    workflow: BpmnWorkflow
    size: int  # the length of its stored state: what it holds, roughly (a live workflow takes a few times more)


class WorkflowCache:
    """Live workflows by case id, least recently saved dropped first once their states pass `max_bytes`.
    max_bytes=0 keeps none. Several threads of one process may use it."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._kept: OrderedDict[str, _Kept] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def take(self, case_id: str, row: tuple[int, str], blueprint: Blueprint) -> BpmnWorkflow | None:
        """The workflow saved as `row` (row version, trail head) of the case on `blueprint`, no longer kept;
        or None."""
        if not self.max_bytes:
            return None
        with self._lock:
            kept = self._kept.pop(case_id, None)
            if kept is None:
                return None
            self._bytes -= kept.size
        if kept.row != row or kept.blueprint is not blueprint:
            return None
        return kept.workflow

    def keep(self, case_id: str, row: tuple[int, str], blueprint: Blueprint, workflow: BpmnWorkflow,
             size: int) -> None:
        """Keep the workflow a committed save wrote as `row` (its state `size` characters long)."""
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._kept.pop(case_id, None)
            if old is not None:
                self._bytes -= old.size
            self._kept[case_id] = _Kept(row, blueprint, workflow, size)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _case, dropped = self._kept.popitem(last=False)
                self._bytes -= dropped.size

    def __len__(self) -> int:
        return len(self._kept)
