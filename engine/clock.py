"""Time comes from a clock object so tests can move it; nothing else in the engine calls datetime.now()."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class FixedClock:
    """A clock for tests: stands still until told to move."""

    def __init__(self, start: datetime | None = None):
        self._now = start or datetime(2026, 1, 1, tzinfo=timezone.utc)

    def now(self) -> datetime:
        return self._now

    def advance(self, **delta: Any) -> None:
        self._now += timedelta(**delta)

    def move_to(self, moment: datetime) -> None:
        self._now = moment


def rfc3339(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:  # SQLite hands back naive datetimes; we only ever store UTC
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def parse_rfc3339(text: str) -> datetime:
    """'2026-11-27T20:15:00Z' (or with an offset; without one it is UTC) as naive UTC, the way the database
    keeps times. Raises ValueError for text that is not such a time."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            return moment
        return moment.astimezone(timezone.utc).replace(tzinfo=None)
    except OverflowError:  # an offset that moves year 1 or 9999 out of range
        raise ValueError(f"{text} is out of range") from None
