"""The query plans and times of service-level insight (engine/insight.py) at 100 000 cases. Run by hand from the
repository root; docs/insight-query-plans.md has the results:

    python -m bench.insight_plans                       # a fresh SQLite file in a temporary directory
    python -m bench.insight_plans --database postgresql+psycopg://postgres@127.0.0.1:5432/usm_bench

A fresh database at the newest schema is filled by bulk insert, not through the engine (minutes, not hours),
with a year of USM-shaped history ending at 2027-01-01, case after case in the order they began: calls of
eight workflows and four priorities (about 12 % of them past their target, with an escalation case each; 2 %
reclassified at intake, 3 % cancelled, the newest still open), the service desk's intake cases, six tasks a
call in their lanes, and about 20 trail events a case of the kinds and sizes the engine writes (the state of
a case that has not finished as large as a real one; a finished case keeps none).
Then, for a month, a month of one workflow and priority, and the whole year, it prints every insight query's
plan (SQLite: EXPLAIN QUERY PLAN, as the engine leaves the database, without ANALYZE; PostgreSQL: EXPLAIN
ANALYZE after VACUUM ANALYZE, as autovacuum would leave it) and the time of each query and of each report.

With a PostgreSQL URL the schema `public` of that database is DROPPED and re-created first: point it at a
database of its own (usm_bench), never at one that holds anything else.
"""
from __future__ import annotations

import argparse
import functools
import json
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/insight_plans.py` from anywhere
    sys.path.insert(0, str(ROOT))

from sqlalchemy import event, insert  # noqa: E402
from sqlalchemy.engine import Connection  # noqa: E402

from bench.run import reset_postgres  # noqa: E402
from usm_engine.engine.case_state import FINISHED  # noqa: E402
from usm_engine.engine.insight_queries import every_query  # noqa: E402
from usm_engine.engine.schema import cases, events, tasks  # noqa: E402
from usm_engine.engine.service import Engine  # noqa: E402
from usm_engine.engine.settings import EngineSettings  # noqa: E402

END = datetime(2027, 1, 1)
HOUR = 3600
WORKFLOWS = {"WF1": ("usm-agree", 8), "WF2": ("usm-change", 12), "WF3": ("usm-recover", 12),
             "WF4": ("usm-recover", 18), "WF5": ("usm-operate", 30), "WF6": ("usm-improve", 5),
             "WF7": ("usm-improve", 7), "WF8": ("usm-improve", 8)}
PRIORITIES = {"P1": (4 * HOUR, 10), "P2": (8 * HOUR, 25), "P3": (24 * HOUR, 40), "P4": (72 * HOUR, 25)}
# (process, element, name, lane, share of the resolution time); the close takes its own time, after
STEPS = [("usm-frame-intake", "Activity_AcceptCall", "Accept call", "Service desk", 0.10),
         ("usm-frame-classify", "Activity_Classify", "Classify", "Service desk", 0.10),
         (None, "Activity_PlanActivities", "Plan activities", "Operations", 0.20),
         (None, "Activity_ExecuteActivities", "Execute activities", "Operations", 0.45),
         ("usm-frame-review", "Activity_ReviewDelivery", "Review delivery & feedback", "Service desk", 0.15),
         ("usm-frame-close", "Activity_EvaluateClose", "Evaluate & close", "Service desk", 0.0)]
FILLER_EVENTS = ("activity_completed", "gateway_taken", "event_passed")
HASH = "0" * 64
STATE = json.dumps({"tasks": {str(uuid.UUID(int=n)): {"state": 64, "data": {"note": "x" * 40}} for n in range(90)}})
BATCH = 5000


class Filler:
    """Rows of a year of history, written in batches as they are made, each batch in a transaction of its own."""

    def __init__(self, database, seed: int):
        self.database, self.random = database, random.Random(seed)
        self.rows: dict = {cases: [], tasks: [], events: []}
        self.counts = dict.fromkeys(("cases", "tasks", "events"), 0)
        self.numbers = 0

    def add(self, table, row: dict) -> None:
        self.rows[table].append(row)
        if len(self.rows[table]) >= BATCH:
            self.flush()

    def flush(self) -> None:
        with self.database.writer.begin() as conn:
            for table in (cases, tasks, events):  # a task's case first: tasks.case_id is a foreign key
                if self.rows[table]:
                    conn.execute(insert(table), self.rows[table])
                    self.counts[table.name] += len(self.rows[table])
                    self.rows[table] = []

    def new_id(self) -> str:
        return str(uuid.UUID(int=self.random.getrandbits(128), version=4))

    def case(self, definition: str, created: datetime, updated: datetime, status: str, data: dict, **call) -> str:
        case_id = self.new_id()
        self.add(cases, {"id": case_id, "definition_key": definition, "definition_version": 1, "pins": "{}",
                         "business_key": None, "status": status, "serializer_version": "1",
                         "state": "" if status in FINISHED else STATE,  # as the engine keeps them (case_state.py)
                         "data": json.dumps(data), "waiting_for": "[]", "created_by": "bench", "created_at": created,
                         "updated_at": updated, "row_version": 1, "event_seq": 0, "event_hash": HASH,
                         "parent_case_id": call.pop("parent", None), "workflow": call.pop("workflow", None),
                         **dict.fromkeys(("call_number", "priority", "resolution_target", "resolved_at")), **call})
        return case_id

    def task(self, case_id: str, definition: str, step: tuple, created: datetime, ended: datetime | None,
             state: str | None = None) -> None:
        process, element, name, lane = step[:4]
        self.add(tasks, {"id": self.new_id(), "case_id": case_id, "definition_key": definition,
                         "process_id": process or definition, "element_id": element, "name": name, "lane": lane,
                         "lane_role": lane.lower().replace(" ", "-"),
                         "state": state or ("completed" if ended else "ready"), "created_at": created,
                         "ended_at": ended, "completed_by": "bench" if state is None and ended else None,
                         "topic": None, "locked_by": None, "locked_until": None})

    def event(self, case_id: str, seq: int, at: datetime, type_: str, element: str | None = None,
              changes: dict | None = None, **details) -> None:
        self.add(events, {"chain": case_id, "seq": seq, "at": at, "type": type_, "actor": "bench",
                          "element_id": element, "element_name": element, "lane": None, "definition": "usm-operate",
                          "version": 1, "definition_hash": None, "data_changes": json.dumps(changes or {}),
                          "details": json.dumps(details), "hash": bytes.fromhex(HASH), "element_definition": None})

    def work(self, case_id: str, definition: str, created: datetime, times: list[float], until: datetime,
             cancelled: bool) -> int:
        """The case's tasks, one a step taking its time, done while before `until`, the next one ready (or
        cancelled then); the number of its last event."""
        seq, at = 1, created
        self.event(case_id, seq, at, "case_started", changes={"request": [None, {"summary": "printer down"}]})
        for step, took in zip(STEPS, times, strict=True):
            ended = at + timedelta(seconds=took)
            done = ended < until
            if done or not cancelled:
                self.task(case_id, definition, step, at, ended if done else None)
            else:
                self.task(case_id, definition, step, at, until, "cancelled")
            for kind in ("task_ready", "task_completed", *FILLER_EVENTS) if done else ("task_ready",):
                seq += 1
                self.event(case_id, seq, ended if kind != "task_ready" else at, kind, step[1],
                           {"decision": [None, "accept"]} if kind == "task_completed" else None)
            if not done:
                return seq
            at = ended
        self.event(case_id, seq + 1, at, "case_completed")
        return seq + 1


# Cases a new call makes on average: 23 % are intake cases, 77 % calls, and 11 % of calls get an escalation case.
CASES_A_CALL = 0.23 + 0.77 * 1.115


def fill(database, total: int, seed: int) -> dict:
    """About `total` cases of a year ending at END, written in the order they were made (as a database in service
    has them, which is what the planner's correlation of a time column with the table's order says)."""
    filler = Filler(database, seed)
    pick = filler.random
    start = END - timedelta(days=365)
    for offset in sorted(pick.uniform(0, 365 * 24 * HOUR) for _ in range(round(total / CASES_A_CALL))):
        created = start + timedelta(seconds=offset)
        if pick.random() < 0.23:
            intake(filler, created)
        else:
            call(filler, created)
    filler.flush()
    return filler.counts


def intake(filler: Filler, created: datetime) -> None:
    """The service desk registers a call and hands it to its process."""
    handed = created + timedelta(minutes=filler.random.uniform(2, 60))
    done = handed < END
    case_id = filler.case("usm-call", created, handed if done else END, "completed" if done else "running",
                          {"registration": {}})
    filler.task(case_id, "usm-call", ("usm-call", "Activity_RegisterAndClassifyCall", "Register & classify call",
                                      "Service desk"), created, handed if done else None)
    filler.event(case_id, 1, created, "case_started")
    if done:
        filler.event(case_id, 2, handed, "message_sent", "Event_StartProcess", message="usm-operate")


def call(filler: Filler, created: datetime) -> None:
    """One call: classified and worked step by step (or cancelled on the way), or reclassified at intake."""
    pick = filler.random
    workflow = pick.choices(list(WORKFLOWS), [weight for _, weight in WORKFLOWS.values()])[0]
    priority = pick.choices(list(PRIORITIES), [weight for _, weight in PRIORITIES.values()])[0]
    target, definition = PRIORITIES[priority][0], WORKFLOWS[workflow][0]
    filler.numbers += 1
    number, fate = f"SRQ-{filler.numbers:06d}", pick.random()
    if fate < 0.02:  # reclassified at intake: closed without a priority, handed back to the service desk
        closed = created + timedelta(minutes=pick.uniform(5, 90))
        case_id = filler.case(definition, created, closed, "completed", {"call": {"number": number}},
                              workflow=workflow, call_number=number, resolved_at=closed)
        filler.event(case_id, 1, created, "case_started")
        filler.event(case_id, 2, closed, "message_sent", "Event_HandOverReclassified", message="call_received")
        filler.event(case_id, 3, closed, "case_completed")
        return
    seconds = target * pick.lognormvariate(-0.7, 0.6)  # a median of half the target: 15 % of calls breach it
    times = [seconds * step[4] for step in STEPS[:-1]] + [pick.uniform(600, 4 * HOUR)]
    until = min(END, created + timedelta(seconds=seconds * pick.random())) if fate > 0.97 else END
    resolved, closed = created + timedelta(seconds=seconds), created + timedelta(seconds=sum(times))
    status = "cancelled" if fate > 0.97 else "completed" if closed < until else "running"
    case_id = filler.case(definition, created, closed if status == "completed" else until, status,
                          {"call": {"number": number, "priority": priority}}, workflow=workflow, call_number=number,
                          priority=priority, resolution_target=target,
                          resolved_at=resolved if resolved < until else None)
    seq = filler.work(case_id, definition, created, times, until, status == "cancelled")
    escalated = created + timedelta(seconds=target)
    if seconds > target and escalated < until:
        filler.event(case_id, seq + 1, escalated, "message_sent", "Event_RaiseEscalation", message="escalation_raised")
        handled = escalated + timedelta(hours=pick.uniform(0.5, 12))
        done = handled < END
        escalation = filler.case("usm-escalation", escalated, handled if done else END,
                                 "completed" if done else "running", {"escalation": {"call": number}}, parent=case_id)
        filler.task(escalation, "usm-escalation", ("usm-escalation", "Activity_HandleEscalation", "Handle escalation",
                                                   "Workflow coordinator"), escalated, handled if done else None)
        filler.event(escalation, 1, escalated, "case_started")


def driver_sql(conn: Connection, statement) -> tuple[str, object]:
    """The SQL and parameters the driver receives for a statement, as the engine runs it."""
    sent = []

    def capture(_conn, _cursor, sql, parameters, _context, _many) -> None:
        sent.append((sql, parameters))

    event.listen(conn, "before_cursor_execute", capture)
    try:
        conn.execute(statement).all()
    finally:
        event.remove(conn, "before_cursor_execute", capture)
    return sent[0]


def plan(conn: Connection, statement) -> str:
    sql, parameters = driver_sql(conn, statement)
    if conn.dialect.name == "postgresql":
        return "\n".join(row[0] for row in conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + sql, parameters))
    rows = list(conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, parameters))
    depth = {0: 0}
    lines = []
    for node, parent, _, detail in rows:
        depth[node] = depth.get(parent, 0) + 1
        lines.append("  " * (depth[node] - 1) + detail)
    return "\n".join(lines)


def timed(work: Callable[[], object], repeat: int) -> float:
    """The median of `repeat` runs, in milliseconds (the first run warms the caches and is not counted)."""
    work()
    runs = []
    for _ in range(repeat):
        began = time.perf_counter()
        work()
        runs.append((time.perf_counter() - began) * 1000)
    return statistics.median(runs)


PERIODS = {"a month": (END - timedelta(days=30), None, None),
           "a month of one workflow and priority (WF5, P2)": (END - timedelta(days=30), "WF5", "P2"),
           "the whole year": (END - timedelta(days=365), None, None)}


def report(engine: Engine, repeat: int) -> None:
    """Each period: the time of every report, then of every query with its plan."""
    dialect = engine.db.reader.dialect.name
    for title, (start, workflow, priority) in PERIODS.items():
        period = engine.insight_period(start, END, workflow, priority)
        print(f"\n## {title}: {period.start:%Y-%m-%d} to {period.end:%Y-%m-%d}\n")
        print("| report | rows | median ms |\n|---|---:|---:|")
        for name, read in (("service levels", engine.service_levels), ("steps", engine.step_times),
                           ("backlog", engine.backlog)):
            print(f"| {name} | {len(read(period))} | {timed(functools.partial(read, period), repeat):.1f} |")
        with engine.db.reader.connect() as conn:
            for label, statement in every_query(period, dialect).items():
                rows = len(conn.execute(statement).all())
                took = timed(lambda statement=statement: conn.execute(statement).all(), repeat)
                print(f"\n### {label}: {rows} rows, median {took:.1f} ms\n\n```\n{plan(conn, statement)}\n```")


def prepare(url: str | None) -> tuple[Engine, str]:
    """A fresh database at the newest schema."""
    if url is None:
        url = f"sqlite:///{tempfile.mkdtemp(prefix='usm-insight-')}/bench.db"
    elif url.startswith("postgresql"):
        reset_postgres(url)
    engine = Engine(EngineSettings(url))
    engine.migrate()
    return engine, url


def settle(engine: Engine) -> None:
    """The database as it stands in service: SQLite's log checkpointed; PostgreSQL vacuumed and analysed."""
    if engine.db.is_sqlite:
        with engine.db.reader.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        return
    with engine.db.writer.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", help="a database URL (default: a new SQLite file); PostgreSQL's schema "
                                           "public is dropped first")
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5, help="runs of each query timed (the median is shown)")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    engine, url = prepare(args.database)
    try:
        began = time.perf_counter()
        counts = fill(engine.db, args.cases, args.seed)
        settle(engine)
        filled = time.perf_counter() - began
        version = engine.db.reader.dialect.server_version_info
        print(f"# Insight queries on {engine.db.reader.dialect.name} {'.'.join(map(str, version or ()))}\n")
        print(f"{counts['cases']} cases, {counts['tasks']} tasks, {counts['events']} events, filled in "
              f"{filled:.0f} s; Python {platform.python_version()} on {platform.machine()}, "
              f"{platform.system()}; medians of {args.repeat} runs after one warm-up.")
        report(engine, args.repeat)
    finally:
        engine.close()
    print(f"\n(database: {url.split('@')[-1]})")


if __name__ == "__main__":
    main()
