"""Each read of ready tasks (a case's, a lane's, a lane holder's) is answered from its partial index of open
tasks, not by walking every ready task of the store (ix_tasks_state_created) — what made SQLite's commands 20
times slower with 100,000 open tasks (bench/flat.py). The plans are read from the database for the statements
the store really runs, captured as they go."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest
from sqlalchemy import event, insert, select, text, update

from usm_engine.engine import store
from usm_engine.engine.schema import cases, tasks
from usm_engine.engine.service import Engine, EngineSettings
from usm_engine.engine.store_task_reads import case_beside_task
from tests.conftest import postgres_url_or_skip, reset_postgres

CASES, TASKS_PER_CASE = 400, 5  # enough open tasks that PostgreSQL's statistics say an index pays


def _fill(engine: Engine) -> str:
    """Open tasks over many cases and four lanes, half of them finished; returns one case's id."""
    start = datetime(2026, 1, 1)
    case_rows, task_rows = [], []
    for number in range(CASES):
        case_id = str(uuid.uuid4())
        case_rows.append({"id": case_id, "definition_key": "k", "definition_version": 1, "pins": "{}",
                          "status": "running", "state": "{}", "serializer_version": "1", "data": "{}",
                          "waiting_for": "[]", "created_by": "test", "created_at": start, "updated_at": start,
                          "row_version": 1})
        for step in range(TASKS_PER_CASE):
            lane = f"Lane {step % 4}"
            task_rows.append({"id": str(uuid.uuid4()), "case_id": case_id, "definition_key": "k", "process_id": "p",
                              "element_id": f"t{step}", "lane": lane, "lane_role": lane.lower().replace(" ", "-"),
                              "state": "ready" if step % 2 else "completed",
                              "created_at": start + timedelta(seconds=number * TASKS_PER_CASE + step)})
    with engine.db.writer.begin() as conn:
        conn.execute(insert(cases), case_rows)
        conn.execute(insert(tasks), task_rows)
        if not engine.db.is_sqlite:
            conn.execute(text("ANALYZE tasks"))
    return case_rows[0]["id"]


def _plans_of(engine: Engine, read) -> str:
    """The plan of every statement `read(conn)` runs, as one text."""
    seen: list[tuple[str, object]] = []

    def _record(_conn, _cursor, statement, parameters, _context, _many):
        seen.append((statement, parameters))

    with engine.db.reader.connect() as conn:
        event.listen(conn, "before_cursor_execute", _record)
        read(conn)
        event.remove(conn, "before_cursor_execute", _record)
        explain = "EXPLAIN QUERY PLAN " if engine.db.is_sqlite else "EXPLAIN "
        plans = []
        for statement, parameters in seen:
            raw = conn.connection.dbapi_connection.cursor()
            raw.execute(explain + statement, parameters)
            plans.append("\n".join(str(row[-1] if engine.db.is_sqlite else row[0]) for row in raw.fetchall()))
    assert plans, "the read ran no statement"
    return "\n".join(plans)


READS = {
    "a case's ready tasks (every command)": (lambda case: lambda conn: store.ready_tasks_of_cases(conn, [case]),
                                             "ix_tasks_ready_case"),
    "several cases' ready tasks": (lambda case: lambda conn: store.ready_tasks_of_cases(conn, [case, "other"]),
                                   "ix_tasks_ready_case"),
    "GET /tasks?case=": (lambda case: lambda conn: store.list_tasks(conn, {"case": case}, None, None, 50),
                         "ix_tasks_ready_case"),
    "GET /tasks?lane= (an empty lane)": (lambda case: lambda conn: store.list_tasks(
        conn, {"lane": "Nobody"}, None, None, 50), "ix_tasks_ready_lane"),
    "a lane holder's worklist": (lambda case: lambda conn: store.list_tasks(
        conn, {}, {"nobody"}, None, 50), "ix_tasks_ready_lane_role"),
}


def _engine(url: str) -> Engine:
    instance = Engine(EngineSettings(url))
    instance.migrate()
    return instance


@pytest.fixture(params=["sqlite", "postgresql"])
def filled(request, tmp_path):
    if request.param == "sqlite":
        instance = _engine(f"sqlite:///{tmp_path}/plans.db")
    else:
        url = postgres_url_or_skip()
        reset_postgres(url)
        instance = _engine(url)
    yield instance, _fill(instance)
    instance.close()


@pytest.mark.parametrize("read", READS)
def test_ready_tasks_are_read_from_their_partial_index(filled, read):
    engine, case_id = filled
    make, index = READS[read]
    plan = _plans_of(engine, make(case_id))
    assert index in plan, plan
    assert "ix_tasks_state_created" not in plan, plan


def test_other_states_are_still_listed(filled):
    """The literal 'ready' in the queries leaves the other states to their own filter."""
    engine, case_id = filled
    with engine.db.reader.connect() as conn:
        done, _ = store.list_tasks(conn, {"case": case_id, "state": "completed"}, None, None, 50)
        ready, _ = store.list_tasks(conn, {"case": case_id}, None, None, 50)
        every, _ = store.list_tasks(conn, {"case": case_id, "state": "any"}, None, None, 50)
    assert [row.state for row in done] == ["completed"] * 3
    assert [row.state for row in ready] == ["ready"] * 2
    assert len(every) == 5
    assert [row.created_at for row in every] == sorted(row.created_at for row in every)


def test_a_tasks_case_and_ready_tasks_are_read_from_their_partial_index(filled):
    """Completing a task reads its case's row and ready tasks by the task's id, in one statement."""
    engine, case_id = filled
    with engine.db.reader.connect() as conn:
        rows = conn.execute(select(tasks.c.id, tasks.c.state).where(tasks.c.case_id == case_id)).all()
        ready_id = next(row.id for row in rows if row.state == "ready")
        done_id = next(row.id for row in rows if row.state == "completed")
        expected = store.ready_tasks_of_cases(conn, [case_id])[case_id]
        case = store.get_case(conn, case_id)
        # The same rows as the tables' own reads give, in the same order, whatever the state of the task they
        # are found by.
        for task_id in (ready_id, done_id):
            found_case, ready = case_beside_task(conn, task_id)
            assert found_case is not None and found_case._mapping == case._mapping
            assert found_case.id == case_id and found_case.row_version == case.row_version
            assert [row._mapping for row in ready] == [row._mapping for row in expected]
            assert [row.id for row in ready] == [row.id for row in expected] and len(ready) == 2
        assert case_beside_task(conn, "no-such-task") == (None, [])
    plan = _plans_of(engine, lambda conn: case_beside_task(conn, ready_id))
    assert "ix_tasks_ready_case" in plan and "ix_tasks_state_created" not in plan, plan


def test_a_case_with_no_ready_task_is_read_all_the_same(filled):
    engine, case_id = filled
    with engine.db.writer.begin() as conn:
        conn.execute(update(tasks).where(tasks.c.case_id == case_id).values(state="completed"))
    with engine.db.reader.connect() as conn:
        task_id = conn.execute(select(tasks.c.id).where(tasks.c.case_id == case_id)).scalars().first()
        found_case, ready = case_beside_task(conn, task_id)
    assert found_case is not None and found_case.id == case_id and ready == []
