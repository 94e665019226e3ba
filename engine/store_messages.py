"""The SQL of message routing: which running cases wait for which message (kept in step with each
case's waiting_for), and which case a repeatable message request went to."""
from __future__ import annotations

from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection, Row

from .schema import cases, message_requests, message_waits


def cases_waiting_for_message(conn: Connection, name: str, business_key: str | None) -> list:
    """Running cases that wait for this message (by its exact name), oldest first."""
    query = (select(cases.c.id, cases.c.data).join(message_waits, message_waits.c.case_id == cases.c.id)
             .where(message_waits.c.name == name, cases.c.status == "running")
             .order_by(cases.c.created_at, cases.c.id))
    if business_key is not None:
        query = query.where(cases.c.business_key == business_key)
    return list(conn.execute(query))


def replace_message_waits(conn: Connection, case_id: str, waiting_for: list[dict], fresh: bool = False) -> None:
    """Keep the message waits of a case in step with its waiting_for projection."""
    if not fresh:
        conn.execute(delete(message_waits).where(message_waits.c.case_id == case_id))
    names = sorted({w["name"] for w in waiting_for if w.get("type") == "message" and w.get("name")})
    if names:
        conn.execute(insert(message_waits), [{"case_id": case_id, "name": name} for name in names])


def find_message_request(conn: Connection, actor: str, key: str) -> Row[Any] | None:
    return conn.execute(select(message_requests).where(
        message_requests.c.created_by == actor, message_requests.c.idempotency_key == key)).first()


def insert_message_request(conn: Connection, values: dict) -> None:
    conn.execute(insert(message_requests).values(**values))
