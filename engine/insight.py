"""Service-level insight for USM's service manager: for a period, per workflow and priority, the calls resolved,
how many met or breached their resolution target, resolution time p50/p90, the calls still open at the end of
the period, escalations fired and reclassifications; the time each step took; the backlog per lane.

Computed from the call projection on the case rows (case_state.call_columns), the task rows and the trail,
never by restoring a case (insight_queries.py has the SQL). Counts are SQL aggregates. Percentiles, and met or
breached, need each call's own time, and SQLite and PostgreSQL share no way of subtracting two times in SQL,
so they come from one indexed fetch and Python, which makes the figures identical on both databases.

What the figures mean:
- resolution time runs from the case's start (the call's registration) to the moment the case's own call was
  first fulfilled (process or workflow fulfilled), or else its case completed (a call reclassified or refused
  at intake closes without being fulfilled; it has no priority and no target). Met: within its target; the
  target is the call's own (its agreement's service level, else the priority table's standard one).
- open: calls registered before the end of the period, neither resolved nor cancelled by then.
- escalations and reclassifications: the messages escalation_raised and call_received thrown in the period,
  counted for the call of the case that threw them (a forked call's escalation counts for its case's call).
- steps: user and external tasks completed in the period, by process and element, from ready to completed.
- backlog: tasks open at the end of the period by lane: how many, of how many cases, and the oldest.
- times are whole seconds; percentiles are nearest-rank (p90 is the time that 90 % of the calls took at most:
  an observed time, never an interpolated one).
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection

from .clock import rfc3339
from .errors import InvalidInput
from .insight_queries import (ESCALATION, Period, finished_steps, lane_backlog, messages_thrown, open_calls,
                              resolved_calls)
from .store_compliance import latest_elements

__all__ = ["DEFAULT_DAYS", "GROUPINGS", "Period", "backlog", "period", "service_levels", "step_times"]

DEFAULT_DAYS = 30
# How service-level figures can be grouped: the names a client gives, and the columns they group by.
GROUPINGS: dict[str, tuple[str, ...]] = {"workflow-priority": ("workflow", "priority"), "workflow": ("workflow",),
                                         "priority": ("priority",), "total": ()}
_LONGEST = {"workflow": 8, "priority": 16}  # the columns' lengths (schema.cases)


def period(now: datetime, start: datetime | None, end: datetime | None, workflow: str | None = None,
           priority: str | None = None) -> Period:
    """The period asked for: it ends at `end` (else now) and starts at `start` (else DEFAULT_DAYS earlier)."""
    end = end or now
    if start is None:  # DEFAULT_DAYS earlier, or the first day there is
        start = end - min(timedelta(days=DEFAULT_DAYS), end - datetime.min)
    if start >= end:
        raise InvalidInput(f"the period is empty: from ({rfc3339(start)}) must be before to ({rfc3339(end)})",
                           [{"field": "from", "message": "must be before to"}])
    for field, value in (("workflow", workflow), ("priority", priority)):
        if value is not None and not 0 < len(value) <= _LONGEST[field]:
            raise InvalidInput(f"{field} must be 1 to {_LONGEST[field]} characters, such as "
                               f"{'WF3' if field == 'workflow' else 'P1'}",
                               [{"field": field, "message": f"got {len(value)} characters"}])
    return Period(start, end, workflow or None, priority or None)


def service_levels(conn: Connection, chosen: Period, by: Sequence[str] = GROUPINGS["workflow-priority"]
                   ) -> list[dict[str, Any]]:
    """One row per group of `by` (workflow and/or priority; none: one row for all calls), groups without
    a value (no priority yet) last."""
    figures: dict[tuple, dict[str, Any]] = {}

    def row(key: tuple) -> dict[str, Any]:
        return figures.setdefault(key, {**dict(zip(by, key, strict=True)), "resolved": 0, "met": 0, "breached": 0,
                                        "without_target": 0, "p50_seconds": None, "p90_seconds": None,
                                        "open": 0, "escalations": 0, "reclassifications": 0})

    times: dict[tuple, list[float]] = defaultdict(list)
    for call in conn.execute(resolved_calls(chosen)):
        key = tuple(getattr(call, name) for name in by)
        seconds = (call.resolved_at - call.created_at).total_seconds()
        times[key].append(seconds)
        entry = row(key)
        entry["resolved"] += 1
        target = call.resolution_target
        entry["without_target" if target is None else "met" if seconds <= target else "breached"] += 1
    for key, seconds in times.items():
        row(key).update(p50_seconds=percentile(seconds, 50), p90_seconds=percentile(seconds, 90))
    for found in conn.execute(open_calls(chosen, by)):
        row(tuple(found)[:len(by)])["open"] = found.calls
    for found in conn.execute(messages_thrown(chosen, by, conn.dialect.name)):
        row(tuple(found)[:len(by)])["escalations" if found.message == ESCALATION else "reclassifications"] = \
            found.thrown
    return [figures[key] for key in sorted(figures, key=_last_if_none)]


def step_times(conn: Connection, chosen: Period) -> list[dict[str, Any]]:
    """One row per process and element with tasks completed in the period, by process and element id, named and
    placed in a lane as the latest deployed version of its definition has it (the task rows are read from an
    index that holds their times but not their names)."""
    durations: dict[tuple[str, str], list[float]] = defaultdict(list)
    for step in conn.execute(finished_steps(chosen)):
        if step.state == "completed":
            durations[step.process_id, step.element_id].append((step.ended_at - step.created_at).total_seconds())
    elements = latest_elements(conn, {process for process, _ in durations})
    rows = []
    for (process, element_id), seconds in sorted(durations.items()):
        element = elements.get(process, {}).get(element_id, {})
        rows.append({"process": process, "element_id": element_id, "name": element.get("name"),
                     "lane": element.get("lane"), "completed": len(seconds), "p50_seconds": percentile(seconds, 50),
                     "p90_seconds": percentile(seconds, 90)})
    return rows


def backlog(conn: Connection, chosen: Period) -> list[dict[str, Any]]:
    """One row per lane with tasks open at the end of the period, by lane (tasks in no lane last)."""
    rows = [{"lane": found.lane, "lane_role": found.lane_role, "tasks": found.tasks, "open_calls": found.open_calls,
             "oldest_since": rfc3339(found.oldest),
             "oldest_age_seconds": whole_seconds((chosen.end - found.oldest).total_seconds())}
            for found in conn.execute(lane_backlog(chosen))]
    return sorted(rows, key=lambda found: _last_if_none((found["lane"], found["lane_role"])))


def percentile(values: Iterable[float], share: int) -> int | None:
    """The nearest-rank percentile, in whole seconds: the smallest value that `share` % of them do not exceed."""
    ordered = sorted(values)
    if not ordered:
        return None
    return whole_seconds(ordered[max(math.ceil(share * len(ordered) / 100), 1) - 1])


def whole_seconds(seconds: float) -> int:
    return math.floor(seconds + 0.5)


def _last_if_none(key: tuple) -> tuple:
    return tuple((value is None, value or "") for value in key)
