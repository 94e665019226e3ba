"""Two clients complete the same task at the same moment: exactly one wins (200), the other gets 409,
and the case is consistent afterwards — on SQLite with threads and on PostgreSQL with processes."""
from __future__ import annotations

import multiprocessing
import threading

from sqlalchemy import create_engine, func, select
from sqlalchemy.pool import NullPool

from usm_engine.engine.schema import cases, tasks
from tests.conftest import APPROVAL, TOKENS, bearer, deploy, postgres_url_or_skip, reset_postgres

ROUNDS = 10
SUBMIT = {"data": {"item": "pen", "quantity": 2}}


def start_cases(client, count: int) -> list[tuple[str, str]]:
    started = []
    for _ in range(count):
        case = client.post("/api/v1/cases", json={"definition": "approval"}, headers=bearer("system")).get_json()
        started.append((case["id"], case["tasks"][0]["id"]))
    return started


def assert_consistent(database_url: str, case_id: str, submit_task_id: str) -> None:
    """One completion recorded, one next task, case row advanced exactly once."""
    engine = create_engine(database_url, poolclass=NullPool)
    with engine.connect() as conn:
        row_version = conn.execute(select(cases.c.row_version).where(cases.c.id == case_id)).scalar_one()
        states = dict(conn.execute(select(tasks.c.element_id, func.count()).where(tasks.c.case_id == case_id)
                                   .group_by(tasks.c.element_id)).all())
        submit_state = conn.execute(select(tasks.c.state).where(tasks.c.id == submit_task_id)).scalar_one()
    engine.dispose()
    assert row_version == 2
    assert states == {"Activity_Submit": 1, "Activity_Decide": 1}
    assert submit_state == "completed"


def test_threads_racing_on_sqlite_one_wins(app, client, database_url):
    assert deploy(client, *APPROVAL).status_code == 201
    for case_id, task_id in start_cases(client, ROUNDS):
        barrier = threading.Barrier(2)
        statuses: list[int] = []

        # The round's objects are passed in, not closed over: a racer still running after its join times
        # out must not see the next round's barrier, task or list.
        def complete(barrier: threading.Barrier, task_id: str, statuses: list[int]) -> None:
            own_client = app.test_client()
            barrier.wait()
            response = own_client.post(f"/api/v1/tasks/{task_id}/complete", json=SUBMIT, headers=bearer("system"))
            statuses.append(response.status_code)

        racers = [threading.Thread(target=complete, args=(barrier, task_id, statuses)) for _ in range(2)]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join(30)
        assert sorted(statuses) == [200, 409], statuses
        assert_consistent(database_url, case_id, task_id)
        case = client.get(f"/api/v1/cases/{case_id}", headers=bearer("system")).get_json()
        assert [t["element_id"] for t in case["tasks"]] == ["Activity_Decide"]
        assert case["data"]["quantity"] == 2


def _racer(url: str, tokens_file: str, task_id: str, barrier, results) -> None:
    from usm_engine.api.app import create_app
    from usm_engine.api.settings import settings_from_env

    app = create_app(settings_from_env(overrides={"USM_DATABASE_URL": url, "USM_ADMIN_TOKEN": TOKENS["admin"],
                                                  "USM_TOKENS_FILE": tokens_file}), migrate=False)
    client = app.test_client()
    barrier.wait()
    response = client.post(f"/api/v1/tasks/{task_id}/complete", json=SUBMIT,
                           headers={"Authorization": f"Bearer {TOKENS['system']}"})
    results.put(response.status_code)
    app.extensions["usm_engine"].close()


def test_processes_racing_on_postgresql_one_wins(app_factory, tokens_file):
    url = postgres_url_or_skip()
    reset_postgres(url)
    app = app_factory(USM_DATABASE_URL=url)
    client = app.test_client()
    assert deploy(client, *APPROVAL).status_code == 201
    context = multiprocessing.get_context("spawn")
    for case_id, task_id in start_cases(client, ROUNDS):
        barrier, results = context.Barrier(2), context.Queue()
        racers = [context.Process(target=_racer, args=(url, tokens_file, task_id, barrier, results))
                  for _ in range(2)]
        for racer in racers:
            racer.start()
        statuses = sorted(results.get(timeout=60) for _ in racers)
        for racer in racers:
            racer.join(30)
            assert racer.exitcode == 0
        assert statuses == [200, 409], statuses
        assert_consistent(url, case_id, task_id)


def test_forced_interleaving_the_loser_gets_409_and_writes_nothing(app, client, database_url, monkeypatch):
    """Both requests read the case before either writes (held at a barrier), so the second write meets
    a changed row version: optimistic concurrency, not the task-state check, must turn it away."""
    from usm_engine.engine import case_work

    assert deploy(client, *APPROVAL).status_code == 201
    ((case_id, task_id),) = start_cases(client, 1)
    barrier = threading.Barrier(2, timeout=30)
    original = case_work.check_if_match

    def check_then_wait(row, if_match):
        original(row, if_match)
        barrier.wait()  # both have read version 1 now

    monkeypatch.setattr(case_work, "check_if_match", check_then_wait)
    responses = []

    def complete():
        response = app.test_client().post(f"/api/v1/tasks/{task_id}/complete", json=SUBMIT,
                                          headers=bearer("system"))
        responses.append(response)

    racers = [threading.Thread(target=complete) for _ in range(2)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(30)
    assert sorted(r.status_code for r in responses) == [200, 409]
    loser = next(r for r in responses if r.status_code == 409)
    assert loser.mimetype == "application/problem+json"
    assert "another request changed this case" in loser.get_json()["detail"]
    assert_consistent(database_url, case_id, task_id)
