"""A process keeps the workflows it saved last (engine/workflow_cache.py): the case's next command uses the kept
one instead of restoring it, but only while the stored row is still the one that save wrote; a case changed by
another process (here: another Engine on the same database) is restored from the database."""
from __future__ import annotations

from contextlib import contextmanager

import pytest

from usm_engine.engine import case_work
from usm_engine.engine.clock import FixedClock
from usm_engine.engine.service import Engine, EngineSettings
from usm_engine.engine.workflow_cache import WorkflowCache
from tests.conftest import APPROVAL, fixture_files
from tests.engine.test_audit import ANYONE


@contextmanager
def engine_on(database_url: str, clock: FixedClock, cache_bytes: int = 16 * 1024 * 1024):
    engine = Engine(EngineSettings(database_url, workflow_cache_bytes=cache_bytes), clock=clock)
    try:
        yield engine
    finally:
        engine.close()


@pytest.fixture
def restores(monkeypatch) -> list[str]:
    """The ids of the cases the commands restored from their stored state."""
    seen: list[str] = []
    real = case_work.restore

    def counting(row, blueprint, script_engine):
        seen.append(row.id)
        return real(row, blueprint, script_engine)

    monkeypatch.setattr(case_work, "restore", counting)
    return seen


def run_approval(engine: Engine, clock: FixedClock, approved: bool) -> dict:
    case, _ = engine.start_case("approval", "crm", data={"ref": 7})
    clock.advance(minutes=5)
    case = engine.complete_task(case["tasks"][0]["id"], {"item": "pen", "quantity": 3}, "alice", ANYONE)
    clock.advance(hours=2)
    return engine.complete_task(case["tasks"][0]["id"], {"approved": approved}, "bob", ANYONE)


def trail_summary(engine: Engine, case_id: str) -> list[tuple]:
    return [(e["type"], e["actor"], e["element_id"], e["data_changes"]) for e in engine.trail(case_id, {})]


@pytest.mark.parametrize("approved", [True, False])
def test_commands_use_the_kept_workflow_and_do_what_a_restore_does(database_url, restores, approved):
    clock = FixedClock()
    with engine_on(database_url, clock) as kept, engine_on(database_url, clock, cache_bytes=0) as restored:
        kept.migrate()
        kept.deploy(fixture_files(*APPROVAL), "dana")
        with_cache = run_approval(kept, clock, approved)
        assert restores == []  # the start kept its workflow, and each completion the one it saved
        without = run_approval(restored, clock, approved)
        assert restores == [without["id"]] * 2

        assert with_cache["status"] == without["status"] == "completed"
        assert with_cache["data"] == without["data"]
        assert trail_summary(kept, with_cache["id"]) == trail_summary(restored, without["id"])
        assert kept.verify_trails()["ok"] is True


def test_a_case_another_process_changed_is_restored_from_the_database(database_url, restores):
    clock = FixedClock()
    with engine_on(database_url, clock) as first, engine_on(database_url, clock) as second:
        first.migrate()
        first.deploy(fixture_files(*APPROVAL), "dana")
        case, _ = first.start_case("approval", "crm", data={"ref": 7})  # `first` keeps it as row version 1
        case = second.complete_task(case["tasks"][0]["id"], {"item": "pen", "quantity": 3}, "alice", ANYONE)
        assert restores == [case["id"]]  # `second` never had it

        # `first` still holds the workflow as it started, without the Decide task: it must not use it.
        done = first.complete_task(case["tasks"][0]["id"], {"approved": True}, "bob", ANYONE)
        assert restores == [case["id"]] * 2
        assert done["status"] == "completed"
        assert done["data"]["item"] == "pen" and done["data"]["outcome"] == "approved"


def test_a_suspended_and_resumed_case_is_restored_once_and_runs_on(database_url, restores):
    """Suspending writes a new row version without the workflow: the kept one no longer matches the row."""
    clock = FixedClock()
    with engine_on(database_url, clock) as engine:
        engine.migrate()
        engine.deploy(fixture_files(*APPROVAL), "dana")
        case, _ = engine.start_case("approval", "crm", data={"ref": 7})
        engine.suspend_case(case["id"], "alice")
        engine.resume_case(case["id"], "alice")
        case = engine.complete_task(case["tasks"][0]["id"], {"item": "pen", "quantity": 3}, "alice", ANYONE)
        case = engine.complete_task(case["tasks"][0]["id"], {"approved": True}, "bob", ANYONE)
        assert case["status"] == "completed"
        assert len(restores) == 1


class _Blueprint:
    """Stands for a Blueprint: the cache only compares them by identity."""


def test_the_cache_hands_out_a_workflow_once_and_only_for_its_row_version_and_blueprint():
    cache, blueprint, workflow = WorkflowCache(1000), _Blueprint(), object()
    cache.keep("a", (2, "h2"), blueprint, workflow, 10)  # type: ignore[arg-type]
    assert cache.take("a", (2, "h2"), blueprint) is workflow  # type: ignore[arg-type]
    assert cache.take("a", (2, "h2"), blueprint) is None  # taken: a failed command leaves nothing behind

    for row, other in (((3, "h2"), blueprint), ((2, "another history"), blueprint), ((2, "h2"), _Blueprint())):
        cache.keep("a", (2, "h2"), blueprint, workflow, 10)  # type: ignore[arg-type]
        assert cache.take("a", row, other) is None  # type: ignore[arg-type]
        assert len(cache) == 0  # and the stale one is gone


def test_the_cache_drops_the_least_recently_saved_past_its_size_and_keeps_none_at_zero():
    cache, blueprint = WorkflowCache(100), _Blueprint()
    for case_id in "abc":
        cache.keep(case_id, (1, "h"), blueprint, object(), 40)  # type: ignore[arg-type]
    assert cache.take("a", (1, "h"), blueprint) is None  # type: ignore[arg-type]
    assert cache.take("b", (1, "h"), blueprint) is not None  # type: ignore[arg-type]
    cache.keep("big", (1, "h"), blueprint, object(), 101)  # type: ignore[arg-type]
    assert cache.take("big", (1, "h"), blueprint) is None  # type: ignore[arg-type]

    off = WorkflowCache(0)
    off.keep("a", (1, "h"), blueprint, object(), 1)  # type: ignore[arg-type]
    assert len(off) == 0 and off.take("a", (1, "h"), blueprint) is None  # type: ignore[arg-type]
