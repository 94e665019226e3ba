"""What the deployed definitions are to each other: which a client may start and how, which call which,
and which messages start which (hand-offs between cases).

Built from the latest version of every definition, as new cases would run them.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import store
from .blueprints import CompiledVersion, SpecCache
from .database import Database


@dataclass(frozen=True)
class Catalogue:
    latest: dict[str, CompiledVersion]

    def started_by(self, message: str) -> tuple[str, bool] | None:
        """Which definition a message starts, and whether through its message start event.

        A definition whose message start event has that name comes first; otherwise a message named after
        a startable definition's key starts that definition as a client would. The second way lets a
        hand-off start a process that call activities also start."""
        matches = [key for key, compiled in self.latest.items() if message in compiled.message_starts]
        if len(matches) == 1:
            return matches[0], True
        target = self.latest.get(message)
        if not matches and target is not None and startable(target):
            return message, False
        return None

    def describe(self, key: str) -> dict:
        compiled = self.latest[key]
        started = (self.started_by(name) for name in compiled.throws)
        return {"startable": startable(compiled),
                "start": {"plain": compiled.startable and compiled.plain_start,
                          "messages": sorted(compiled.message_starts)},
                "calls": sorted(compiled.meta["calls"]),
                "called_by": self.callers(key),
                "starts": sorted({found[0] for found in started if found is not None})}

    def callers(self, key: str) -> list[str]:
        return sorted(other for other, compiled in self.latest.items() if key in compiled.meta["calls"])


def startable(compiled: CompiledVersion) -> bool:
    """Whether a client may start it without naming a message: it is not marked as only called, and it
    begins at a plain start event or at its only message start event."""
    return compiled.startable and (compiled.plain_start or len(compiled.message_starts) == 1)


def load_catalogue(db: Database, specs: SpecCache) -> Catalogue:
    with db.reader.connect() as conn:
        latest = [(row.key, row.version) for row in store.latest_definitions(conn)]
    return Catalogue({key: specs.compiled(key, version) for key, version in latest})
