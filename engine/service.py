"""The engine: one object that holds the database, the spec cache and the sandboxed script engine, and
offers the commands (definition_commands.py, case_commands.py) and reads (case_views.py)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

from sqlalchemy.exc import IntegrityError

from . import store
from .blueprints import SpecCache, StoredDefinition
from .case_commands import CaseCommands
from .case_views import CaseViews
from .clock import SystemClock
from .database import Database, connect, migrate
from .definition_commands import DefinitionCommands
from .deployment import Limits
from .errors import ConcurrentUpdate, DefinitionNotFound
from .observer import Observer
from .sandbox import make_script_engine


@dataclass
class EngineSettings:
    database_url: str
    limits: Limits = field(default_factory=Limits)
    max_case_data_bytes: int = 1024 * 1024
    spec_cache_size: int = 256


class Engine(DefinitionCommands, CaseCommands, CaseViews):
    def __init__(self, settings: EngineSettings, clock=None, database: Database | None = None,
                 observer: Observer | None = None):
        self.settings = settings
        self.clock = clock or SystemClock()
        self.observer = observer or Observer()
        self.db = database or connect(settings.database_url)
        self.script_engine = make_script_engine({"next_call_number": self.next_call_number})
        self.specs = SpecCache(self._load_definition, settings.spec_cache_size)

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
        """Naive UTC for the database: SQLite keeps no zone, and every stored time is UTC."""
        return self.clock.now().astimezone(timezone.utc).replace(tzinfo=None)

    def _load_definition(self, key: str, version: int) -> StoredDefinition:
        with self.db.reader.connect() as conn:
            stored = store.load_stored_definition(conn, key, version)
        if stored is None:
            raise DefinitionNotFound(f"definition '{key}' has no version {version}")
        return stored

