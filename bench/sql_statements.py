"""What one statement of the complete-task path costs: as engine/store.py builds it on every call,
built once with bindparam(), as driver SQL through SQLAlchemy, and through sqlite3 directly.

    python -m bench.sql_statements            # microseconds per call, best of 5 rounds

Run by hand; see BENCHMARKS.md ("SQLAlchemy statement building").
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import bindparam, select, update  # noqa: E402

from usm_engine.engine import store  # noqa: E402
from usm_engine.engine.schema import cases, tasks  # noqa: E402
from usm_engine.engine.service import Engine  # noqa: E402
from usm_engine.engine.settings import EngineSettings  # noqa: E402

CHAIN = Path(__file__).resolve().parent / "chain.bpmn"


def best_of(fn, calls: int, rounds: int = 5) -> float:
    """Microseconds per call, fastest round."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) / calls * 1e6)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sql_statements", description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args(argv)
    n = args.calls

    directory = tempfile.mkdtemp(prefix="usm-bench-sql-")
    engine = Engine(EngineSettings(f"sqlite:///{directory}/sql.db"))
    engine.migrate()
    engine.deploy([(CHAIN.name, CHAIN.read_bytes())], "bench")
    case, _ = engine.start_case("bench_chain", "bench")
    task_id, case_id = case["tasks"][0]["id"], case["id"]

    get_task = select(tasks).where(tasks.c.id == bindparam("b_id"))
    raw_get_task = f"SELECT {', '.join(c.name for c in tasks.c)} FROM tasks WHERE id = ?"
    rows = []
    with engine.db.reader.connect() as conn:
        dbapi = conn.connection.dbapi_connection
        rows.append(("get_task (SELECT one task by id)",
                     best_of(lambda: [store.get_task(conn, task_id) for _ in range(n)], n),
                     best_of(lambda: [conn.execute(get_task, {"b_id": task_id}).first() for _ in range(n)], n),
                     best_of(lambda: [conn.exec_driver_sql(raw_get_task, (task_id,)).first() for _ in range(n)], n),
                     best_of(lambda: [dbapi.execute(raw_get_task, (task_id,)).fetchone() for _ in range(n)], n)))
        row = store.get_case(conn, case_id)

    values = {"status": "running", "state": row.state, "serializer_version": row.serializer_version,
              "data": row.data, "waiting_for": "[]", "incident": None, "next_timer_at": None,
              "updated_at": datetime.now(timezone.utc).replace(tzinfo=None), "workflow": None}
    for extra in ("event_seq", "event_hash"):
        if extra in cases.c:
            values[extra] = getattr(row, extra)
    update_case = (update(cases).where(cases.c.id == bindparam("b_id"), cases.c.row_version == bindparam("b_rv"))
                   .values({**{k: bindparam(k) for k in values}, "row_version": bindparam("b_next")}))
    end_one = (update(tasks).where(tasks.c.id == bindparam("b_id"), tasks.c.state == "ready")
               .values(state=bindparam("b_state"), ended_at=bindparam("b_at"), completed_by=bindparam("b_by")))
    now = values["updated_at"]
    conn = engine.db.writer.connect()
    transaction = conn.begin()
    try:
        version = row.row_version  # after the first call nothing matches; both variants do the same work
        rows.append(("update_case (UPDATE the case row, 11 columns)",
                     best_of(lambda: [store.update_case(conn, case_id, version, values) for _ in range(n)], n),
                     best_of(lambda: [conn.execute(update_case, {"b_id": case_id, "b_rv": version,
                                                                 "b_next": version + 1, **values})
                                      for _ in range(n)], n), None, None))
        rows.append(("end_tasks (UPDATE one task; store.py uses IN (...))",
                     best_of(lambda: [store.end_tasks(conn, [task_id], "completed", now, "x") for _ in range(n)], n),
                     best_of(lambda: [conn.execute(end_one, {"b_id": task_id, "b_state": "completed", "b_at": now,
                                                             "b_by": "x"}) for _ in range(n)], n), None, None))
    finally:
        transaction.rollback()
        conn.close()
        engine.close()
        shutil.rmtree(directory, ignore_errors=True)

    print("| statement | as store.py builds it (µs) | built once, bindparam (µs) | exec_driver_sql (µs) "
          "| sqlite3 directly (µs) |")
    print("|---|---:|---:|---:|---:|")
    for label, *costs in rows:
        print(f"| {label} | " + " | ".join("–" if c is None else f"{c:.0f}" for c in costs) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
