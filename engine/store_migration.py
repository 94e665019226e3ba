"""The SQL of migrating cases to another definition version (case_migration.py): which cases a bulk
migration considers, and the columns a migration changes beside those every command writes."""
from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy import and_, or_, select, update
from sqlalchemy.engine import Connection

from .store import decode_cursor, encode_cursor
from .schema import cases, tasks
from .projections import lane_role

# A finished case has nothing left to move.
NOT_FINISHED = ("running", "error", "suspended")


def cases_to_migrate(conn: Connection, key: str, version: int | None, statuses: Sequence[str], target: int,
                     cursor: str | None, limit: int) -> tuple[list[str], str | None]:
    """Ids of the unfinished cases of `key` not yet on `target` (on `version`, when given, in one of
    `statuses`), oldest first, at most `limit` after `cursor`, and the cursor of the next page (None on the
    last)."""
    query = select(cases.c.id, cases.c.created_at).where(
        cases.c.definition_key == key, cases.c.status.in_([s for s in statuses if s in NOT_FINISHED]),
        cases.c.definition_version != target)
    if version is not None:
        query = query.where(cases.c.definition_version == version)
    if cursor:
        moment, last_id = decode_cursor(cursor)
        query = query.where(or_(cases.c.created_at > moment,
                                and_(cases.c.created_at == moment, cases.c.id > last_id)))
    rows = list(conn.execute(query.order_by(cases.c.created_at, cases.c.id).limit(limit + 1)))
    more, rows = len(rows) > limit, rows[:limit]
    return [row.id for row in rows], encode_cursor(rows[-1].created_at, rows[-1].id) if more else None


def repin_case(conn: Connection, case_id: str, version: int, pins: dict[str, int], incident: str | None) -> None:
    """Point the case at its new definition version (and, when given, write its incident back as it was).
    Called inside the save's transaction, after the row version guard has claimed the row, so it needs no
    guard of its own."""
    values: dict = {"definition_version": version, "pins": json.dumps(pins)}
    if incident is not None:
        values["incident"] = incident
    conn.execute(update(cases).where(cases.c.id == case_id).values(**values))


def retag_ready_tasks(conn: Connection, rows: Sequence[dict]) -> None:
    """A ready task kept its id across the migration but now runs a renamed element (or one in another
    lane): its worklist row follows it. `rows` hold id, process_id, element_id, name and lane."""
    for row in rows:
        conn.execute(update(tasks).where(tasks.c.id == row["id"], tasks.c.state == "ready").values(
            process_id=row["process_id"], element_id=row["element_id"], name=row["name"], lane=row["lane"],
            lane_role=None if row.get("topic") else lane_role(row["lane"])))
