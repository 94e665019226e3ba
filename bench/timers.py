"""How late timers fire when many are due at once: N cases each wait on a timer (bench/timer.bpmn, a
timeDate read from the case's `due`), their due moments spread evenly over one minute, and W real
`usm worker` processes fire them. Run by hand from the repository root; BENCHMARKS.md has the results:

    python -m bench.timers --timers 1000 --workers 1
    USM_BENCH_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/usm_bench \\
        python -m bench.timers --database postgresql --timers 10000 --workers 2

Lateness of a timer = the moment its `timer_fired` trail event was recorded minus its due moment. The
run fails (exit 1) unless every case completed with exactly one `timer_fired` event: a timer fired twice
by two workers, or never, is a bug, not a slow result.

The cases are started in-process before the minute begins (the start is not what is measured); the
workers start when the cases exist, with their defaults. With --database postgresql the schema `public`
of USM_BENCH_POSTGRES_URL is DROPPED and re-created first: point it at a database of its own.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:  # `python bench/timers.py` from anywhere
    sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text  # noqa: E402

from bench.run import ACTOR, _cpu_seconds, reset_postgres  # noqa: E402
from usm_engine.engine.service import Engine  # noqa: E402
from usm_engine.engine.settings import EngineSettings  # noqa: E402

PROCESS_KEY = "bench_timer"
WINDOW_SECONDS = 60.0


def start_cases(url: str, count: int, lead_seconds: float) -> tuple[dict[str, datetime], datetime]:
    """`count` waiting cases whose due moments spread over one minute starting `lead_seconds` from now."""
    engine = Engine(EngineSettings(url))
    try:
        engine.migrate()
        engine.deploy([("timer.bpmn", (HERE / "timer.bpmn").read_bytes())], ACTOR)
        first = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=lead_seconds)
        due_of = {}
        for i in range(count):
            due = first + timedelta(seconds=WINDOW_SECONDS * i / count)
            case, _ = engine.start_case(PROCESS_KEY, ACTOR, data={"due": due.isoformat()})
            due_of[case["id"]] = due.replace(tzinfo=None)
        started = datetime.now(timezone.utc)
        if started > first:
            raise SystemExit(f"starting {count} cases took past the first due moment by "
                             f"{(started - first).total_seconds():.1f} s: raise --lead")
        return due_of, first
    finally:
        engine.close()


def fired(url: str) -> tuple[dict[str, list[datetime]], int]:
    """The `timer_fired` moments per case, and how many cases are still running."""
    db = create_engine(url)
    try:
        with db.connect() as conn:
            rows = conn.execute(text("SELECT chain, at FROM events WHERE type = 'timer_fired'")).all()
            running = conn.execute(text("SELECT count(*) FROM cases WHERE status = 'running'")).scalar_one()
    finally:
        db.dispose()
    moments: dict[str, list[datetime]] = {}
    for case_id, at in rows:
        moments.setdefault(case_id, []).append(at if isinstance(at, datetime) else datetime.fromisoformat(at))
    return moments, running


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(url: str, timers: int, workers: int, lead: float) -> int:
    due_of, first = start_cases(url, timers, lead)
    env = {**os.environ, "USM_DATABASE_URL": url}
    procs = [subprocess.Popen([sys.executable, "-m", "usm_engine.api.cli", "worker"], env=env)
             for _ in range(workers)]
    cpu = [0.0] * workers
    try:
        deadline = first + timedelta(seconds=WINDOW_SECONDS + 120)
        while datetime.now(timezone.utc) < deadline:
            time.sleep(2)
            cpu = [_cpu_seconds(p.pid) for p in procs]
            if datetime.now(timezone.utc) > first + timedelta(seconds=WINDOW_SECONDS) and fired(url)[1] == 0:
                break
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(10)
    moments, running = fired(url)
    late = [(moments[case_id][0] - due).total_seconds() for case_id, due in due_of.items() if case_id in moments]
    twice = sum(1 for m in moments.values() if len(m) > 1)
    print(f"{timers} timers over {WINDOW_SECONDS:.0f} s, {workers} worker(s), {url.split(':')[0]}: "
          f"fired {len(late)}, twice {twice}, still running {running}")
    if late:
        print(f"lateness p50 {pct(late, 0.5) * 1000:.0f} ms, p90 {pct(late, 0.9) * 1000:.0f} ms, "
              f"p99 {pct(late, 0.99) * 1000:.0f} ms, max {max(late) * 1000:.0f} ms, "
              f"early {sum(1 for v in late if v < 0)}")
        print(f"worker CPU {sum(cpu):.1f} s in all, {sum(cpu) * 1000 / len(late):.1f} ms per timer")
    return 0 if len(late) == timers and twice == 0 and running == 0 else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timers", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--lead", type=float, default=None,
                        help="seconds from the start of the run to the first due moment (default: room to "
                             "start the cases at 100/s, at least 15)")
    args = parser.parse_args(argv)
    lead = args.lead if args.lead is not None else max(15.0, args.timers / 100)
    if args.database == "postgresql":
        url = os.environ.get("USM_BENCH_POSTGRES_URL")
        if not url:
            parser.error("--database postgresql needs USM_BENCH_POSTGRES_URL (a database of its own)")
        reset_postgres(url)
        return run(url, args.timers, args.workers, lead)
    with tempfile.TemporaryDirectory() as folder:
        return run(f"sqlite:///{folder}/timers.db", args.timers, args.workers, lead)


if __name__ == "__main__":
    raise SystemExit(main())
