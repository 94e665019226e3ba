"""The timer worker never stops because of one case: a case whose timers cannot be fired gets an incident
and is no longer due, and the database being away for a while only pauses the worker."""
from __future__ import annotations

import threading

from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from usm_engine.api.cli import timer_loop
from usm_engine.engine.service import Engine, EngineSettings
from tests.conftest import fixture_files


def setup(clocked_engine):
    engine, clock = clocked_engine
    engine.deploy(fixture_files("timers.bpmn", "timer_then_big.bpmn"), "designer")
    return engine, clock


def plain_case(engine) -> str:
    """A case whose reminder is due an hour from now, like the failing ones."""
    case, _ = engine.start_case("timers", "system", data={"resolution_target": "PT8H"})
    return case["id"]


def reminded(engine, case_id: str) -> bool:
    return "Chase the reviewer" in [t["name"] for t in engine.get_case(case_id)["tasks"]]


def test_data_too_large_after_a_timer_is_an_incident_and_other_timers_fire(clocked_engine):
    engine, clock = setup(clocked_engine)
    big, _ = engine.start_case("timer_then_big", "system")
    later = plain_case(engine)
    clock.advance(minutes=61)
    assert engine.fire_due_timers() == 1  # the plain case; the big one failed
    case = engine.get_case(big["id"])
    assert case["status"] == "error" and case["incident"]["definition"] == "timer_then_big"
    assert "bytes; the limit per case is" in case["incident"]["message"]
    assert case["incident"]["action"].startswith("Retry the case once the cause is removed")
    assert reminded(engine, later)
    clock.advance(hours=1)
    assert engine.fire_due_timers() == 0  # the failed case is no longer due
    assert engine.verify_trails()["ok"] is True


def test_a_case_that_cannot_be_restored_does_not_stop_the_others(clocked_engine, database_url):
    engine, clock = setup(clocked_engine)
    broken = plain_case(engine)
    later = plain_case(engine)
    with engine.db.writer.begin() as conn:
        conn.execute(text("UPDATE cases SET state = :state WHERE id = :id"), {"state": '{"tasks": 7}', "id": broken})
    clock.advance(minutes=61)
    # The timer worker is a process of its own (`usm worker`): it holds none of the workflows the server saved.
    worker = Engine(EngineSettings(database_url), clock=clock)
    try:
        assert worker.fire_due_timers() == 1
    finally:
        worker.close()
    assert engine.get_case(broken)["status"] == "error"
    assert reminded(engine, later)


class FlakyDatabase:
    """An engine whose database is away for the first two passes of the worker."""

    def __init__(self, engine, stop):
        self.engine, self.stop, self.passes = engine, stop, 0
        self.db = engine.db

    def fire_due_timers(self, limit: int = 100) -> int:
        self.passes += 1
        if self.passes <= 2:
            raise OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))
        fired = self.engine.fire_due_timers(limit)
        if fired:
            self.stop.set()
        return fired

    def seconds_to_next_timer(self, longest: float) -> float:
        return self.engine.seconds_to_next_timer(longest)


def test_the_worker_waits_out_a_lost_database_and_goes_on(clocked_engine):
    engine, clock = setup(clocked_engine)
    case_id = plain_case(engine)
    clock.advance(minutes=61)
    stop = threading.Event()
    flaky = FlakyDatabase(engine, stop)
    worker = threading.Thread(target=timer_loop, args=(flaky, stop, 0.01))
    worker.start()
    worker.join(timeout=60)  # generous: the pauses double from 10 ms
    assert not worker.is_alive() and flaky.passes == 3
    assert reminded(engine, case_id)


def test_workers_on_postgresql_skip_the_cases_another_worker_is_firing():
    """Two workers find the same cases due; on PostgreSQL each claims a case before restoring it and skips
    those another holds, so they share the work instead of both doing it and one losing at the save."""
    from usm_engine.engine.case_timers import CLAIM_SPACE
    from usm_engine.engine.clock import FixedClock
    from usm_engine.engine.service import Engine, EngineSettings
    from tests.conftest import postgres_url_or_skip, reset_postgres

    url = postgres_url_or_skip()
    reset_postgres(url)
    clock = FixedClock()
    engine = Engine(EngineSettings(url), clock=clock)
    try:
        engine.migrate()
        engine, clock = setup((engine, clock))
        held, free = plain_case(engine), plain_case(engine)
        clock.advance(minutes=61)
        with engine.db.writer.connect().execution_options(isolation_level="AUTOCOMMIT") as other_worker:
            key = {"space": CLAIM_SPACE, "case": held}
            assert other_worker.execute(text("SELECT pg_try_advisory_lock(:space, hashtext(:case))"), key).scalar()
            assert engine.fire_due_timers() == 1  # only the case nobody else holds
            assert reminded(engine, free) and not reminded(engine, held)
            other_worker.execute(text("SELECT pg_advisory_unlock(:space, hashtext(:case))"), key)
        assert engine.fire_due_timers() == 1
        assert reminded(engine, held)
    finally:
        engine.close()
