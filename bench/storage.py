"""What a finished case costs on disk: N cases of bench/six.bpmn (six user tasks in a row, then a gateway)
run to the end through the engine in-process, then the bytes each table and index grew by, per case, and
(SQLite) the largest the write-ahead log grew meanwhile. Run by hand from the repository root;
BENCHMARKS.md has the results:

    python -m bench.storage                                   # 1000 cases after 300 to warm up
    USM_BENCH_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/usm_storage \\
        python -m bench.storage --database postgresql
    python -m bench.storage --cases 6000 --warmup 0 --threads 8   # the WAL under sustained load

The figure is a steady state, as an operator's database sees it. A case row is written about seven times; on
PostgreSQL each write leaves a dead row version (and, unless the update is HOT, dead index entries) whose
space VACUUM frees for reuse but does not give back to the file. Measured once from an empty database, that
space counts as if every case kept it for ever (29,955 bytes a case before migration 0011, against 15,409
measured as below). So the cases run in rounds of --vacuum-every (50) with a plain VACUUM after each, as
autovacuum does on a busy table (this server has it off); a warm-up batch (--warmup, 300) runs first, the
sizes are taken, then the measured batch, and the sizes again: the measured batch reuses the space the
warm-up's last round freed and leaves as much behind, so what it adds is what its cases keep.

SQLite: the bytes in use in the b-trees' pages (the dbstat table: page size less unused bytes), after a
TRUNCATE checkpoint, and on a line of its own the whole pages in use (what the file grew by: the free
part of partly filled pages too). PostgreSQL: pg_relation_size of each table (with its TOAST) and index after a plain
VACUUM (whole pages, free space in them included). The rows each table grew by are printed too, so that a
table's bytes per row (PostgreSQL: 28 to 36 bytes of tuple header and line pointer each) can be read off.
With --database postgresql the schema `public` of USM_BENCH_POSTGRES_URL is DROPPED and re-created first:
point it at a database of its own.

The write-ahead log (SQLite): a thread samples the size of the -wal file every few milliseconds while the
measured batch runs, with no timer worker (the worker checkpoints every second in `usm serve`; this is
the case of a server without one, where only the connections' own checkpoints run: engine/database.py).
--threads runs cases from that many threads at once, so that readers overlap writers as in a serving
process (and keep the log from starting over, which is what the bound is for).
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:  # `python bench/storage.py` from anywhere
    sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.pool import NullPool  # noqa: E402

from bench.run import ACTOR, _allow_all, reset_postgres  # noqa: E402
from usm_engine.engine.service import Engine  # noqa: E402
from usm_engine.engine.settings import EngineSettings  # noqa: E402

PROCESS_KEY = "bench_six"
COUNTED = ("cases", "tasks", "events")  # the tables whose rows are counted per case


def sizes(url: str) -> tuple[dict[str, int], dict[str, int], int]:
    """Bytes in use per table and index (a table's TOAST counted with it), the rows of COUNTED, and the bytes
    of the pages in use (SQLite: the part of partly filled pages that is free is in these, not in the first)."""
    db = create_engine(url, poolclass=NullPool)
    try:
        if url.startswith("sqlite"):
            with db.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
                rows = conn.exec_driver_sql("SELECT name, sum(pgsize - unused) FROM dbstat GROUP BY name").all()
                counts = {table: conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one()
                          for table in COUNTED}
                pages = conn.exec_driver_sql("SELECT (SELECT page_count FROM pragma_page_count) - "
                                             "(SELECT freelist_count FROM pragma_freelist_count)").scalar_one()
                page_size = conn.exec_driver_sql("PRAGMA page_size").scalar_one()
            # (sqlite_autoindex_* are the indexes of UNIQUE constraints and primary keys: counted like the others)
            return ({name: int(size) for name, size in rows if name not in ("sqlite_schema", "sqlite_sequence")},
                    counts, pages * page_size)
        with db.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM")
            rows = conn.execute(text(
                "SELECT c.relname, pg_relation_size(c.oid) + COALESCE(pg_relation_size(c.reltoastrelid), 0) "
                "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'i')")).all()
            counts = {table: conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one() for table in COUNTED}
        return {name: int(size) for name, size in rows}, counts, sum(int(size) for _, size in rows)
    finally:
        db.dispose()


def run_case(engine: Engine, n: int) -> None:
    rng = random.Random(n)
    case, _ = engine.start_case(PROCESS_KEY, ACTOR, business_key=f"STORE-{n:06d}",
                                data={"request": {"requester": f"user{n}@example.org", "summary": "a request"}})
    step = 0
    while case["tasks"]:
        step += 1
        data = {"note": f"step {step} done"} if step < 6 else {"approved": rng.random() < 0.5}
        case = engine.complete_task(case["tasks"][0]["id"], data, f"person{rng.randint(1, 20)}", _allow_all)
    assert case["status"] == "completed", case


def run_cases(engine: Engine, numbers: range, threads: int) -> None:
    if threads == 1:
        for n in numbers:
            run_case(engine, n)
        return
    with ThreadPoolExecutor(threads) as pool:
        for _ in pool.map(lambda n: run_case(engine, n), numbers):
            pass


@contextmanager
def wal_watch(url: str) -> Iterator[dict[str, int]]:
    """The largest size the SQLite -wal file reached while the block ran (0 on PostgreSQL)."""
    seen = {"max": 0}
    if not url.startswith("sqlite"):
        yield seen
        return
    path, stop = url.split("///", 1)[1] + "-wal", threading.Event()

    def sample() -> None:
        while not stop.wait(0.002):
            try:
                seen["max"] = max(seen["max"], os.path.getsize(path))
            except FileNotFoundError:
                pass

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield seen
    finally:
        stop.set()
        sampler.join()


def vacuum(url: str) -> None:
    """What autovacuum does to a busy table: the space of dead row versions made free for reuse."""
    db = create_engine(url, poolclass=NullPool)
    with db.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM")
    db.dispose()


def run_rounds(engine: Engine, url: str, numbers: range, threads: int, round_size: int) -> None:
    """The cases in rounds, PostgreSQL vacuumed after each (autovacuum is often off in test servers)."""
    for start in range(numbers.start, numbers.stop, round_size):
        run_cases(engine, range(start, min(start + round_size, numbers.stop)), threads)
        if not url.startswith("sqlite"):
            vacuum(url)


def measure(url: str, count: int, warmup: int, threads: int, round_size: int) -> None:
    engine = Engine(EngineSettings(url))
    try:
        engine.migrate()
        engine.deploy([("six.bpmn", (HERE / "six.bpmn").read_bytes())], ACTOR)
        run_rounds(engine, url, range(warmup), threads, round_size)
        before, rows_before, file_before = sizes(url)
        with wal_watch(url) as wal:
            run_rounds(engine, url, range(warmup, warmup + count), threads, round_size)
    finally:
        engine.close()
    after, rows_after, file_after = sizes(url)
    grown = {name: after.get(name, 0) - before.get(name, 0) for name in after}
    print(f"{count} finished cases of {PROCESS_KEY} on {url.split(':')[0]} after {warmup} to warm up, "
          f"{threads} thread(s), VACUUM every {round_size} (PostgreSQL): bytes per case")
    total = 0.0
    for name, delta in sorted(grown.items(), key=lambda item: -item[1]):
        if delta:
            per_case = delta / count
            total += per_case
            rows = rows_after.get(name, 0) - rows_before.get(name, 0)
            per_row = f"  ({rows / count:.0f} rows, {delta / rows:.0f} bytes each)" if rows else ""
            print(f"  {name:32s} {per_case:8.0f}{per_row}")
    print(f"  {'total':32s} {total:8.0f}")
    if url.startswith("sqlite"):
        print(f"  {'whole pages (the file grew by)':32s} {(file_after - file_before) / count:8.0f}")
    if url.startswith("sqlite"):
        print(f"  largest write-ahead log meanwhile: {wal['max']:,} bytes")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=300, help="cases run before measuring")
    parser.add_argument("--threads", type=int, default=1, help="cases run at once")
    parser.add_argument("--vacuum-every", type=int, default=50, help="PostgreSQL: cases between two VACUUMs")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args(argv)
    if args.database == "postgresql":
        url = os.environ.get("USM_BENCH_POSTGRES_URL")
        if not url:
            parser.error("--database postgresql needs USM_BENCH_POSTGRES_URL (a database of its own)")
        reset_postgres(url)
        measure(url, args.cases, args.warmup, args.threads, args.vacuum_every)
        return 0
    with tempfile.TemporaryDirectory() as folder:
        measure(f"sqlite:///{folder}/storage.db", args.cases, args.warmup, args.threads, args.vacuum_every)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
