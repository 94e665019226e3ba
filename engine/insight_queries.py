"""The SQL of service-level insight (insight.py): each figure from the call projection on the case rows, the
task rows and the trail, through an index that narrows it to the period (docs/insight-query-plans.md shows
the plans at 100 000 cases). Each function builds a statement; insight.py runs them."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (JSON, ColumnElement, Select, and_, cast, func, literal_column, or_, select, type_coerce,
                        union_all)

from .schema import cases, events, tasks

# The messages of USM's contract (definitions/README.md) that the figures count: a resolution target passed,
# and a call handed back to the service desk because it was reclassified at intake.
ESCALATION = "escalation_raised"
RECLASSIFICATION = "call_received"


@dataclass(frozen=True)
class Period:
    """[start, end) in naive UTC, as the database keeps times, narrowed to one workflow and/or priority."""
    start: datetime
    end: datetime
    workflow: str | None = None
    priority: str | None = None


def _of_chosen_calls(query: Select[Any], period: Period) -> Select[Any]:
    """The query narrowed to cases of the period's workflow and priority, when it names them."""
    if period.workflow is not None:
        query = query.where(cases.c.workflow == period.workflow)
    if period.priority is not None:
        query = query.where(cases.c.priority == period.priority)
    return query


def _chosen(query: Select[Any], period: Period, case_id: ColumnElement[Any]) -> Select[Any]:
    """Rows of other tables narrowed the same way, through their case (joined only when a filter needs it)."""
    if period.workflow is None and period.priority is None:
        return query
    return _of_chosen_calls(query.join(cases, cases.c.id == case_id), period)


def resolved_calls(period: Period) -> Select[Any]:
    """Calls first resolved in the period: workflow, priority, created_at, resolved_at, resolution_target."""
    query = select(cases.c.workflow, cases.c.priority, cases.c.created_at, cases.c.resolved_at,
                   cases.c.resolution_target).where(cases.c.resolved_at >= period.start,
                                                    cases.c.resolved_at < period.end,
                                                    cases.c.call_number.is_not(None))
    return _of_chosen_calls(query, period)


def open_calls(period: Period, by: Sequence[str]) -> Select[Any]:
    """(grouping columns..., calls) of the calls open at the period's end: registered before it, not resolved
    by then and not cancelled by then (a cancelled case is never written again, so its updated_at is when).
    Not resolved yet (ix_cases_unresolved_calls, or ix_cases_resolved), or resolved after the end (a range of
    ix_cases_resolved): never a scan of every case."""
    columns = [cases.c.workflow, cases.c.priority]
    registered = and_(cases.c.created_at < period.end,
                      or_(cases.c.status != "cancelled", cases.c.updated_at >= period.end))
    unresolved = _of_chosen_calls(select(*columns).where(
        cases.c.resolved_at.is_(None), cases.c.call_number.is_not(None), registered), period)
    resolved_later = _of_chosen_calls(select(*columns).where(
        cases.c.resolved_at >= period.end, cases.c.call_number.is_not(None), registered), period)
    open_ = union_all(unresolved, resolved_later).subquery()
    keys = [open_.c[name] for name in by]
    return select(*keys, func.count().label("calls")).select_from(open_).group_by(*keys)


def messages_thrown(period: Period, by: Sequence[str], dialect: str) -> Select[Any]:
    """(grouping columns..., message, thrown) of the escalations and reclassifications thrown in the period, by
    the case's call."""
    message = _message_name(dialect).label("message")
    keys = [cases.c[name] for name in by]
    query = (select(*keys, message, func.count().label("thrown"))
             .select_from(events.join(cases, cases.c.id == events.c.chain))
             .where(events.c.type == literal_column("'message_sent'"),  # the events of ix_events_messages
                    events.c.at >= period.start, events.c.at < period.end, message.in_([ESCALATION, RECLASSIFICATION]))
             .group_by(*keys, message))
    return _of_chosen_calls(query, period)


def _message_name(dialect: str) -> ColumnElement[Any]:
    """The `message` of an event's details (JSON text): SQLite reads the text as JSON as it stands, PostgreSQL
    needs it cast first."""
    details = cast(events.c.details, JSON) if dialect == "postgresql" else type_coerce(events.c.details, JSON)
    return details["message"].as_string()


def finished_steps(period: Period) -> Select[Any]:
    """Tasks ended in the period: process_id, element_id, state, created_at, ended_at, all from ix_tasks_ended
    (the few cancelled ones are left out by the reader: a condition on state would draw SQLite, which keeps
    no statistics here, to ix_tasks_state_created, whose completed tasks are nearly all tasks)."""
    query = select(tasks.c.process_id, tasks.c.element_id, tasks.c.state, tasks.c.created_at, tasks.c.ended_at
                   ).where(tasks.c.ended_at >= period.start, tasks.c.ended_at < period.end)
    return _chosen(query, period, tasks.c.case_id)


def lane_backlog(period: Period) -> Select[Any]:
    """(lane, lane_role, tasks, open_calls, oldest) of the tasks open at the period's end: ready now and made
    before it, or made before it and ended since (index ranges rather than one scan of every task)."""
    columns = (tasks.c.lane, tasks.c.lane_role, tasks.c.case_id, tasks.c.created_at)
    waiting = select(*columns).where(tasks.c.state == "ready", tasks.c.created_at < period.end)
    ended_since = select(*columns).where(tasks.c.ended_at >= period.end, tasks.c.created_at < period.end)
    open_tasks = union_all(_chosen(waiting, period, tasks.c.case_id),
                           _chosen(ended_since, period, tasks.c.case_id)).subquery()
    return (select(open_tasks.c.lane, open_tasks.c.lane_role, func.count().label("tasks"),
                   func.count(open_tasks.c.case_id.distinct()).label("open_calls"),
                   func.min(open_tasks.c.created_at).label("oldest"))
            .group_by(open_tasks.c.lane, open_tasks.c.lane_role))


def every_query(period: Period, dialect: str) -> dict[str, Select[Any]]:
    """Each query of the figures by name, as insight.py runs it ungrouped by anything but workflow and
    priority (for printing their plans: bench/insight_plans.py)."""
    by = ("workflow", "priority")
    return {"resolved calls": resolved_calls(period), "open calls": open_calls(period, by),
            "messages thrown": messages_thrown(period, by, dialect), "finished steps": finished_steps(period),
            "lane backlog": lane_backlog(period)}
