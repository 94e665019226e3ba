"""What a finished case costs on disk: N cases of bench/six.bpmn (six user tasks in a row, then a gateway)
run to the end through the engine in-process, then the bytes each table and index grew by, per case.
Run by hand from the repository root; BENCHMARKS.md has the results:

    python -m bench.storage --cases 1000
    USM_BENCH_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/usm_bench \\
        python -m bench.storage --cases 1000 --database postgresql

SQLite: the sizes of the b-trees' pages in use (the dbstat table), after a checkpoint, measured against
the same database before the first case. PostgreSQL: pg_relation_size of each table (with its TOAST) and
index after VACUUM, against the same before. With --database postgresql the schema `public` of
USM_BENCH_POSTGRES_URL is DROPPED and re-created first: point it at a database of its own.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
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


def sizes(url: str) -> dict[str, int]:
    """Bytes in use per table and index (a table's TOAST counted with it)."""
    db = create_engine(url, poolclass=NullPool)
    try:
        if url.startswith("sqlite"):
            with db.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
                rows = conn.exec_driver_sql("SELECT name, sum(pgsize - unused) FROM dbstat GROUP BY name").all()
            # (sqlite_autoindex_* are the indexes of UNIQUE constraints: counted like the others)
            return {name: int(size) for name, size in rows if name not in ("sqlite_schema", "sqlite_sequence")}
        with db.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM")
            rows = conn.execute(text(
                "SELECT c.relname, pg_relation_size(c.oid) + COALESCE(pg_relation_size(c.reltoastrelid), 0) "
                "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'i')")).all()
        return {name: int(size) for name, size in rows}
    finally:
        db.dispose()


def run_cases(engine: Engine, count: int, rng: random.Random) -> None:
    for n in range(count):
        case, _ = engine.start_case(PROCESS_KEY, ACTOR, business_key=f"STORE-{n:06d}",
                                    data={"request": {"requester": f"user{n}@example.org", "summary": "a request"}})
        step = 0
        while case["tasks"]:
            step += 1
            data = {"note": f"step {step} done"} if step < 6 else {"approved": rng.random() < 0.5}
            case = engine.complete_task(case["tasks"][0]["id"], data, f"person{rng.randint(1, 20)}", _allow_all)
        assert case["status"] == "completed", case


def measure(url: str, count: int) -> None:
    engine = Engine(EngineSettings(url))
    try:
        engine.migrate()
        engine.deploy([("six.bpmn", (HERE / "six.bpmn").read_bytes())], ACTOR)
        before = sizes(url)
        run_cases(engine, count, random.Random(7))
    finally:
        engine.close()
    after = sizes(url)
    grown = {name: after.get(name, 0) - before.get(name, 0) for name in after}
    print(f"{count} finished cases of {PROCESS_KEY} on {url.split(':')[0]}: bytes per case")
    total = 0.0
    for name, delta in sorted(grown.items(), key=lambda item: -item[1]):
        if delta:
            per_case = delta / count
            total += per_case
            print(f"  {name:32s} {per_case:8.0f}")
    print(f"  {'total':32s} {total:8.0f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args(argv)
    if args.database == "postgresql":
        url = os.environ.get("USM_BENCH_POSTGRES_URL")
        if not url:
            parser.error("--database postgresql needs USM_BENCH_POSTGRES_URL (a database of its own)")
        reset_postgres(url)
        measure(url, args.cases)
        return 0
    with tempfile.TemporaryDirectory() as folder:
        measure(f"sqlite:///{folder}/storage.db", args.cases)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
