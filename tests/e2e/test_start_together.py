"""Several processes started at the same moment on one PostgreSQL all come up: 4 `usm serve --no-worker`
and 2 `usm worker`. Each migrates (one at a time, under a lock) and each server deploys definitions/
(one at a time, under another lock), so every definition gets exactly one version."""
from __future__ import annotations

import subprocess
import time

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from tests.conftest import postgres_url_or_skip, reset_postgres
from tests.definitions.support import DEFINITIONS
from tests.e2e.server import Server, usm_command

pytestmark = pytest.mark.e2e


def test_four_servers_and_two_workers_start_together_on_postgresql(tmp_path):
    url = postgres_url_or_skip()
    reset_postgres(url)
    servers = [Server(tmp_path, url, "e2e-admin", DEFINITIONS, timer_worker=False) for _ in range(4)]
    workers = []
    try:
        for server in servers:  # all at once: start() waits for health, so launch first, wait after
            server.launch()
        workers = [subprocess.Popen([usm_command(), "worker"], cwd=tmp_path, env=servers[0].env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(2)]
        deadline = time.monotonic() + 120  # generous: six processes migrate and deploy on two cores
        for server in servers:
            while server.request_ok() is False:
                assert server.process.poll() is None, f"a server exited:\n{server.log()}"
                assert time.monotonic() < deadline, f"a server did not come up:\n{server.log()}"
                time.sleep(0.2)
        for worker in workers:
            assert worker.poll() is None, worker.stderr.read().decode()
        engine = create_engine(url, poolclass=NullPool)
        with engine.connect() as conn:
            versions = conn.execute(text("SELECT key, count(*) FROM definitions GROUP BY key")).all()
        engine.dispose()
        assert len(versions) == 19 and {count for _, count in versions} == {1}, versions
    finally:
        for server in servers:
            server.stop()
        for worker in workers:
            worker.terminate()
            worker.wait(15)
