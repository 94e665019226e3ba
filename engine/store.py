"""The SQL of the engine, but for external task locks (store_locks.py), message routing
(store_messages.py) and the compliance cross-reference (store_compliance.py). Functions take a
connection so callers decide the transaction."""
from __future__ import annotations

import base64
import functools
import json
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any, Unpack

from sqlalchemy import Column, ColumnElement, Select, Update, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.engine import Connection, Row

from . import driver_statements
from .blueprints import StoredDefinition
from .errors import InvalidInput
from .schema import READY_STATE, cases, definition_files, definitions, events, events_public, tasks

DEFINITION_SUMMARY = [definitions.c.id, definitions.c.key, definitions.c.name, definitions.c.version,
                      definitions.c.hash, definitions.c.deployed_at, definitions.c.deployed_by,
                      definitions.c.bpmn_file]


# --- definitions ---------------------------------------------------------------------------------

def latest_definitions(conn: Connection) -> list:
    newest = (select(definitions.c.key, func.max(definitions.c.version).label("version"))
              .group_by(definitions.c.key).subquery())
    query = (select(*DEFINITION_SUMMARY, definitions.c.meta)
             .join(newest, and_(definitions.c.key == newest.c.key, definitions.c.version == newest.c.version))
             .order_by(definitions.c.key))
    return list(conn.execute(query))


def definition_versions(conn: Connection, key: str) -> list:
    return list(conn.execute(select(*DEFINITION_SUMMARY).where(definitions.c.key == key)
                             .order_by(definitions.c.version)))


MAX_VERSION = 2**31 - 1  # the column is a 32-bit integer on PostgreSQL


def find_definition(conn: Connection, key: str, version: int | None = None) -> Row[Unpack[tuple[Any, ...]]] | None:
    if version is not None and not 0 < version <= MAX_VERSION:
        return None  # no such version can exist; asking the database would overflow its integer
    query = select(*DEFINITION_SUMMARY, definitions.c.meta).where(definitions.c.key == key)
    if version is None:
        query = query.order_by(definitions.c.version.desc()).limit(1)
    else:
        query = query.where(definitions.c.version == version)
    return conn.execute(query).first()


def latest_version_numbers(conn: Connection, keys: Iterable[str]) -> dict[str, int]:
    query = (select(definitions.c.key, func.max(definitions.c.version))
             .where(definitions.c.key.in_(list(keys))).group_by(definitions.c.key))
    return {key: version for key, version in conn.execute(query)}


def deployed_keys(conn: Connection) -> set[str]:
    return {row[0] for row in conn.execute(select(definitions.c.key).distinct())}


def load_stored_definition(conn: Connection, key: str, version: int) -> StoredDefinition | None:
    row = conn.execute(select(definitions.c.spec, definitions.c.embedded, definitions.c.meta, definitions.c.hash)
                       .where(definitions.c.key == key, definitions.c.version == version)).first()
    if row is None:
        return None
    return StoredDefinition(key, version, json.loads(row.spec), json.loads(row.embedded), json.loads(row.meta),
                            row.hash)


def insert_definition(conn: Connection, values: dict, files: dict[str, bytes]) -> None:
    conn.execute(insert(definitions).values(**values))
    conn.execute(insert(definition_files), [
        {"definition_id": values["id"], "filename": name, "content": content} for name, content in files.items()])


def definition_file(conn: Connection, definition_id: str, filename: str) -> bytes | None:
    row = conn.execute(select(definition_files.c.content).where(
        definition_files.c.definition_id == definition_id, definition_files.c.filename == filename)).first()
    return None if row is None else bytes(row[0])


# --- cases -----------------------------------------------------------------------------------------

# The complete-task path runs these on every request. Built once with bind parameters, SQLAlchemy
# skips building and caching a statement per call, which cost more than SQLite running it (BENCHMARKS.md).
_GET_CASE = select(cases).where(cases.c.id == bindparam("b_id"))
_GET_TASK = select(tasks).where(tasks.c.id == bindparam("b_id"))
_READY_OF_ONE_CASE = (select(tasks).where(tasks.c.case_id == bindparam("b_case"), tasks.c.state == READY_STATE)
                      .order_by(tasks.c.created_at, tasks.c.id))
_END_ONE_TASK = (update(tasks).where(tasks.c.id == bindparam("b_id"), tasks.c.state == "ready")
                 .values(state=bindparam("b_state"), ended_at=bindparam("b_at"), completed_by=bindparam("b_by")))


def get_case(conn: Connection, case_id: str) -> Row[Any] | None:
    return conn.execute(_GET_CASE, {"b_id": case_id}).first()


def get_case_summary(conn: Connection, case_id: str) -> Row[Any] | None:
    return conn.execute(select(*[c for c in cases.c if c.name != "state"]).where(cases.c.id == case_id)).first()


def find_idempotent_case(conn: Connection, actor: str, key: str) -> Row[Unpack[tuple[Any, ...]]] | None:
    return conn.execute(select(cases.c.id, cases.c.request_hash).where(
        cases.c.created_by == actor, cases.c.idempotency_key == key)).first()


def insert_case(conn: Connection, values: dict) -> None:
    conn.execute(insert(cases).values(**values))


def update_case(conn: Connection, case_id: str, expected_version: int, values: dict) -> bool:
    """Write only if nobody else wrote since we read: the heart of optimistic concurrency."""
    changed = driver_statements.execute(conn, case_update(tuple(sorted(values))), {
        "b_id": case_id, "b_expected": expected_version, "b_next": expected_version + 1, **values})
    return changed == 1


@functools.cache  # one prepared UPDATE per set of columns written: a handful
def case_update(columns: tuple[str, ...]) -> Update:
    """The UPDATE of a case row writing `columns` (sorted) if its row version is still b_expected (b_next after)."""
    return (update(cases).where(cases.c.id == bindparam("b_id"), cases.c.row_version == bindparam("b_expected"))
            .values({**{name: _written(name) for name in columns}, "row_version": bindparam("b_next")}))


def _written(name: str) -> ColumnElement[Any]:
    """What an UPDATE writes to a column: the value given, but a call stays resolved when it was first resolved."""
    if name == "resolved_at":
        return func.coalesce(cases.c.resolved_at, bindparam(name, type_=cases.c.resolved_at.type))
    return bindparam(name)


def list_cases(conn: Connection, filters: dict, cursor: str | None, limit: int) -> tuple[list, str | None]:
    columns = [c for c in cases.c if c.name != "state"]
    query = _filtered(select(*columns), filters, {
        "status": lambda v: cases.c.status == v, "definition": lambda v: cases.c.definition_key == v,
        "call_number": lambda v: cases.c.call_number == v, "workflow": lambda v: cases.c.workflow == v,
        "business_key": lambda v: cases.c.business_key == v, "created_after": lambda v: cases.c.created_at >= v,
        "created_before": lambda v: cases.c.created_at < v})
    return page_by_time(conn, query, cases.c.created_at, cases.c.id, cursor, limit)


def _filtered(query: Select[Any], filters: dict,
              conditions: dict[str, Callable[[Any], ColumnElement[bool]]]) -> Select[Any]:
    """The query narrowed by each filter that is given: `conditions` maps its name to the condition."""
    for name, condition in conditions.items():
        if filters.get(name):
            query = query.where(condition(filters[name]))
    return query


# --- tasks -----------------------------------------------------------------------------------------

# The columns a new task's and a new event's row give (projections.event_row: the definition hash is in the
# definitions row). Plain str: orjson (store_steps.py) refuses str subclasses, as SQLAlchemy's names are, as keys.
TASK_COLUMNS = tuple(str(column.name) for column in tasks.c)
EVENT_COLUMNS = tuple(str(column.name) for column in events.c if column.name != "definition_hash")
# Built once: driver_statements keeps them compiled.
_INSERT_TASK = insert(tasks).values({name: bindparam(name) for name in TASK_COLUMNS})
_INSERT_EVENT = insert(events).values({name: bindparam(name) for name in EVENT_COLUMNS})


def insert_tasks(conn: Connection, rows: list[dict]) -> None:
    if rows:
        driver_statements.execute(conn, _INSERT_TASK, rows)


def end_tasks(conn: Connection, task_ids: list[str], state: str, at: datetime, by: str | None = None) -> None:
    if len(task_ids) == 1:
        driver_statements.execute(conn, _END_ONE_TASK, {"b_id": task_ids[0], "b_state": state, "b_at": at, "b_by": by})
    elif task_ids:
        conn.execute(update(tasks).where(tasks.c.id.in_(task_ids), tasks.c.state == "ready")
                     .values(state=state, ended_at=at, completed_by=by))


def get_task(conn: Connection, task_id: str) -> Row[Any] | None:
    return conn.execute(_GET_TASK, {"b_id": task_id}).first()


def ready_tasks_of_cases(conn: Connection, case_ids: list[str]) -> dict[str, list]:
    # SQLite, without statistics, answers an IN over cases from ix_tasks_state_created (every ready task of the
    # store) rather than one lookup per case in ix_tasks_ready_case; in-process, a lookup each costs microseconds.
    if len(case_ids) == 1 or conn.dialect.name == "sqlite":
        return {case_id: list(conn.execute(_READY_OF_ONE_CASE, {"b_case": case_id})) for case_id in case_ids}
    found: dict[str, list] = {case_id: [] for case_id in case_ids}
    if case_ids:  # no ORDER BY, which could draw the planner to ix_tasks_state_created: each case's few are sorted here
        for row in conn.execute(select(tasks).where(tasks.c.case_id.in_(case_ids), tasks.c.state == READY_STATE)):
            found[row.case_id].append(row)
        for rows in found.values():
            rows.sort(key=lambda row: (row.created_at, row.id))
    return found


# What a worklist may be narrowed by, each a column of the task.
_TASK_FILTERS = {"case": tasks.c.case_id, "lane": tasks.c.lane, "definition": tasks.c.definition_key,
                 "topic": tasks.c.topic}


def list_tasks(conn: Connection, filters: dict, lane_roles: set[str] | None, cursor: str | None,
               limit: int) -> tuple[list, str | None]:
    narrowed = tuple(name for name in _TASK_FILTERS if filters.get(name))
    state = filters.get("state") or "ready"
    values: dict[str, Any] = {f"t_{name}": filters[name] for name in narrowed}
    values["t_limit"] = limit + 1
    by_state = state if state in ("ready", "any") else "other"
    if by_state == "other":
        values["t_state"] = state
    if lane_roles is not None:  # a lane holder sees only the tasks of its lanes
        values["t_roles"] = sorted(lane_roles)
    if cursor:
        values["t_after_time"], values["t_after_id"] = decode_cursor(cursor)
    rows = driver_statements.rows(conn, _tasks_page(narrowed, by_state, lane_roles is not None, bool(cursor)), values)
    return _next_page(rows, limit, "created_at", "id")


@functools.cache
def _tasks_page(narrowed: tuple[str, ...], by_state: str, by_roles: bool, after: bool) -> Select[Any]:
    """The statement of one page of tasks, built once per combination of filters and kept: a worklist client
    asks the same few every few milliseconds, and building one costs more than running it (BENCHMARKS.md).
    With each task its case's pins (what finding its form takes): one round trip instead of two."""
    query = select(tasks, cases.c.definition_key.label("case_definition_key"),
                   cases.c.definition_version.label("case_definition_version"),
                   cases.c.pins.label("case_pins")).join(cases, cases.c.id == tasks.c.case_id)
    for name in narrowed:
        query = query.where(_TASK_FILTERS[name] == bindparam(f"t_{name}"))
    if by_state == "ready":  # the literal, which the partial indexes of ready tasks match (schema.py)
        query = query.where(tasks.c.state == READY_STATE)
    elif by_state == "other":
        query = query.where(tasks.c.state == bindparam("t_state"))
    if by_roles:
        query = query.where(tasks.c.lane_role.in_(bindparam("t_roles", expanding=True)))
    if after:
        query = query.where(_after(tasks.c.created_at, tasks.c.id,
                                   bindparam("t_after_time", type_=tasks.c.created_at.type), bindparam("t_after_id")))
    return query.order_by(tasks.c.created_at, tasks.c.id).limit(bindparam("t_limit"))


# --- paging ----------------------------------------------------------------------------------------

def page_by_time(conn: Connection, query: Select[Any], time_column: Column[Any], id_column: Column[Any],
                 cursor: str | None, limit: int) -> tuple[list[Row[Any]], str | None]:
    if cursor:
        query = query.where(_after(time_column, id_column, *decode_cursor(cursor)))
    rows = list(conn.execute(query.order_by(time_column, id_column).limit(limit + 1)))
    return _next_page(rows, limit, time_column.name, id_column.name)


def _after(time_column: Column[Any], id_column: Column[Any], after_time: Any, after_id: Any) -> ColumnElement[bool]:
    """The rows after the last one of the previous page, in (time, id) order: a page's cursor."""
    return or_(time_column > after_time, and_(time_column == after_time, id_column > after_id))


def _next_page(rows: list[Row[Any]], limit: int, time_name: str, id_name: str) -> tuple[list[Row[Any]], str | None]:
    """A page read with one row more than asked: the page, and the cursor of the next one if that row exists."""
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_cursor(getattr(rows[-1], time_name), getattr(rows[-1], id_name))


def encode_cursor(moment: datetime, row_id: str) -> str:
    raw = json.dumps([moment.isoformat(), row_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        if len(cursor) > 512:
            raise ValueError("longer than any cursor this server hands out")
        padded = cursor + "=" * (-len(cursor) % 4)
        moment, row_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(row_id, str) or not 0 < len(row_id) <= 64 or "\x00" in row_id:
            raise ValueError("not an id this server hands out")
        return datetime.fromisoformat(moment), row_id
    except (ValueError, TypeError, UnicodeDecodeError, RecursionError):
        raise InvalidInput("the cursor is not one this server handed out; start again without it",
                           [{"field": "cursor", "message": "invalid cursor"}]) from None


def child_case_ids(conn: Connection, case_id: str) -> list[str]:
    return [row[0] for row in conn.execute(select(cases.c.id).where(cases.c.parent_case_id == case_id)
                                           .order_by(cases.c.created_at, cases.c.id))]


def case_pins(conn: Connection, case_ids: set[str]) -> dict:
    """What it takes to find a task's form: each case's definition version and pinned called versions."""
    if not case_ids:
        return {}
    query = select(cases.c.id, cases.c.definition_key, cases.c.definition_version, cases.c.pins).where(
        cases.c.id.in_(sorted(case_ids)))
    return {row.id: row for row in conn.execute(query)}


# --- audit trail -----------------------------------------------------------------------------------

def insert_events(conn: Connection, rows: list[dict]) -> None:
    if rows:
        driver_statements.execute(conn, _INSERT_EVENT, rows)


DEPLOY_LOCK = 727275  # the migration lock is 727274 (database.py)


def lock_deployments(conn: Connection) -> None:
    """One deployment at a time, until the transaction ends: servers that start together each deploy
    definitions/, and the later ones must find the versions the first one wrote instead of colliding
    with them. (SQLite's BEGIN IMMEDIATE already lets one writer in at a time.)"""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({DEPLOY_LOCK})")


def set_chain_head(conn: Connection, chain: str, seq: int, hash_: str) -> None:
    """Record where a chain that is not a case's ends (its writers hold a lock, so no race here)."""
    from .schema import chain_heads

    if conn.execute(update(chain_heads).where(chain_heads.c.chain == chain).values(seq=seq, hash=hash_)).rowcount == 0:
        conn.execute(chain_heads.insert().values(chain=chain, seq=seq, hash=hash_))


def other_chain_heads(conn: Connection) -> dict[str, tuple[int, str]]:
    from .schema import chain_heads

    return {row.chain: (row.seq, row.hash) for row in conn.execute(select(chain_heads))}


def case_ids_page(conn: Connection, cursor: str | None, limit: int) -> list[str]:
    query = select(cases.c.id).order_by(cases.c.id).limit(limit)
    if cursor is not None:
        query = query.where(cases.c.id > cursor)
    return [row[0] for row in conn.execute(query)]


def chain_head(conn: Connection, chain: str) -> tuple[int, str | None]:
    row = conn.execute(select(events.c.seq, events.c.hash).where(events.c.chain == chain)
                       .order_by(events.c.seq.desc()).limit(1)).first()
    return (row.seq, bytes(row.hash).hex()) if row else (0, None)


def trail(conn: Connection, case_id: str, filters: dict) -> list:
    query = _filtered(events_public.where(events.c.chain == case_id), filters, {
        "actor": lambda v: events.c.actor == v, "element": lambda v: events.c.element_id == v,
        "type": lambda v: events.c.type == v, "since": lambda v: events.c.at >= v, "until": lambda v: events.c.at < v})
    return list(conn.execute(query.order_by(events.c.seq)))


def stream_events(conn: Connection, case_ids: Iterable[str] | None = None,
                  since: datetime | None = None) -> Iterator[Row[Any]]:
    """All events in chain order, fetched in batches so memory stays flat for any number of events."""
    query = events_public
    if case_ids is not None:
        query = query.where(events.c.chain.in_(list(case_ids)))
    if since is not None:
        query = query.where(events.c.at >= since)
    result = conn.execution_options(yield_per=2000, stream_results=True).execute(
        query.order_by(events.c.chain, events.c.seq))
    yield from result


def case_heads(conn: Connection, case_ids: list[str] | None = None) -> dict[str, tuple[int, str]]:
    query = select(cases.c.id, cases.c.event_seq, cases.c.event_hash)
    if case_ids is not None:
        query = query.where(cases.c.id.in_(case_ids))
    return {row.id: (row.event_seq, row.event_hash)
            for row in conn.execution_options(yield_per=5000, stream_results=True).execute(query)}


def case_ids_by_business_key(conn: Connection, business_key: str) -> list[str]:
    return [row[0] for row in conn.execute(select(cases.c.id).where(cases.c.business_key == business_key))]


def due_case_ids(conn: Connection, now: datetime, limit: int) -> list[str]:
    query = (select(cases.c.id).where(cases.c.status == "running", cases.c.next_timer_at <= now)
             .order_by(cases.c.next_timer_at).limit(limit))
    return [row[0] for row in conn.execute(query)]


def next_due_after(conn: Connection, moment: datetime) -> datetime | None:
    """The earliest timer of a running case due after `moment` (those due by then are the worker's now)."""
    query = select(func.min(cases.c.next_timer_at)).where(cases.c.status == "running", cases.c.next_timer_at > moment)
    return conn.execute(query).scalar()


def next_in_sequence(conn: Connection, name: str) -> int:
    """Increment and return a named counter (the caller's transaction makes it atomic)."""
    from .schema import sequences

    result = conn.execute(update(sequences).where(sequences.c.name == name)
                          .values(value=sequences.c.value + 1).returning(sequences.c.value)).first()
    if result is not None:
        return result[0]
    conn.execute(insert(sequences).values(name=name, value=1))
    return 1
