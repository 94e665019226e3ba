"""Timers on the engine's clock.

SpiffWorkflow computes timer deadlines and decides whether they passed with `datetime.now()` inside
its timer module. We give that module a `datetime` whose `now()` asks the clock of the engine that is
running the current command (a context variable, so threads and engines do not mix), which lets tests
move time and a worker fire timers exactly when the engine's clock says they are due.
"""
from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone, tzinfo

from SpiffWorkflow.bpmn.specs.event_definitions import timer as spiff_timer

from .clock import Clock

_current_clock: contextvars.ContextVar[Clock | None] = contextvars.ContextVar("usm_engine_clock", default=None)


class _ClockedDatetime(datetime):
    @classmethod
    def now(cls, tz: tzinfo | None = None) -> datetime:  # type: ignore[override]  # a plain datetime will do
        clock = _current_clock.get()
        if clock is None:
            return datetime.now(tz)
        moment = clock.now()
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return moment.astimezone(tz) if tz is not None else moment.astimezone(timezone.utc).replace(tzinfo=None)


spiff_timer.datetime = _ClockedDatetime


@contextmanager
def running_on(clock: Clock) -> Iterator[None]:
    token = _current_clock.set(clock)
    try:
        yield
    finally:
        _current_clock.reset(token)
