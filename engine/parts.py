"""What the case commands and reads work with, handed to them by the Engine facade (service.py)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine

from .blueprints import SpecCache
from .clock import Clock
from .database import Database
from .observer import Observer
from .settings import EngineSettings
from .workflow_cache import WorkflowCache


@dataclass(frozen=True)
class EngineParts:
    db: Database
    specs: SpecCache
    clock: Clock
    script_engine: PythonScriptEngine  # the sandbox every case runs its scripts in
    observer: Observer
    settings: EngineSettings
    workflows: WorkflowCache  # the workflows this process saved last (workflow_cache.py)

    def now(self) -> datetime:
        """Naive UTC for the database: SQLite keeps no zone, and every stored time is UTC."""
        return self.clock.now().astimezone(timezone.utc).replace(tzinfo=None)
