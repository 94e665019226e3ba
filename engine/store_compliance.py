"""The SQL of the compliance cross-reference: the requirements read from deployed files and the cases
whose trail shows a requirement's activities executed."""
from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from sqlalchemy import and_, delete, insert, or_, select
from sqlalchemy.engine import Connection, Row

from .schema import cases, compliance_requirements, events
from .store import latest_definitions, page_by_time


def replace_compliance(conn: Connection, source_files: list[str], rows: list[dict]) -> None:
    conn.execute(delete(compliance_requirements).where(compliance_requirements.c.source_file.in_(source_files)))
    if rows:
        conn.execute(insert(compliance_requirements), rows)


def compliance(conn: Connection) -> list:
    return list(conn.execute(select(compliance_requirements).order_by(compliance_requirements.c.ref)))


def latest_elements(conn: Connection, keys: Collection[str]) -> dict[str, dict]:
    """{key: elements} of the latest version of each deployed definition named."""
    found = {}
    for row in latest_definitions(conn):
        if row.key in keys:
            found[row.key] = json.loads(row.meta)["elements"]
    return found


def cases_executing(conn: Connection, activities: list[tuple[str, str]], cursor: str | None,
                    limit: int) -> tuple[list[tuple[Row[Any], list[str]]], str | None]:
    """Cases whose trail shows any of these (definition, element id) executed, oldest first, with the
    element ids they executed. Events from before migration 0005 name no element definition; for
    those the element id alone decides. A case's events are its chain (the deployments' have no element)."""
    executed = ("task_completed", "activity_completed", "event_passed", "gateway_taken", "timer_fired",
                "message_received", "message_sent")
    element_ids = sorted({element_id for _, element_id in activities})
    placed = or_(*[and_(events.c.element_definition == definition, events.c.element_id == element_id)
                   for definition, element_id in activities])
    legacy = and_(events.c.element_definition.is_(None), events.c.element_id.in_(element_ids))
    hits = (select(events.c.chain.label("case_id"), events.c.element_id).where(
        events.c.element_id.in_(element_ids), or_(placed, legacy), events.c.type.in_(executed)).distinct().subquery())
    query = select(cases.c.id, cases.c.definition_key, cases.c.definition_version, cases.c.business_key,
                   cases.c.status, cases.c.created_at).where(cases.c.id.in_(select(hits.c.case_id)))
    rows, next_cursor = page_by_time(conn, query, cases.c.created_at, cases.c.id, cursor, limit)
    by_case: dict[str, list[str]] = {row.id: [] for row in rows}
    if rows:
        for case_id, element_id in conn.execute(select(hits.c.case_id, hits.c.element_id).where(
                hits.c.case_id.in_(list(by_case)))):
            by_case[case_id].append(element_id)
    return [(row, sorted(by_case[row.id])) for row in rows], next_cursor
