"""The engine: one object that holds the database, the spec cache and the sandboxed script engine.

It is a facade. Definitions are deployed and read by definition_commands.py; every case command and
read is a function of a module of its own job, handed the engine's parts (parts.py): starting cases
(case_start.py), completing tasks (task_completion.py), external tasks (external_tasks.py), cancelling,
suspending, resuming and retrying (case_lifecycle.py), timers (case_timers.py), messages
(case_messages.py) and reads (case_views.py, and service-level insight: insight.py). Commands on an
existing case share one unit of work (case_work.py).
"""
from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Concatenate, ParamSpec, TypeVar

from sqlalchemy.exc import IntegrityError

from . import (case_lifecycle, case_messages, case_migration, case_start, case_timers, case_views, external_tasks,
               insight, store)
from .blueprints import SpecCache, StoredDefinition
from .clock import Clock, SystemClock
from .database import Database, connect, migrate
from .definition_commands import DefinitionCommands
from .errors import ConcurrentUpdate, DefinitionNotFound
from .external_tasks import MayComplete
from .java_tasks import with_opt_in_topics
from .observer import Observer
from .parts import EngineParts
from .sandbox import make_script_engine
from .settings import EngineSettings
from .task_completion import complete_task
from .timers import running_on
from .workflow_cache import WorkflowCache

__all__ = ["Engine", "EngineSettings"]

_Arguments = ParamSpec("_Arguments")
_Result = TypeVar("_Result")


def _on_engine_clock(command: Callable[Concatenate[Engine, _Arguments], _Result]
                     ) -> Callable[Concatenate[Engine, _Arguments], _Result]:
    """Run a case command with SpiffWorkflow's timers reading this engine's clock."""

    @functools.wraps(command)
    def wrapper(engine: Engine, *args: _Arguments.args, **kwargs: _Arguments.kwargs) -> _Result:
        with running_on(engine.clock):
            return command(engine, *args, **kwargs)

    return wrapper


class Engine(DefinitionCommands):
    def __init__(self, settings: EngineSettings, clock: Clock | None = None, database: Database | None = None,
                 observer: Observer | None = None):
        self.settings = settings
        self.clock = clock or SystemClock()
        self.observer = observer or Observer()
        self.db = database or connect(settings.database_url, settings.pool_size)
        self.script_engine = make_script_engine({"next_call_number": self.next_call_number}, settings.script_limits,
                                                settings.max_case_data_bytes)
        self.specs = SpecCache(self._load_definition, settings.spec_cache_size, settings.max_instances)
        self.parts = EngineParts(self.db, self.specs, self.clock, self.script_engine, self.observer, settings,
                                 WorkflowCache(settings.workflow_cache_bytes))

    # --- case commands -----------------------------------------------------------------------------

    @_on_engine_clock
    def start_case(self, definition: str, actor: str, version: int | None = None,
                   business_key: str | None = None, data: dict | None = None,
                   idempotency_key: str | None = None) -> tuple[dict, bool]:
        return case_start.start_case(self.parts, definition, actor, version, business_key, data or {},
                                     idempotency_key)

    @_on_engine_clock
    def complete_task(self, task_id: str, data: dict, actor: str, may_complete: MayComplete,
                      if_match: str | None = None, worker: str | None = None) -> dict:
        return complete_task(self.parts, task_id, data, actor, may_complete, if_match, worker)

    @_on_engine_clock
    def lock_external_tasks(self, worker: str, topics: list[str], max_tasks: int, lock_seconds: int) -> list[dict]:
        return external_tasks.lock_external_tasks(self.parts, worker, topics, max_tasks, lock_seconds)

    @_on_engine_clock
    def extend_external_lock(self, task_id: str, worker: str, lock_seconds: int, may_complete: MayComplete) -> dict:
        return external_tasks.extend_external_lock(self.parts, task_id, worker, lock_seconds, may_complete)

    @_on_engine_clock
    def fail_external_task(self, task_id: str, worker: str | None, message: str, actor: str,
                           may_complete: MayComplete) -> dict:
        return external_tasks.fail_external_task(self.parts, task_id, worker, message, actor, may_complete)

    @_on_engine_clock
    def send_message(self, case_id: str, name: str, data: dict, actor: str, if_match: str | None = None) -> dict:
        return case_messages.send_message(self.parts, case_id, name, data, actor, if_match)

    @_on_engine_clock
    def route_message(self, name: str, actor: str, business_key: str | None = None,
                      correlation: dict | None = None, data: dict | None = None,
                      idempotency_key: str | None = None) -> tuple[dict, bool]:
        return case_messages.route_message(self.parts, name, actor, business_key, correlation, data or {},
                                           idempotency_key)

    @_on_engine_clock
    def cancel_case(self, case_id: str, actor: str, if_match: str | None = None) -> dict:
        return case_lifecycle.cancel_case(self.parts, case_id, actor, if_match)

    @_on_engine_clock
    def suspend_case(self, case_id: str, actor: str, if_match: str | None = None) -> dict:
        return case_lifecycle.suspend_case(self.parts, case_id, actor, if_match)

    @_on_engine_clock
    def resume_case(self, case_id: str, actor: str, if_match: str | None = None) -> dict:
        return case_lifecycle.resume_case(self.parts, case_id, actor, if_match)

    @_on_engine_clock
    def retry_case(self, case_id: str, actor: str, data: dict | None = None, if_match: str | None = None) -> dict:
        return case_lifecycle.retry_case(self.parts, case_id, actor, data or {}, if_match)

    @_on_engine_clock
    def migrate_cases(self, which: str | case_migration.Selection, migration: case_migration.Migration, actor: str,
                      if_match: str | None = None, cursor: str | None = None, limit: int = 100) -> dict:
        """One case (by id) or a selection of cases to another version of their definition."""
        return case_migration.migrate(self.parts, which, migration, actor, if_match, cursor, limit)

    @_on_engine_clock
    def fire_due_timers(self, limit: int = 100) -> int:
        return case_timers.fire_due_timers(self.parts, limit)

    def seconds_to_next_timer(self, longest: float) -> float:
        return case_timers.seconds_to_next_timer(self.parts, longest)

    # --- case reads --------------------------------------------------------------------------------

    def get_case(self, case_id: str) -> dict:
        return case_views.get_case(self.parts, case_id)

    def list_cases(self, filters: dict, cursor: str | None, limit: int) -> tuple[list[dict], str | None]:
        return case_views.list_cases(self.parts, filters, cursor, limit)

    def get_task(self, task_id: str) -> dict:
        return case_views.get_task(self.parts, task_id)

    def list_tasks(self, filters: dict, lane_roles: set[str] | None, cursor: str | None,
                   limit: int) -> tuple[list[dict], str | None]:
        return case_views.list_tasks(self.parts, filters, lane_roles, cursor, limit)

    def case_diagram(self, case_id: str) -> dict:
        return case_views.case_diagram(self.parts, case_id)

    def trail(self, case_id: str, filters: dict) -> list[dict]:
        return case_views.trail(self.parts, case_id, filters)

    def verify_trails(self, cursor: str | None = None, limit: int | None = None) -> dict:
        return case_views.verify_trails(self.parts, cursor, limit)

    def export_events(self, since: datetime | None = None, case_id: str | None = None,
                      business_key: str | None = None) -> Iterator[dict]:
        return case_views.export_events(self.parts, since, case_id, business_key)

    # --- service-level insight (insight.py) ---------------------------------------------------------

    def insight_period(self, start: datetime | None, end: datetime | None, workflow: str | None = None,
                       priority: str | None = None) -> insight.Period:
        return insight.period(self.parts.now(), start, end, workflow, priority)

    def service_levels(self, period: insight.Period, by: Sequence[str] = insight.GROUPINGS["workflow-priority"]
                       ) -> list[dict]:
        with self.db.reader.connect() as conn:
            return insight.service_levels(conn, period, by)

    def step_times(self, period: insight.Period) -> list[dict]:
        with self.db.reader.connect() as conn:
            return insight.step_times(conn, period)

    def backlog(self, period: insight.Period) -> list[dict]:
        with self.db.reader.connect() as conn:
            return insight.backlog(conn, period)

    # --- the engine itself -------------------------------------------------------------------------

    def next_call_number(self, prefix: str) -> str:
        """For scripts: the next tracking number for a prefix, e.g. next_call_number("INC") -> "INC-000042".
        Taken in its own short transaction so numbers are unique across processes; a command that fails
        afterwards leaves a gap, as database sequences do."""
        if not isinstance(prefix, str) or not re.fullmatch(r"[A-Z]{2,8}", prefix):
            raise ValueError("a call number prefix is 2 to 8 capital letters, e.g. 'INC'")
        for _ in range(3):
            try:
                with self.db.writer.begin() as conn:
                    number = store.next_in_sequence(conn, f"call:{prefix}")
                return f"{prefix}-{number:06d}"
            except IntegrityError:  # two processes created the counter at once; the other one won
                continue
        raise ConcurrentUpdate(f"could not take a number for {prefix}; try again")

    def migrate(self) -> None:
        migrate(self.db)

    def close(self) -> None:
        self.db.dispose()

    def _now(self) -> datetime:
        """Naive UTC for the database (definition_commands.py stamps deployments with it)."""
        return self.parts.now()

    def _load_definition(self, key: str, version: int) -> StoredDefinition:
        with self.db.reader.connect() as conn:
            stored = store.load_stored_definition(conn, key, version)
            java, unimplemented = self.settings.java_as_external_tasks, self.settings.unimplemented_as_external_tasks
            if stored is not None and (java or unimplemented):
                stored = with_opt_in_topics(conn, stored, java=java, unimplemented=unimplemented)
        if stored is None:
            raise DefinitionNotFound(f"definition '{key}' has no version {version}")
        return stored
