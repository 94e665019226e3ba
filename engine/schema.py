"""The tables. Alembic migrations in migrations/ create them; this module describes them for queries.

SQLAlchemy Core, not the ORM: the hot path (complete a task) is one SELECT and one short transaction
of a few statements, and Core keeps that cheap and visible.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import (Column, DateTime, ForeignKey, Index, Integer, LargeBinary, MetaData, PrimaryKeyConstraint,
                        Select, String, Table, Text, UniqueConstraint, and_, func, literal_column, select, text)
from sqlalchemy.sql.elements import ColumnClause

from .audit import GENESIS

metadata = MetaData()

definitions = Table(
    "definitions", metadata,
    Column("id", String(36), primary_key=True),
    Column("key", String(255), nullable=False),
    Column("version", Integer, nullable=False),
    Column("name", String(255), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("bpmn_file", String(255), nullable=False),
    Column("deployed_at", DateTime, nullable=False),
    Column("deployed_by", String(255), nullable=False),
    Column("spec", Text, nullable=False),       # SpiffWorkflow spec JSON: restored without parsing XML
    Column("embedded", Text, nullable=False),   # specs of subprocesses embedded in this process
    Column("meta", Text, nullable=False),       # user tasks with forms, lanes, called processes, elements
    UniqueConstraint("key", "version", name="uq_definitions_key_version"),
)

definition_files = Table(
    "definition_files", metadata,
    Column("definition_id", String(36), ForeignKey("definitions.id"), primary_key=True),
    Column("filename", String(255), primary_key=True),
    Column("content", LargeBinary, nullable=False),  # byte for byte as deployed
)

_UNRESOLVED_CALL = "resolved_at IS NULL AND call_number IS NOT NULL"

cases = Table(
    "cases", metadata,
    Column("id", String(36), primary_key=True),
    Column("definition_key", String(255), nullable=False),
    Column("definition_version", Integer, nullable=False),
    Column("pins", Text, nullable=False),          # {called key: version} fixed at start
    Column("business_key", String(255)),
    Column("status", String(16), nullable=False),
    Column("workflow", String(8)),
    Column("state", Text, nullable=False),          # SpiffWorkflow instance JSON without the spec
    Column("serializer_version", String(16), nullable=False),
    Column("data", Text, nullable=False),
    Column("waiting_for", Text, nullable=False),
    Column("incident", Text),
    Column("next_timer_at", DateTime),
    Column("parent_case_id", String(36)),
    Column("created_by", String(255), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("row_version", Integer, nullable=False),  # optimistic concurrency: UPDATE … WHERE row_version = N
    Column("idempotency_key", String(255)),
    Column("request_hash", String(64)),
    Column("event_seq", Integer, nullable=False, server_default="0"),  # head of the audit chain, so that
    Column("event_hash", String(64), nullable=False, server_default=GENESIS),  # appending needs no read
    # The call record (definitions/README.md) projected for search and service-level insight
    # (engine/insight.py), so that neither reads a case's JSON: its number, priority, resolution target
    # in seconds, and when it was first resolved (never moved once set: store.update_case).
    Column("call_number", String(64)),
    Column("priority", String(16)),
    Column("resolution_target", Integer),
    Column("resolved_at", DateTime),
    UniqueConstraint("created_by", "idempotency_key", name="uq_cases_idempotency"),
    Index("ix_cases_created", "created_at", "id"),
    Index("ix_cases_status", "status"),
    Index("ix_cases_definition", "definition_key"),
    Index("ix_cases_business_key", "business_key"),
    Index("ix_cases_next_timer", "next_timer_at"),
    Index("ix_cases_parent", "parent_case_id"),
    Index("ix_cases_call_number", "call_number"),
    # Calls resolved in a period, read from the index alone (a case row is as large as its state); with
    # call_number, the unresolved calls are told from the other cases (intake, escalations) in the index too.
    Index("ix_cases_resolved", "resolved_at", "call_number", "workflow", "priority", "created_at",
          "resolution_target"),
    # The calls not resolved yet, few among many cases: a partial index, because PostgreSQL cannot tell from
    # its statistics of each column that an unresolved case with a call number is rare.
    Index("ix_cases_unresolved_calls", "created_at", sqlite_where=text(_UNRESOLVED_CALL),
          postgresql_where=text(_UNRESOLVED_CALL)),
)

# A projection of the human tasks (and external service tasks), kept in step with the case state in the same
# transaction, so that worklists never deserialize a case.
# What the ready-task indexes hold and how the queries say it: a literal, not a bound value, since a database
# matches a partial index to a query only by the query's text (a prepared, generic plan knows no values).
READY_STATE: ColumnClause[str] = literal_column("'ready'")
READY_ONLY = text("state = 'ready'")

tasks = Table(
    "tasks", metadata,
    Column("id", String(36), primary_key=True),
    Column("case_id", String(36), ForeignKey("cases.id"), nullable=False),
    Column("definition_key", String(255), nullable=False),
    Column("process_id", String(255), nullable=False),
    Column("element_id", String(255), nullable=False),
    Column("name", String(255)),
    Column("lane", String(255)),
    Column("lane_role", String(255)),
    Column("state", String(16), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("ended_at", DateTime),
    Column("completed_by", String(255)),
    # External service tasks (camunda:type="external"): the topic workers fetch by, and the lock the
    # worker that fetched one holds until it completes or fails the task (or the lock runs out).
    Column("topic", String(255)),
    Column("locked_by", String(255)),
    Column("locked_until", DateTime),
    # Every task of a case (its history, its cancellation) and every task in a state, in the order they are paged.
    Index("ix_tasks_case", "case_id"),
    Index("ix_tasks_state_created", "state", "created_at", "id"),
    # The ready tasks of a case, of a lane and of a lane's holders, each in the order they are paged (migration
    # 0012). Partial: only open tasks are in them, so a finished case costs them nothing. The queries spell the
    # state as the literal READY_STATE so that both databases can match them to these indexes. Without them
    # SQLite, which keeps no statistics here, read a case's ready tasks through ix_tasks_state_created (which
    # gives the order) and so walked every ready task of the store (bench/flat.py).
    Index("ix_tasks_ready_case", "case_id", "created_at", "id", sqlite_where=READY_ONLY, postgresql_where=READY_ONLY),
    Index("ix_tasks_ready_lane", "lane", "created_at", "id", sqlite_where=READY_ONLY, postgresql_where=READY_ONLY),
    Index("ix_tasks_ready_lane_role", "lane_role", "created_at", "id", sqlite_where=READY_ONLY,
          postgresql_where=READY_ONLY),
    # Only external tasks have a topic: the index leaves out the user tasks, most of the table.
    Index("ix_tasks_topic_state", "topic", "state", "created_at", sqlite_where=text("topic IS NOT NULL"),
          postgresql_where=text("topic IS NOT NULL")),
    # Steps ended in a period, with their times, read from the index alone (engine/insight.py); ended_at first,
    # so that no query on it is drawn to ix_tasks_state_created by an equal state instead.
    Index("ix_tasks_ended", "ended_at", "state", "process_id", "element_id", "created_at"),
)

# The events of ix_events_messages. A query names the type as a literal (not a bound parameter), so that
# either database's planner can see that its rows are all in that index.
MESSAGE_SENT = text("type = 'message_sent'")

# The audit trail, append-only. `chain` is the case id for case events and "definitions" for deploys;
# each chain is numbered by `seq` and hash-linked (engine/audit.py). A row keeps only what cannot be read
# elsewhere (migration 0011): its case is its chain, the hash it links to is the hash of the event before it
# in the chain, its definition's hash is the definitions row's (key, version); so the public form of an event
# is read with two joins (events_public below), and the hash is 32 bytes, not 64 hex digits.
# The fixed-width columns come first so that PostgreSQL pads none of them.
events = Table(
    "events", metadata,
    Column("at", DateTime, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("version", Integer),
    Column("chain", String(64), nullable=False),
    Column("type", String(32), nullable=False),
    Column("actor", String(255), nullable=False),
    Column("element_id", String(255)),
    Column("element_name", String(255)),
    # The definition the element belongs to (the case's own or one it calls); empty on events from
    # before migration 0005.
    Column("element_definition", String(255)),
    Column("lane", String(255)),
    Column("definition", String(255)),
    # Empty unless the hash the event was sealed with is not the definitions row's for (definition, version):
    # the engine seals every event with that row's hash, so only rows from before 0011 may need it.
    Column("definition_hash", String(64)),
    Column("data_changes", Text, nullable=False),
    Column("details", Text, nullable=False),
    Column("hash", LargeBinary(32), nullable=False),
    PrimaryKeyConstraint("chain", "seq", name="pk_events"),  # a case's trail, in order; one event per number
    Index("ix_events_at", "at"),  # exports since a moment (usm audit export --since)
    Index("ix_events_element", "element_id"),  # the cases that executed an activity (store_compliance.cases_executing)
    # Messages thrown in a period (engine/insight_queries.py), the only read by type: those events alone.
    Index("ix_events_messages", "at", sqlite_where=MESSAGE_SENT, postgresql_where=MESSAGE_SENT),
)

# Events as their public form (audit.event_from_row) reads them: with what a row does not keep, the hash of the
# event before it (by the primary key) and its definition's hash (by the definitions' unique key).
_before = events.alias("before")
events_public: Select[Any] = select(
    *[column for column in events.c if column.name != "definition_hash"], _before.c.hash.label("prev_hash"),
    func.coalesce(events.c.definition_hash, definitions.c.hash).label("definition_hash"),
).select_from(
    events.outerjoin(definitions, and_(definitions.c.key == events.c.definition,
                                       definitions.c.version == events.c.version))
    .outerjoin(_before, and_(_before.c.chain == events.c.chain, _before.c.seq == events.c.seq - 1)))

# Which running case waits for which message, kept in step with the case state: message routing finds
# the cases by name (exactly, on both databases) without reading any case's JSON.
message_waits = Table(
    "message_waits", metadata,
    Column("case_id", String(36), ForeignKey("cases.id"), primary_key=True),
    Column("name", String(255), primary_key=True),
    Index("ix_message_waits_name", "name"),
)

# POST /api/v1/messages with an Idempotency-Key: the case the first request went to (delivered or started).
message_requests = Table(
    "message_requests", metadata,
    Column("created_by", String(255), primary_key=True),
    Column("idempotency_key", String(255), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("case_id", String(36), ForeignKey("cases.id"), nullable=False),
    Column("created_at", DateTime, nullable=False),
)

# The head (last seq and hash) of every chain that is not a case's, such as the deployments' chain:
# what a case row's event_seq/event_hash are for a case, so that deleting a chain's newest events shows.
chain_heads = Table(
    "chain_heads", metadata,
    Column("chain", String(64), primary_key=True),
    Column("seq", Integer, nullable=False),
    Column("hash", String(64), nullable=False),
)

# Named counters (e.g. call numbers INC-000042): one row per name, incremented in its own short
# transaction so numbers are unique across processes (a failed command may leave a gap, as sequences do).
sequences = Table(
    "sequences", metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Integer, nullable=False),
)

# The compliance cross-reference as last deployed (not versioned: it describes, it does not run).
compliance_requirements = Table(
    "compliance_requirements", metadata,
    Column("ref", String(255), primary_key=True),
    Column("standard", String(255), nullable=False),
    Column("requirement_id", String(255), nullable=False),
    Column("title", String(1000), nullable=False),
    Column("note", Text),
    Column("activities", Text, nullable=False),
    Column("source_file", String(255), nullable=False),
    Column("deployed_at", DateTime, nullable=False),
    Column("deployed_by", String(255), nullable=False),
)
