"""Firing the timers that are due by the engine's clock, case by case, as the timer worker asks."""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from . import incidents, store
from .case_work import open_case
from .clock import rfc3339
from .errors import ConcurrentUpdate, Conflict
from .incidents import Place
from .parts import EngineParts

log = logging.getLogger(__name__)


def fire_due_timers(parts: EngineParts, limit: int) -> int:
    """Fire the timers that are due by the engine's clock; returns how many cases moved on.

    Several workers may run this at once: each case is saved with the usual row-version check, so
    a timer that two workers fire at the same moment is recorded by one and dropped by the other, and
    on PostgreSQL they share the due cases out between them (_claims)."""
    with parts.db.reader.connect() as conn:
        due = store.due_case_ids(conn, parts.now(), limit)
    fired = 0
    with _claims(parts) as claim:
        for case_id in due:
            with claim(case_id) as mine:
                if mine:
                    fired += _fire_one(parts, case_id)
    return fired


def _fire_one(parts: EngineParts, case_id: str) -> int:
    try:
        return _fire_timers_of(parts, case_id)
    except ConcurrentUpdate:
        return 0  # another worker or a user got there first; its state is the truth now
    except OperationalError:
        raise  # the database itself is away: nothing to blame on this case
    except Exception as exc:  # one case must never stop the timers of all others
        log.exception("firing the timers of case %s failed", case_id)
        try:
            _record_failure(parts, case_id, exc)
        except Exception:  # logged; the next pass tries this case again
            log.exception("could not record the incident of case %s", case_id)
        return 0


# The advisory-lock space of timer claims (the migrations lock 727274 alone, a single number).
CLAIM_SPACE = 727275


@contextmanager
def _claims(parts: EngineParts) -> Iterator[Callable[[str], AbstractContextManager[bool]]]:
    """Who fires which due case when several workers pass at once. All of them find the same cases due,
    oldest first; without claims each restores and runs every case and all but one lose at the save, so
    two workers fired timers no faster than one. On PostgreSQL a worker claims a case with a session
    advisory lock it tries (never waits for) and skips the cases another holds. SQLite runs one writer at
    a time anyway: every case is claimed. The row-version check at the save still decides; claims only
    spare the work."""
    if parts.db.writer.dialect.name != "postgresql":
        yield lambda _case_id: nullcontext(True)
        return
    with parts.db.writer.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        @contextmanager
        def claim(case_id: str) -> Iterator[bool]:
            key = {"space": CLAIM_SPACE, "case": case_id}
            mine = conn.execute(text("SELECT pg_try_advisory_lock(:space, hashtext(:case))"), key).scalar()
            try:
                yield bool(mine)
            finally:
                if mine:
                    conn.execute(text("SELECT pg_advisory_unlock(:space, hashtext(:case))"), key)

        yield claim


# SpiffWorkflow fires a timer once its moment has passed, not at it: wake a little after.
PAST_DUE_SECONDS = 0.005


def seconds_to_next_timer(parts: EngineParts, longest: float) -> float:
    """How long a worker may sleep before a timer not yet due falls due (at most `longest`, which also
    bounds how late a timer of a case started meanwhile is noticed)."""
    now = parts.now()
    with parts.db.reader.connect() as conn:
        due = store.next_due_after(conn, now)
    if due is None:
        return longest
    return min(longest, max(0.0, (due - now).total_seconds() + PAST_DUE_SECONDS))


def _fire_timers_of(parts: EngineParts, case_id: str) -> int:
    try:
        work = open_case(parts, case_id, "timer")
    except Conflict:
        return 0  # no longer running since it was found due: its timers wait (or are gone)
    work.workflow.refresh_timers()
    outcome = work.advance()
    if not work.recorder.events and outcome.next_timer_at == rfc3339(work.row.next_timer_at):
        return 0  # not actually due (e.g. a cycle timer's next slot): leave the row alone
    work.save(outcome)
    parts.observer.timer_fired(work.row.definition_key, (work.recorder.at - work.row.next_timer_at).total_seconds())
    return 1


def _record_failure(parts: EngineParts, case_id: str, exc: Exception) -> None:
    """The case gets an incident where its timers failed, and is no longer due, so the worker goes
    on and does not fail on it again at every pass."""
    try:
        work = open_case(parts, case_id, "timer")
        text = getattr(exc, "detail", None) or incidents.exception_text(exc)
        incident = incidents.timer_failed(Place(definition=work.row.definition_key), text)
        work.recorder.add("incident", message=incident.message)
        work.save_status("error", incident)
    except Conflict:
        return  # someone else moved the case on meanwhile; its state is the truth now
    parts.observer.incident(work.row.definition_key)
