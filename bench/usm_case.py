"""A real USM case over HTTP: a service-desk call (usm-call) classified as an incident, through its frames
and the incident workflow it hands off to, every task completed with data its own form accepts.

    python -m bench.usm_case                       # SQLite, usm serve's defaults, 8 clients, 40 cases
    USM_BENCH_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/usm_bench \\
        python -m bench.usm_case --database postgresql

`usm serve` runs with the USM definitions of this checkout. Each client starts calls one after another and
drives each as a worklist client would: read the case and the cases it handed off to, pick a ready task,
read it (its form), complete it with random data the form accepts (tools/random_walk.py's generator,
seeded per call, so a run is repeatable). The call is pinned to an incident that is accepted
(`call_class`, `intake_decision`); every other answer is random, so cases take different paths. Reported
per completion (the complete call's latency) and per case (tasks per case, seconds per case).
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import threading
import time

from bench.run import ROOT, Client, Result, Server, ms, running
from tools.random_walk import form_data

PINNED = {"call_class": "incident", "intake_decision": "accept"}
REQUEST = {"requester": "bench@example.org", "summary": "printer on the third floor is down",
           "agreement": {"service": "Workplace", "service_levels": {"P1": "PT4H", "P2": "PT8H", "P3": "PT24H",
                                                                     "P4": "PT72H"}}}
MAX_TASKS = 200  # per call and the cases it hands off to: random answers loop now and then, never forever


def answer(form: dict, rng: random.Random) -> dict:
    data = form_data(form, rng)
    return {**data, **{name: value for name, value in PINNED.items() if name in form.get("properties", {})}}


def drive_call(client: Client, rng: random.Random, samples: list[float]) -> tuple[int, list[str]]:
    """One call and the cases it hands off to, to their ends; returns (completions, problems)."""
    status, case = client.call("POST", "/api/v1/cases", {"definition": "usm-call", "data": {"request": REQUEST}})
    if status != 201:
        return 0, [f"start: {status} {case.get('detail')}"]
    for done in range(MAX_TASKS):
        cases = tree(client, case["id"])
        incidents = [f"{c['definition']}: incident {c['incident'].get('message')}" for c in cases if c.get("incident")]
        if incidents:
            return done, incidents
        ready = [t for c in cases if c["status"] == "running" for t in c["tasks"] if not t.get("topic")]
        if not ready:
            open_cases = [f"{c['definition']} {c['status']}" for c in cases if c["status"] != "completed"]
            return done, [f"stopped with no ready task: {open_cases}"] if open_cases else []
        summary = rng.choice(ready)
        _, task = client.call("GET", f"/api/v1/tasks/{summary['id']}")
        started = time.perf_counter()
        status, body = client.call("POST", f"/api/v1/tasks/{summary['id']}/complete",
                                   {"data": answer(task["form"], rng)})
        samples.append(time.perf_counter() - started)
        if status != 200:
            return done, [f"{summary['element_id']}: complete answered {status} {body.get('detail')}"]
    return MAX_TASKS, [f"not finished after {MAX_TASKS} tasks"]


def tree(client: Client, root: str) -> list[dict]:
    """The call and the cases it handed off to (one generation, like tools/random_walk.py's default)."""
    _, case = client.call("GET", f"/api/v1/cases/{root}")
    cases = [case]
    for child in case.get("child_cases") or []:
        cases.append(client.call("GET", f"/api/v1/cases/{child}")[1])
    return cases


def run(server, clients: int, calls: int, seed: int) -> dict:
    samples: list[float] = []
    per_case: list[tuple[int, float]] = []
    problems: list[str] = []
    lock = threading.Lock()
    remaining = [calls]

    def client_loop() -> None:
        client = Client(server.port, server.token)
        mine: list[float] = []
        while True:
            with lock:
                if remaining[0] <= 0:
                    break
                remaining[0] -= 1
                number = remaining[0]
            # Seeded per call, not per client: which client drives which call depends on timing, and the
            # calls' paths must not.
            rng = random.Random(seed * 100_000 + number)
            started = time.perf_counter()
            completions, found = drive_call(client, rng, mine)
            with lock:
                per_case.append((completions, time.perf_counter() - started))
                problems.extend(found)
        client.close()
        with lock:
            samples.extend(mine)

    begin = time.perf_counter()
    threads = [threading.Thread(target=client_loop) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - begin
    result = Result("usm case", samples, wall, errors=len(problems))
    return {"result": result, "per_case": per_case, "problems": problems}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.usm_case", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--calls", type=int, default=40, help="USM calls to drive to their end")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    postgres_url = os.environ.get("USM_BENCH_POSTGRES_URL") if args.database == "postgresql" else None
    if args.database == "postgresql" and not postgres_url:
        raise SystemExit("--database postgresql needs USM_BENCH_POSTGRES_URL (a database of its own)")
    # this checkout's USM definitions, deployed at the server's start
    with running(Server(args.workers, args.threads, postgres_url, ROOT / "definitions"), timeout=120) as server:
        drive_call(Client(server.port, server.token), random.Random(0), [])  # warm-up, not counted
        measured = run(server, args.clients, args.calls, args.seed)
    result, per_case = measured["result"], measured["per_case"]
    tasks = [completions for completions, _ in per_case]
    seconds = sorted(took for _, took in per_case)
    print(f"usm-call as an incident, {args.database}, usm serve {args.workers} x {args.threads}, "
          f"{args.clients} clients, {len(per_case)} calls")
    print(f"completions: {result.count} in {result.wall:.1f} s = {result.per_second:.0f}/s; complete call p50 "
          f"{ms(result.pct(50))} ms, p99 {ms(result.pct(99))} ms")
    print(f"per case: {sum(tasks) / max(1, len(tasks)):.1f} tasks (min {min(tasks, default=0)}, max "
          f"{max(tasks, default=0)}), {len(per_case) / result.wall:.2f} cases/s, seconds per case p50 "
          f"{seconds[len(seconds) // 2]:.2f}, max {seconds[-1]:.2f}" if seconds else "per case: none")
    for problem in measured["problems"][:10]:
        print(f"problem: {problem}")
    return 1 if measured["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
