"""SQLite's write-ahead log stays bounded without a timer worker: a write that leaves it past its limit empties
it, and a long reader, which no checkpoint can wait out, costs writers at most a short wait."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import text

from usm_engine.engine import database
from usm_engine.engine.service import Engine, EngineSettings
from tests.conftest import APPROVAL, fixture_files


@pytest.fixture
def sqlite_engine(tmp_path):
    engine = Engine(EngineSettings(f"sqlite:///{tmp_path}/wal.db"))
    engine.migrate()
    yield engine, Path(f"{tmp_path}/wal.db-wal")
    engine.close()


def test_connections_cut_the_log_back_when_it_starts_over(sqlite_engine):
    engine, _ = sqlite_engine
    with engine.db.writer.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_size_limit").scalar() == database.WAL_KEEP_BYTES
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == database.WAL_AUTOCHECKPOINT


def test_a_write_that_leaves_the_log_past_its_limit_empties_it(sqlite_engine, monkeypatch):
    engine, log = sqlite_engine
    engine.deploy(fixture_files(*APPROVAL), "dana")
    assert log.stat().st_size > 0  # below the limit, the log is left to the checkpoints
    monkeypatch.setattr(database, "WAL_LIMIT_BYTES", 0)
    engine.start_case("approval", "crm")
    assert log.stat().st_size == 0


def test_a_long_reader_holds_writers_up_only_briefly(sqlite_engine, monkeypatch, caplog):
    engine, log = sqlite_engine
    caplog.set_level("DEBUG", logger="usm.database")
    engine.deploy(fixture_files(*APPROVAL), "dana")
    monkeypatch.setattr(database, "WAL_LIMIT_BYTES", 0)
    with engine.db.reader.connect() as reader:
        reader.execute(text("SELECT count(*) FROM definitions")).scalar()  # a snapshot in the log, kept open
        started = time.monotonic()
        for _ in range(3):
            engine.start_case("approval", "crm")
        assert time.monotonic() - started < 2  # one short wait, then tries again only a second later
        assert log.stat().st_size > 0
        assert [r.getMessage() for r in caplog.records if "busy=1" in r.getMessage()] != []
        assert len(caplog.records) == 1  # tried once, then left the reader be
        reader.rollback()
    monkeypatch.setattr(database, "WAL_LIMIT_RETRY_SECONDS", 0.0)
    time.sleep(database.WAL_LIMIT_RETRY_SECONDS + 1.0)  # past the pause the first try set
    engine.start_case("approval", "crm")
    assert log.stat().st_size == 0
    with engine.db.writer.connect() as conn:  # the writer's connection has its long busy timeout back
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == database.BUSY_TIMEOUT_MS
