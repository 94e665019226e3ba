"""The call record on the case row, and the indexes of service-level insight.

The cases of USM keep their call record (definitions/README.md) in the case data; searching by call
number and the service-level figures (engine/insight.py) read it from four columns instead: the number,
the priority, the resolution target in seconds and when the call was first resolved. Every save writes
them (engine/case_state.py, call_columns); the rows already there are filled in from their data (from
their trail while the case runs inside a fork and the forked call's record is in view), and the moment a
call was resolved from its trail: the first event that shows the case's own call fulfilled, else its
completion. The indexes find calls resolved in a period, steps finished in a period and the messages
thrown in a period; a partial index holds the calls not resolved yet.

Revision ID: 0009
Revises: 0008
"""
import json

import sqlalchemy as sa
from alembic import op

from usm_engine.engine.case_state import FULFILLED, call_columns

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

BATCH = 500
_COLUMNS = ("call_number", "priority", "resolution_target", "resolved_at")


def upgrade() -> None:
    op.add_column("cases", sa.Column("call_number", sa.String(64)))
    op.add_column("cases", sa.Column("priority", sa.String(16)))
    op.add_column("cases", sa.Column("resolution_target", sa.Integer))
    op.add_column("cases", sa.Column("resolved_at", sa.DateTime))
    _backfill(op.get_bind())
    op.create_index("ix_cases_call_number", "cases", ["call_number"])
    op.create_index("ix_cases_resolved", "cases", ["resolved_at", "call_number", "workflow", "priority", "created_at",
                                                   "resolution_target"])
    unresolved_call = sa.text("resolved_at IS NULL AND call_number IS NOT NULL")
    op.create_index("ix_cases_unresolved_calls", "cases", ["created_at"], sqlite_where=unresolved_call,
                    postgresql_where=unresolved_call)
    op.create_index("ix_tasks_ended", "tasks", ["ended_at", "state", "process_id", "element_id", "created_at"])
    op.create_index("ix_events_type_at", "events", ["type", "at"])


def downgrade() -> None:
    op.drop_index("ix_events_type_at", "events")
    op.drop_index("ix_tasks_ended", "tasks")
    op.drop_index("ix_cases_unresolved_calls", "cases")
    op.drop_index("ix_cases_resolved", "cases")
    op.drop_index("ix_cases_call_number", "cases")
    for name in reversed(_COLUMNS):
        op.drop_column("cases", name)


def _backfill(connection: sa.Connection) -> None:
    """A page of cases at a time, by id, so that memory stays flat and no cursor is open while rows change."""
    cases = sa.table("cases", sa.column("id"), sa.column("status"), sa.column("data"), sa.column("updated_at"),
                     *[sa.column(name) for name in _COLUMNS])
    last = ""
    while True:
        rows = list(connection.execute(sa.select(cases.c.id, cases.c.status, cases.c.data, cases.c.updated_at)
                                       .where(cases.c.id > last).order_by(cases.c.id).limit(BATCH)))
        if not rows:
            return
        last = rows[-1].id
        found = {row.id: _columns(json.loads(row.data or "{}"), row) for row in rows}
        trails = _own_calls(connection, [case_id for case_id, columns in found.items() if columns is not None])
        values = []
        for row in rows:
            columns = found[row.id]
            if columns is None:
                continue
            own, resolved_at = trails.get(row.id, (None, None))
            if not columns and own is not None:  # a forked call is in view: the case's own is in its trail
                columns = call_columns({"call": own}, row.status, row.updated_at)
            if columns.get("resolved_at") is not None:
                columns["resolved_at"] = resolved_at or columns["resolved_at"]
            if columns:
                values.append({"b_id": row.id, **columns})
        if values:
            connection.execute(cases.update().where(cases.c.id == sa.bindparam("b_id")).values(
                {name: sa.bindparam(name) for name in _COLUMNS}), values)


def _columns(data: dict, row: sa.Row) -> dict | None:
    """The projection the case's data gives ({} while a forked call is in view), or None: no call at all."""
    if not isinstance(data.get("call"), dict):
        return None
    return call_columns(data, row.status, row.updated_at)


def _own_calls(connection: sa.Connection, case_ids: list[str]) -> dict[str, tuple]:
    """{case id: (the newest record of the case's own call in its trail, when that call was first fulfilled, else
    when the case completed)}: the calls forked within the case have a parent, the case's own has none."""
    if not case_ids:
        return {}
    events = sa.table("events", sa.column("chain"), sa.column("seq"), sa.column("type"), sa.column("at"),
                      sa.column("data_changes"))
    query = (sa.select(events.c.chain, events.c.type, events.c.at, events.c.data_changes)
             .where(events.c.chain.in_(case_ids),
                    sa.or_(events.c.type == "case_completed", events.c.data_changes.like('%"call"%')))
             .order_by(events.c.chain, events.c.seq))
    own: dict = {}
    fulfilled: dict = {}
    completed: dict = {}
    for chain, type_, at, changes in connection.execute(query):
        if type_ == "case_completed":
            completed.setdefault(chain, at)
            continue
        call = (json.loads(changes).get("call") or [None, None])[1]
        if isinstance(call, dict) and not call.get("parent"):
            own[chain] = call
            if call.get("status") in FULFILLED:
                fulfilled.setdefault(chain, at)
    return {case_id: (own.get(case_id), fulfilled.get(case_id) or completed.get(case_id)) for case_id in case_ids}
