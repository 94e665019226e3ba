"""Instructions per task completion, in-process on SQLite, counted by valgrind: a figure that does not move with
the machine's speed, so two versions of the code can be compared without alternating runs on a machine whose
speed drifts by a third within an hour (BENCHMARKS.md).

    python -m bench.instructions                      # the engine as configured by default
    python -m bench.instructions --cache-mb 0         # without the live workflows (engine/workflow_cache.py)
    python -m bench.instructions --path http          # the Flask app too: GET the case's task, then complete it
    USM_BENCH_POSTGRES_URL=postgresql+psycopg://... python -m bench.instructions --database postgresql

Runs bench/chain.bpmn (10 user tasks per case) under `valgrind --tool=callgrind` twice, with a few cases and
with more: the difference, divided by the difference in completions, leaves out start-up and imports. `engine`
calls Engine.start_case and complete_task; `http` drives the Flask app through its test client as a worklist
client does (GET /api/v1/tasks?case=ID, then POST .../complete): routing, token, body checks, JSON, logs and
metrics, but no gunicorn and no socket. It counts this process's user-space instructions (Python, SQLite,
psycopg, orjson...), not the kernel's nor PostgreSQL's, and includes a tenth of a case start per completion.
Needs valgrind (Debian: apt-get install valgrind); a run takes a minute or two.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

_COLLECTED = re.compile(r"Collected : (\d+)")


def database_url(database: str, folder: str) -> str:
    if database == "sqlite":
        return f"sqlite:///{folder}/bench.db"
    url = os.environ.get("USM_BENCH_POSTGRES_URL")
    if not url:
        raise SystemExit("--database postgresql needs USM_BENCH_POSTGRES_URL (a database the bench may empty)")
    return url


def drive(path: str, database: str, cases: int, cache_mb: int) -> int:
    """The body of the counted process: start `cases` cases and complete every task; returns completions."""
    from .run import reset_postgres

    folder = tempfile.mkdtemp(prefix="usm-instructions-")
    url = database_url(database, folder)
    if database == "postgresql":
        reset_postgres(url)
    try:
        run = drive_engine if path == "engine" else drive_http
        return run(url, cases, cache_mb)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def drive_engine(url: str, cases: int, cache_mb: int) -> int:
    from usm_engine.engine.service import Engine, EngineSettings

    from .run import ACTOR, PROCESS_KEY, _allow_all, bench_files, task_data

    engine = Engine(EngineSettings(url, workflow_cache_bytes=cache_mb * 1024 * 1024))
    try:
        engine.migrate()
        engine.deploy(bench_files(), ACTOR)
        completions = 0
        for _ in range(cases):
            case, _created = engine.start_case(PROCESS_KEY, ACTOR)
            while case["tasks"]:
                case = engine.complete_task(case["tasks"][0]["id"], task_data(completions), ACTOR, _allow_all)
                completions += 1
        return completions
    finally:
        engine.close()


def drive_http(url: str, cases: int, cache_mb: int) -> int:
    import logging
    import secrets

    from usm_engine.api import logs
    from usm_engine.api.app import create_app
    from usm_engine.api.settings import settings_from_env

    from .run import BPMN, PROCESS_KEY, task_data

    # The server's JSON access log is part of the path; its lines go nowhere here rather than to stderr.
    logs.configure()
    logging.getLogger().handlers[0].setStream(open(os.devnull, "w"))  # type: ignore[attr-defined]
    token = secrets.token_urlsafe(24)
    app = create_app(settings_from_env(overrides={
        "USM_DATABASE_URL": url, "USM_ADMIN_TOKEN": token, "USM_TOKENS_FILE": None,
        "USM_WORKFLOW_CACHE_MB": str(cache_mb)}))
    client, headers = app.test_client(), {"Authorization": f"Bearer {token}"}
    try:
        answer = client.post("/api/v1/definitions", data=BPMN.read_bytes(), headers=headers,
                             content_type="application/xml")
        assert answer.status_code in (200, 201), answer.get_json()
        completions = 0
        for _ in range(cases):
            case_id = client.post("/api/v1/cases", json={"definition": PROCESS_KEY}, headers=headers).get_json()["id"]
            while items := client.get(f"/api/v1/tasks?case={case_id}", headers=headers).get_json()["items"]:
                answer = client.post(f"/api/v1/tasks/{items[0]['id']}/complete", json={"data": task_data(completions)},
                                     headers=headers)
                assert answer.status_code == 200, answer.get_json()
                completions += 1
        return completions
    finally:
        app.extensions["usm_engine"].close()


def counted(path: str, database: str, cases: int, cache_mb: int) -> tuple[int, int]:
    """(instructions, completions) of one run under callgrind."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("bench.instructions needs valgrind (apt-get install valgrind)")
    run = subprocess.run([valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, "-m",
                          "bench.instructions", "--drive", str(cases), "--cache-mb", str(cache_mb), "--path", path,
                          "--database", database],
                         capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent, check=True)
    return int(_COLLECTED.search(run.stderr).group(1)), int(run.stdout.split()[-1])  # type: ignore[union-attr]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=10, help="cases in the larger run (the smaller has 2)")
    parser.add_argument("--cache-mb", type=int, default=16, help="USM_WORKFLOW_CACHE_MB for the engine")
    parser.add_argument("--path", choices=("engine", "http"), default="engine",
                        help="engine: Engine calls; http: the Flask app through its test client (fetch + complete)")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite",
                        help="postgresql needs USM_BENCH_POSTGRES_URL")
    parser.add_argument("--drive", type=int, help=argparse.SUPPRESS)  # the process valgrind counts
    args = parser.parse_args()
    if args.drive is not None:
        print(drive(args.path, args.database, args.drive, args.cache_mb))
        return
    small = counted(args.path, args.database, 2, args.cache_mb)
    large = counted(args.path, args.database, args.cases, args.cache_mb)
    per = (large[0] - small[0]) / (large[1] - small[1])
    print(f"{per / 1e6:.2f} M instructions per completion ({args.path} on {args.database}, cache {args.cache_mb} MB; "
          f"{large[1] - small[1]} completions between runs of {small[1]} and {large[1]})")


if __name__ == "__main__":
    main()
