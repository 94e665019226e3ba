"""The hot path's statements run by the driver itself (engine/driver_statements.py): the same rows as
SQLAlchemy's execution gives, on both databases, SQLAlchemy's errors for the driver's, a lost connection
replaced, and statements SQLAlchemy must expand, or whose statements something listens to, left to it."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import Integer, bindparam, create_engine, event, exc, select, text
from sqlalchemy.pool import NullPool

from usm_engine.engine import driver_statements, store
from usm_engine.engine.clock import FixedClock
from usm_engine.engine.schema import cases, events, tasks
from usm_engine.engine.service import Engine, EngineSettings
from usm_engine.engine.store_task_reads import _CASE_AND_READY_TASKS
from tests.conftest import APPROVAL, fixture_files, postgres_url_or_skip, reset_postgres

ADMIN = "admin"


def _allow_all(_lane) -> bool:
    return True


def _started_case(engine: Engine) -> dict:
    engine.deploy(fixture_files(*APPROVAL), ADMIN)
    case, _created = engine.start_case("approval", ADMIN, data={"ref": 7})
    return case


def test_the_hot_reads_give_the_rows_sqlalchemy_gives(postgres_engine):
    case = _started_case(postgres_engine)
    task_id = case["tasks"][0]["id"]
    page = store._tasks_page(("case",), "ready", False, False)
    with postgres_engine.db.reader.connect() as conn:
        for statement, params in ((_CASE_AND_READY_TASKS, {"b_id": task_id}),
                                  (page, {"t_case": case["id"], "t_limit": 51})):
            assert driver_statements._compiled(statement, conn.dialect) is not None  # it does take the driver's way
            by_driver = driver_statements.rows(conn, statement, params)
            by_sqlalchemy = conn.execute(statement, params).all()
            assert by_driver and by_driver == by_sqlalchemy
            assert [row._mapping for row in by_driver] == [row._mapping for row in by_sqlalchemy]  # same names


def test_a_statement_sqlalchemy_must_expand_is_left_to_it(postgres_engine):
    case = _started_case(postgres_engine)
    by_roles = store._tasks_page(("case",), "ready", True, False)  # IN (roles): expanded at execution
    with postgres_engine.db.reader.connect() as conn:
        lane_role = conn.execute(select(tasks.c.lane_role)).scalar_one()
        assert driver_statements._compiled(by_roles, conn.dialect) is None
        rows = driver_statements.rows(conn, by_roles, {"t_case": case["id"], "t_limit": 51, "t_roles": [lane_role]})
    assert [row.id for row in rows] == [case["tasks"][0]["id"]]


def test_a_driver_error_is_raised_as_sqlalchemy_raises_it_and_the_connection_goes_on(postgres_engine):
    divided = select((bindparam("one", 1, type_=Integer) / bindparam("by", type_=Integer)).label("quotient"))
    with postgres_engine.db.reader.connect() as conn:
        with pytest.raises(exc.DataError) as raised:  # psycopg's DivisionByZero, wrapped as SQLAlchemy wraps it
            driver_statements.rows(conn, divided, {"by": 0})
        assert "division by zero" in str(raised.value.orig)
        assert not raised.value.connection_invalidated
        assert [row.quotient for row in driver_statements.rows(conn, divided, {"by": 1})] == [1]


def test_a_lost_connection_is_invalidated_and_the_pool_replaces_it(postgres_engine):
    url = postgres_url_or_skip()
    statement = select(cases.c.id).where(cases.c.id == bindparam("b_id"))
    with postgres_engine.db.reader.connect() as conn:
        backend = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        killer = create_engine(url, poolclass=NullPool)
        with killer.connect() as other:
            other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
        killer.dispose()
        with pytest.raises(exc.OperationalError) as raised:
            driver_statements.rows(conn, statement, {"b_id": "nothing"})
        assert raised.value.connection_invalidated
    case = _started_case(postgres_engine)  # the next commands get a working connection
    assert postgres_engine.list_tasks({"case": case["id"]}, None, None, 50)[0]


def test_on_sqlite_the_hot_reads_give_the_rows_sqlalchemy_gives_times_included(tmp_path):
    """SQLite keeps times as text: the driver's way applies SQLAlchemy's own conversions, to the parameters
    (a page's cursor is a time) and to the columns."""
    engine = Engine(EngineSettings(f"sqlite:///{tmp_path}/usm.db"))
    try:
        engine.migrate()
        case = _started_case(engine)
        task_id = case["tasks"][0]["id"]
        after = store._tasks_page(("case",), "ready", False, True)
        with engine.db.reader.connect() as conn:
            for statement, params in ((_CASE_AND_READY_TASKS, {"b_id": task_id}),
                                      (store._tasks_page(("case",), "ready", False, False),
                                       {"t_case": case["id"], "t_limit": 51}),
                                      (after, {"t_case": case["id"], "t_limit": 51, "t_after_id": "",
                                               "t_after_time": datetime(2000, 1, 1)})):
                assert driver_statements._compiled(statement, conn.dialect) is not None
                by_driver = driver_statements.rows(conn, statement, params)
                assert by_driver and by_driver == conn.execute(statement, params).all()
                assert isinstance(by_driver[0].created_at, datetime)
    finally:
        engine.close()


def test_times_are_stored_as_utc_whatever_the_servers_time_zone():
    """Columns without a time zone hold UTC, which is what the engine reads back, on a session set to another
    zone too: the step's rows travel as JSON text (store_steps.py), the other writes as the driver sends them."""
    url = postgres_url_or_skip()
    reset_postgres(url)
    separator = "&" if "?" in url else "?"
    clock = FixedClock(datetime(2026, 6, 1, 9, 30, tzinfo=timezone.utc))
    engine = Engine(EngineSettings(f"{url}{separator}options=-c%20TimeZone%3DPacific/Auckland"), clock=clock)
    try:
        engine.migrate()
        case = _started_case(engine)
        clock.advance(seconds=90)
        engine.complete_task(case["tasks"][0]["id"], {"item": "pen", "quantity": 3}, ADMIN, _allow_all)
        with engine.db.reader.connect() as conn:
            created = conn.exec_driver_sql("SELECT created_at::text FROM cases").scalar()
            ended = conn.exec_driver_sql("SELECT ended_at::text FROM tasks WHERE ended_at IS NOT NULL").scalar()
            stored = conn.exec_driver_sql("SELECT min(at)::text, max(at)::text FROM events").one()
        assert created == "2026-06-01 09:30:00"
        assert ended == "2026-06-01 09:31:30"  # written by the one-statement step (store_steps.py)
        assert tuple(stored) == ("2026-06-01 09:30:00", "2026-06-01 09:31:30")
        assert engine.get_case(case["id"])["created_at"] == "2026-06-01T09:30:00Z"
    finally:
        engine.close()


def test_statements_are_left_to_sqlalchemy_where_something_listens_to_them(postgres_engine):
    """A tracer hooked on SQLAlchemy's statement events (or a test reading plans) sees the hot path too."""
    case = _started_case(postgres_engine)
    seen: list[str] = []

    def _record(_conn, _cursor, statement, _parameters, _context, _many):
        seen.append(statement)

    event.listen(postgres_engine.db.reader, "before_cursor_execute", _record)
    try:
        postgres_engine.list_tasks({"case": case["id"]}, None, None, 50)
    finally:
        event.remove(postgres_engine.db.reader, "before_cursor_execute", _record)
    assert len(seen) == 1 and "FROM tasks JOIN cases" in seen[0]
    postgres_engine.list_tasks({"case": case["id"]}, None, None, 50)
    assert len(seen) == 1  # not listening any more: the driver's way again


@pytest.mark.parametrize("on", ["sqlite", "postgresql"])
def test_writes_by_the_driver_read_back_as_written(on, tmp_path):
    """INSERTs of several rows (executemany) and a guarded UPDATE, with times and bytes: what SQLAlchemy then
    reads is what was written, and the UPDATE says how many rows it changed."""
    url = f"sqlite:///{tmp_path}/usm.db" if on == "sqlite" else postgres_url_or_skip()
    if on == "postgresql":
        reset_postgres(url)
    engine = Engine(EngineSettings(url))
    try:
        engine.migrate()
        case = _started_case(engine)
        at = datetime(2026, 3, 4, 5, 6, 7, 890123)
        rows = [{"chain": "c-1", "seq": seq, "at": at, "version": 1, "type": "note", "actor": "ann",
                 "element_id": None, "element_name": None, "element_definition": None, "lane": None,
                 "definition": "k", "data_changes": "{}", "details": '{"n": "é"}', "hash": bytes([seq]) * 32}
                for seq in (1, 2, 3)]
        with engine.db.writer.begin() as conn:
            assert driver_statements._compiled(store._INSERT_EVENT, conn.dialect) is not None
            store.insert_events(conn, rows)
            row = conn.execute(select(cases.c.row_version).where(cases.c.id == case["id"])).one()
            assert store.update_case(conn, case["id"], row.row_version, {"data": '{"x": 1}'}) is True
            assert store.update_case(conn, case["id"], row.row_version, {"data": '{"x": 2}'}) is False  # moved on
        with engine.db.reader.connect() as conn:
            written = conn.execute(select(events.c.seq, events.c.at, events.c.hash, events.c.details)
                                   .where(events.c.chain == "c-1").order_by(events.c.seq)).all()
            data = conn.execute(select(cases.c.data).where(cases.c.id == case["id"])).scalar_one()
        assert [tuple(row) for row in written] == [(seq, at, bytes([seq]) * 32, '{"n": "é"}') for seq in (1, 2, 3)]
        assert data == '{"x": 1}'
    finally:
        engine.close()
