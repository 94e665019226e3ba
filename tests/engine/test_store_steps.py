"""A step's write on PostgreSQL as one statement (engine/store_steps.py): every part of it is written when the
case row's version is the one read, and nothing at all when another writer got there first, as the
transaction it replaces would. The commands that use it are tested through the API on both databases; this
looks at the rows themselves."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta

from sqlalchemy import event, insert, select, text

from usm_engine.engine.schema import cases, events, tasks
from usm_engine.engine.service import Engine
from usm_engine.engine.store_steps import CompletedTask, Step, write_step

START = datetime(2026, 1, 1, 9, 0)
LATER = START + timedelta(minutes=5)


def _case_with_two_ready_tasks(engine: Engine) -> tuple[str, str, str]:
    case_id, first, second = (str(uuid.uuid4()) for _ in range(3))
    with engine.db.writer.begin() as conn:
        conn.execute(insert(cases).values(
            id=case_id, definition_key="k", definition_version=1, pins="{}", status="running", state="{}",
            serializer_version="1", data="{}", waiting_for="[]", created_by="test", created_at=START,
            updated_at=START, row_version=3, resolved_at=START))
        conn.execute(insert(tasks), [
            {"id": task_id, "case_id": case_id, "definition_key": "k", "process_id": "p", "element_id": element,
             "lane": "Desk", "lane_role": "desk", "state": "ready", "created_at": START}
            for task_id, element in ((first, "a"), (second, "b"))])
    return case_id, first, second


def _step(case_id: str, version: int, first: str, second: str, new_task: str) -> Step:
    new_row = {"id": new_task, "case_id": case_id, "definition_key": "k", "process_id": "p", "element_id": "c",
               "name": "C", "lane": "Desk", "lane_role": "desk", "state": "ready", "created_at": LATER,
               "ended_at": None, "completed_by": None, "topic": None, "locked_by": None, "locked_until": None}
    event_rows = [{"chain": case_id, "seq": seq, "at": LATER, "type": kind, "actor": "ann", "element_id": element,
                   "element_name": None, "lane": "Desk", "definition": "k", "version": 1, "data_changes": "{}",
                   "details": "{}", "hash": bytes([seq]) * 32, "element_definition": "k"}
                  for seq, kind, element in ((1, "task_completed", "a"), (2, "task_ready", "c"))]
    return Step(case_id, version, {"status": "running", "data": '{"x": 1}', "updated_at": LATER,
                                   "resolved_at": LATER, "event_seq": 2},
                LATER, completed=CompletedTask(first, "ann"), cancelled=[second], new_tasks=[new_row],
                events=event_rows)


def _rows(engine: Engine, case_id: str) -> tuple:
    with engine.db.reader.connect() as conn:
        case = conn.execute(select(cases.c.row_version, cases.c.data, cases.c.updated_at, cases.c.resolved_at,
                                   cases.c.event_seq).where(cases.c.id == case_id)).one()
        task_rows = conn.execute(select(tasks.c.element_id, tasks.c.state, tasks.c.ended_at, tasks.c.completed_by)
                                 .where(tasks.c.case_id == case_id).order_by(tasks.c.element_id)).all()
        event_rows = conn.execute(select(events.c.seq, events.c.type, events.c.hash)
                                  .where(events.c.chain == case_id).order_by(events.c.seq)).all()
    return tuple(case), [tuple(row) for row in task_rows], [tuple(row) for row in event_rows]


def test_a_step_written_in_one_statement_writes_every_part(postgres_engine):
    case_id, first, second = _case_with_two_ready_tasks(postgres_engine)
    with postgres_engine.db.autocommit.connect() as conn:
        assert write_step(conn, _step(case_id, 3, first, second, str(uuid.uuid4()))) is True
    case, task_rows, event_rows = _rows(postgres_engine, case_id)
    # The row version moved on, and a resolution time once set stays (store.case_update).
    assert case == (4, '{"x": 1}', LATER, START, 2)
    assert task_rows == [("a", "completed", LATER, "ann"), ("b", "cancelled", LATER, None), ("c", "ready", None, None)]
    assert event_rows == [(1, "task_completed", bytes([1]) * 32), (2, "task_ready", bytes([2]) * 32)]


def test_a_step_that_lost_the_race_writes_nothing(postgres_engine):
    case_id, first, second = _case_with_two_ready_tasks(postgres_engine)
    before = _rows(postgres_engine, case_id)
    with postgres_engine.db.autocommit.connect() as conn:
        assert write_step(conn, _step(case_id, 2, first, second, str(uuid.uuid4()))) is False  # read version 2
    assert _rows(postgres_engine, case_id) == before
    assert before[1] == [("a", "ready", None, None), ("b", "ready", None, None)] and before[2] == []


def test_a_step_with_nothing_but_the_case_row_and_its_events(postgres_engine):
    """A status change (CaseWork.save_status): no task ends or starts."""
    case_id, _, _ = _case_with_two_ready_tasks(postgres_engine)
    step = Step(case_id, 3, {"status": "suspended", "updated_at": LATER}, LATER,
                events=[{"chain": case_id, "seq": 1, "at": LATER, "type": "case_suspended", "actor": "ann",
                         "element_id": None, "element_name": None, "lane": None, "definition": "k", "version": 1,
                         "data_changes": "{}", "details": "{}", "hash": b"\x07" * 32, "element_definition": None}])
    with postgres_engine.db.autocommit.connect() as conn:
        assert write_step(conn, step) is True
    case, task_rows, event_rows = _rows(postgres_engine, case_id)
    assert case[0] == 4
    assert [state for _, state, _, _ in task_rows] == ["ready", "ready"]
    assert event_rows == [(1, "case_suspended", b"\x07" * 32)]


def test_rows_travel_as_json_and_arrive_as_written(postgres_engine):
    """The new rows go to PostgreSQL as JSON text: quotes, backslashes, line breaks, characters beyond ASCII and
    every byte of a hash arrive as they were."""
    case_id, first, second = _case_with_two_ready_tasks(postgres_engine)
    step = _step(case_id, 3, first, second, str(uuid.uuid4()))
    awkward = 'a "quoted" \\ back\\slash, a\nline, \t tab, ünïcödé, 🙂, \\x41 and \\u0041'
    step.new_tasks[0]["name"] = awkward
    step.events[0]["details"] = json.dumps({"note": awkward})
    step.events[0]["hash"] = bytes(range(256))[:32]
    step.events[1]["hash"] = bytes(range(224, 256))
    with postgres_engine.db.autocommit.connect() as conn:
        assert write_step(conn, step) is True
        name = conn.execute(select(tasks.c.name).where(tasks.c.element_id == "c")).scalar_one()
        details, hashes = zip(*conn.execute(select(events.c.details, events.c.hash).where(events.c.chain == case_id)
                                            .order_by(events.c.seq)).all(), strict=True)
    assert name == awkward
    assert json.loads(details[0]) == {"note": awkward}
    assert hashes == (bytes(range(32)), bytes(range(224, 256)))


def test_the_step_ends_its_tasks_by_primary_key_among_many_ready_tasks(postgres_engine):
    """With thousands of ready tasks in the store, the write finds the tasks it ends by their ids (tasks_pkey),
    not by walking the ready ones (ix_tasks_state_created): read from PostgreSQL's own plan of the statement."""
    case_id, first, second = _case_with_two_ready_tasks(postgres_engine)
    with postgres_engine.db.writer.begin() as conn:
        others = [{"id": str(uuid.uuid4()), "definition_key": "k", "definition_version": 1, "pins": "{}",
                   "status": "running", "state": "{}", "serializer_version": "1", "data": "{}", "waiting_for": "[]",
                   "created_by": "test", "created_at": START, "updated_at": START, "row_version": 1}
                  for _ in range(3000)]
        conn.execute(insert(cases), others)
        conn.execute(insert(tasks), [{"id": str(uuid.uuid4()), "case_id": other["id"], "definition_key": "k",
                                      "process_id": "p", "element_id": "a", "state": "ready", "created_at": START}
                                     for other in others])
        conn.execute(text("ANALYZE tasks"))
    seen: list[tuple[str, object]] = []

    def _record(_conn, _cursor, statement, parameters, _context, _many):
        seen.append((statement, parameters))

    with postgres_engine.db.autocommit.connect() as conn:
        event.listen(conn, "before_cursor_execute", _record)  # which also has SQLAlchemy run the statement
        assert write_step(conn, _step(case_id, 3, first, second, str(uuid.uuid4()))) is True
        event.remove(conn, "before_cursor_execute", _record)
        (statement, parameters), = seen
        raw = conn.connection.dbapi_connection.cursor()
        raw.execute("EXPLAIN " + statement, parameters)
        plan = "\n".join(row[0] for row in raw.fetchall())
    assert plan.count("tasks_pkey") >= 2, plan  # the completed task and the cancelled ones
    assert "ix_tasks_state_created" not in plan and "Seq Scan on tasks" not in plan, plan
