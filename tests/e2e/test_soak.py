"""Soak: two `usm serve` and two `usm worker` on one PostgreSQL, 32 clients driving 200 USM cases (and the
escalations their resolution timers raise) to their end over HTTP, one server SIGKILLed and started again
in the middle. Afterwards: every case completed, every task completed once, every timer fired once, no
event twice, every trail verifies.

Bounded: the clients give up after 200 seconds (CI has 2 cores; the run takes well under a minute here)."""
from __future__ import annotations

import http.client
import itertools
import queue
import subprocess
import threading
import time

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from tests.conftest import postgres_url_or_skip, reset_postgres
from tests.definitions.support import DEFAULT_DECISIONS, DEFINITIONS, Driver
from tests.e2e.server import Server, usm_command

pytestmark = pytest.mark.e2e

CASES, CLIENTS, DEADLINE = 200, 32, 200
# Resolution targets of one second: the escalation timer on each process's main step fires while the
# client is still working there, and starts a linked usm-escalation case the client then drives too.
REQUEST = {"requester": "soak@example.org", "summary": "soak", "agreement": {
    "service": "Workplace", "service_levels": {"P1": "PT1S", "P2": "PT1S", "P3": "PT1S", "P4": "PT1S"}}}
DECISIONS = {**DEFAULT_DECISIONS, "recovery_route": "operate"}


class Servers:
    """The live servers' addresses; a client that cannot reach one tries the next."""

    def __init__(self, servers: list[Server]):
        self.servers, self.lock = servers, threading.Lock()

    def any(self, attempt: int) -> Server:
        with self.lock:
            return self.servers[attempt % len(self.servers)]

    def replace(self, old: Server, new: Server) -> None:
        with self.lock:
            self.servers[self.servers.index(old)] = new


def call(servers: Servers, method: str, path: str, body=None, headers=None):
    """One request, retried on another server while the one asked is down (connection refused or reset)."""
    for attempt in itertools.count():
        try:
            return servers.any(attempt).request(method, path, body, headers)
        except (OSError, http.client.HTTPException):
            if attempt > 100:
                raise
            time.sleep(0.1)


def drive(servers: Servers, number: int, problems: list) -> None:
    key = "usm-operate" if number % 2 else "usm-recover"
    status, case = call(servers, "POST", "/api/v1/cases", {"definition": key, "data": {"request": REQUEST}},
                        {"Idempotency-Key": f"soak-{number}"})
    if status not in (200, 201):
        problems.append(f"start {number}: {status} {case}")
        return
    for _ in range(300):
        pending, ready, timer_waits = [case["id"]], None, False
        while pending and ready is None:   # the case, then the cases it linked to, for the first ready task
            status, current = call(servers, "GET", f"/api/v1/cases/{pending.pop(0)}")
            if current.get("status") == "running" and current["tasks"]:
                ready = current["tasks"][0]
                timer_waits = any(w["type"] == "timer" for w in current["waiting_for"])
            pending += current.get("child_cases") or []
        if ready is None:
            return
        if timer_waits and number % 4 == 0:
            time.sleep(1.5)  # a slow person: the resolution target passes while the task is open
        status, task = call(servers, "GET", f"/api/v1/tasks/{ready['id']}")
        if status != 200:
            continue
        data = Driver.answer(task["form"], DECISIONS, {}, task["element_id"])
        status, answer = call(servers, "POST", f"/api/v1/tasks/{ready['id']}/complete", {"data": data})
        if status not in (200, 409):  # 409: done by our own first attempt before its server died, or cancelled
            problems.append(f"case {number} {task['element_id']}: {status} {answer}")
            return
    problems.append(f"case {number} did not end in 300 tasks")


def test_two_servers_two_workers_32_clients_and_a_crash(tmp_path):
    url = postgres_url_or_skip()
    reset_postgres(url)
    started = [Server(tmp_path, url, "soak-admin", DEFINITIONS, timer_worker=False).start(timeout=90)
               for _ in range(2)]
    workers = [subprocess.Popen([usm_command(), "worker", "--interval", "0.2"], cwd=tmp_path, env=started[0].env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
    servers = Servers(list(started))
    numbers: queue.Queue = queue.Queue()
    for number in range(CASES):
        numbers.put(number)
    problems: list[str] = []
    done = threading.Event()

    def client():
        while not done.is_set():
            try:
                number = numbers.get_nowait()
            except queue.Empty:
                return
            drive(servers, number, problems)

    clients = [threading.Thread(target=client, daemon=True) for _ in range(CLIENTS)]
    began = time.monotonic()
    try:
        for thread in clients:
            thread.start()
        while numbers.qsize() > CASES * 2 // 3 and time.monotonic() - began < 60:
            time.sleep(0.2)
        victim = servers.any(0)
        victim.kill()                                   # a crash in the middle of the run
        replacement = Server(tmp_path, url, "soak-admin", DEFINITIONS, timer_worker=False).start(timeout=90)
        servers.replace(victim, replacement)
        started.append(replacement)
        for thread in clients:
            thread.join(timeout=max(1, DEADLINE - (time.monotonic() - began)))
        done.set()
        assert not any(thread.is_alive() for thread in clients), f"the clients did not finish in {DEADLINE} s"
        assert problems == []
        time.sleep(1.5)  # a timer due at the very end may still be firing
        status, verify = call(servers, "GET", "/api/v1/audit/verify?limit=500")
        assert status == 200 and verify["ok"] is True and verify["next"] is None, verify
    finally:
        done.set()
        for worker in workers:
            worker.terminate()
            worker.wait(15)
        for server in started:
            server.stop()

    database = create_engine(url, poolclass=NullPool)
    with database.connect() as conn:
        statuses = dict(conn.execute(text("SELECT status, count(*) FROM cases GROUP BY status")).all())
        top = conn.execute(text("SELECT count(*) FROM cases WHERE parent_case_id IS NULL")).scalar()
        escalations = conn.execute(text("SELECT count(*) FROM cases WHERE definition_key = 'usm-escalation'")).scalar()
        twice = conn.execute(text(
            "SELECT count(*) FROM (SELECT chain, details FROM events WHERE type = 'task_completed' "
            "GROUP BY chain, details HAVING count(*) > 1) AS repeated")).scalar()
        fired_twice = conn.execute(text(
            "SELECT count(*) FROM (SELECT chain, element_id FROM events WHERE type = 'timer_fired' "
            "GROUP BY chain, element_id HAVING count(*) > 1) AS repeated")).scalar()
        fired = conn.execute(text("SELECT count(*) FROM events WHERE type = 'timer_fired'")).scalar()
        unmatched = conn.execute(text(
            "SELECT count(*) FROM tasks t WHERE t.state = 'completed' AND NOT EXISTS (SELECT 1 FROM events e "
            "WHERE e.chain = t.case_id AND e.type = 'task_completed' AND e.details LIKE '%' || t.id || '%')"
        )).scalar()
    database.dispose()
    assert top == CASES and statuses == {"completed": sum(statuses.values())}, statuses
    assert escalations >= 1 and fired >= escalations  # escalations came from timers that fired
    assert (twice, fired_twice, unmatched) == (0, 0, 0)
    print(f"\nsoak: {sum(statuses.values())} cases ({escalations} escalations), {fired} timers fired, "
          f"{time.monotonic() - began:.0f} s")
