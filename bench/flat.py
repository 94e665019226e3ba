"""Flat: does a store full of history slow the engine down? The same HTTP measurements on a fresh database
holding 1 000 finished cases and then 100 000 (1.7 million trail events), first with the history alone, then
with 100 000 open tasks added, and the ratio of each figure (issue 14: throughput and p99 within 15 %; the
worklist by lane and the case search by business key at p99 <= 20 ms). Run by hand from the repository root;
BENCHMARKS.md ("Flat from 1k to 100k cases") and docs/flat-query-plans.md have the results:

    python -m bench.flat --database sqlite                            # 1 000 and 100 000 finished cases
    python -m bench.flat --database postgresql \\
        --postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/usm_flat
    python -m bench.flat --cases 1000,10000 --open-tasks 10000 --seconds 10 --requests 100   # a quick try

(--database postgresql without --postgres-url takes USM_BENCH_POSTGRES_URL.) For each number of finished cases:

1. A fresh database at the newest schema (a SQLite file in a temporary directory; on PostgreSQL the schema
   `public` is DROPPED and re-created first: point it at a database of its own). bench/six.bpmn with a lane
   set added (its six user tasks in four lanes: steps 1-2 "Service desk", 3-4 "Operations", 5 "Change
   advisory", 6 "Quality review"; deployed as `bench_six_lanes`) and bench/chain.bpmn are deployed through
   the engine.
2. Templates: eight cases run through the engine in-process: two to the end (approved and not), six stopped
   at each of the six steps. Their rows (case, tasks, trail) are what the engine wrote.
3. The history, by bulk insert in the order the cases began (bench/insight_plans.py's Filler batches the
   rows): N finished cases cloned from the finished templates, over the past year. A clone gets new ids
   (case, tasks, and the task ids in its trail and its engine state), new times (one per command of the
   template, minutes to hours apart), a business key (about two cases a key), and its trail re-chained:
   every event's hash is recomputed (audit.chain_hash over the public form, written with
   projections.event_row), so the chains verify: a page of 1 000 cases is checked with the engine's own
   verify_trails. A finished case keeps no engine state, as engine/case_state.py keeps them. Then SQLite's
   log is checkpointed (no ANALYZE, as the engine leaves it); PostgreSQL gets VACUUM ANALYZE and a CHECKPOINT.
4. `usm serve` with its defaults (gunicorn: workers = CPUs, at least 2, 8 threads taking turns; its timer
   worker) on that database, with an admin token and a token for one holder of each lane (USM_TOKENS_FILE).
   Throughput: bench/run.py's run_http with the `fetch` protocol (before each complete, GET
   /api/v1/tasks?case=ID), 8 keep-alive clients on new bench_chain cases, for --seconds after a warm-up of
   400 completions: completions/s, complete p50/p99, the fetches' p50/p99 (timed by wrapping
   bench.run.next_task), and the CPU per completion of the server and of PostgreSQL's processes (which
   run_http counts among the "other processes").
5. The open work, added the same way: --open-tasks open cases over the past 30 days, cloned from the open
   templates (each keeps its template's engine state, 5 kB, with the ids replaced), waiting at a step drawn
   so that the lanes hold about 45 / 40 / 14 / 1 % of the open tasks. Then the server again: the throughput
   as in 4, and the reads, one client, one request at a time, --requests each after 20 not counted: the
   worklist of each lane as an admin filters it (GET /api/v1/tasks?lane=NAME), of a lane with no ready task,
   and as each lane's holder sees it (GET /api/v1/tasks with the holder's token: the tasks of its lanes), the
   case search by business key (GET /api/v1/cases?business_key=KEY, keys drawn from those stored), and the
   fetch protocol's read (GET /api/v1/tasks?case=ID).
6. The plans of the SQL those reads run, captured in-process with a SQLAlchemy listener while the engine's
   own list_tasks / list_cases run them: EXPLAIN QUERY PLAN on SQLite, EXPLAIN (ANALYZE, BUFFERS) on
   PostgreSQL, and each statement's median time in-process.

The report (markdown) goes to stdout and to --out: each size's figures, the comparison of the first size with
the last (ratio = last / first), then the plans.
"""
from __future__ import annotations

import argparse
import os
import random
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:  # `python bench/flat.py` from anywhere
    sys.path.insert(0, str(ROOT))

from sqlalchemy import event, select  # noqa: E402

import bench.run as bench_run  # noqa: E402
from bench.insight_plans import Filler, settle  # noqa: E402
from bench.run import (ACTOR, Client, Result, Server, _allow_all, _cpu_seconds, free_port,  # noqa: E402
                       machine_facts, ms, reset_postgres, run_http, running)
from usm_engine.api.auth import token_entry  # noqa: E402
from usm_engine.engine.audit import chain_hash, event_from_row  # noqa: E402
from usm_engine.engine.clock import rfc3339  # noqa: E402
from usm_engine.engine.projections import event_row, lane_role  # noqa: E402
from usm_engine.engine import store  # noqa: E402
from usm_engine.engine.schema import cases, events, tasks  # noqa: E402
from usm_engine.engine.service import Engine  # noqa: E402
from usm_engine.engine.settings import EngineSettings  # noqa: E402

SIX = HERE / "six.bpmn"
CHAIN = HERE / "chain.bpmn"
PROCESS = "bench_six_lanes"
# Each step's lane, and the share of the open cases waiting at each step (so of the lanes' open tasks).
LANES = {"Task_1": "Service desk", "Task_2": "Service desk", "Task_3": "Operations", "Task_4": "Operations",
         "Task_5": "Change advisory", "Task_6": "Quality review"}
OPEN_AT_STEP = (25, 20, 20, 20, 14, 1)
EMPTY_LANE = "Problem management"  # a lane no task is in: its worklist is empty
CLIENTS = 8
WARM_COMPLETIONS = 400
TEMPLATE_KEY = "BK-TEMPLATE"
REQUEST = {"request": {"requester": "user@example.org", "summary": "a request"}}


# --- the process and the templates ---------------------------------------------------------------

def laned_six() -> bytes:
    """bench/six.bpmn as `bench_six_lanes`, its six user tasks in the lanes of LANES."""
    text = SIX.read_text()
    by_lane: dict[str, list[str]] = {}
    for element, lane in LANES.items():
        by_lane.setdefault(lane, []).append(element)
    lanes = "".join(f'<bpmn:lane id="Lane_{n}" name="{name}">'
                    + "".join(f"<bpmn:flowNodeRef>{element}</bpmn:flowNodeRef>" for element in elements)
                    + "</bpmn:lane>" for n, (name, elements) in enumerate(by_lane.items(), start=1))
    text = (text.replace('id="bench_six" name="Bench six steps"', f'id="{PROCESS}" name="Bench six steps in lanes"')
            .replace('bpmnElement="bench_six"', f'bpmnElement="{PROCESS}"')
            .replace("Definitions_bench_six", "Definitions_bench_six_lanes"))
    text, found = re.subn(r'(<bpmn:process id="bench_six_lanes"[^>]*>\s*<bpmn:documentation>.*?</bpmn:documentation>)',
                          lambda m: m.group(1) + f'<bpmn:laneSet id="LaneSet_six">{lanes}</bpmn:laneSet>', text,
                          flags=re.S)
    if found != 1:
        raise RuntimeError("bench/six.bpmn changed: no place found for the lane set")
    return text.encode()


@dataclass
class Template:
    """One case as the engine wrote it: its row, its task rows, its trail (each event as its hash covers it)."""

    case: dict
    tasks: list[dict]
    events: list[dict]
    times: list[datetime]  # every moment in its rows, in order: one per command
    ready_lane: str | None = None

    @property
    def commands(self) -> int:
        return len(self.times)


def step_data(step: int, approved: bool) -> dict:
    return {"note": f"step {step} done"} if step < 6 else {"approved": approved}


def make_templates(engine: Engine) -> tuple[list[Template], list[Template]]:
    """Two finished cases (approved and not) and six open ones, one waiting at each step."""
    finished, open_ = [], []
    for approved in (True, False):
        case, _ = engine.start_case(PROCESS, ACTOR, business_key=TEMPLATE_KEY, data=REQUEST)
        step = 0
        while case["tasks"]:
            step += 1
            case = engine.complete_task(case["tasks"][0]["id"], step_data(step, approved), f"person{step}",
                                        _allow_all)
        finished.append(read_template(engine, case["id"]))
    for done in range(6):
        case, _ = engine.start_case(PROCESS, ACTOR, business_key=TEMPLATE_KEY, data=REQUEST)
        for step in range(1, done + 1):
            case = engine.complete_task(case["tasks"][0]["id"], step_data(step, True), f"person{step}", _allow_all)
        template = read_template(engine, case["id"])
        template.ready_lane = case["tasks"][0]["lane"]
        open_.append(template)
    return finished, open_


def read_template(engine: Engine, case_id: str) -> Template:
    """The rows of a case; its trail in its public form (store.trail, audit.event_from_row: what the hashes
    cover, whatever the layout of the events table), to be written back with projections.event_row."""
    with engine.db.reader.connect() as conn:
        case = dict(conn.execute(select(cases).where(cases.c.id == case_id)).one()._mapping)
        task_rows = [dict(row._mapping) for row in conn.execute(select(tasks).where(tasks.c.case_id == case_id)
                                                                .order_by(tasks.c.created_at))]
        trail = [event_from_row(row) for row in store.trail(conn, case_id, {})]
    moments = {case["created_at"], case["updated_at"], *(stored_time(event["at"]) for event in trail)}
    moments.update(t for row in task_rows for t in (row["created_at"], row["ended_at"]) if t is not None)
    return Template(case, task_rows, trail, sorted(moments))


def stored_time(text: str) -> datetime:
    """An event's time as the database keeps it (naive UTC)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).replace(tzinfo=None)


# --- the fill ----------------------------------------------------------------------------------------

class Cloner:
    """Writes clones of templates through insight_plans' Filler (batched inserts, cases before tasks before
    events); each clone's trail is re-chained, so that it verifies."""

    def __init__(self, engine: Engine, seed: int):
        self.filler = Filler(engine.db, seed)
        self.random = self.filler.random

    def clone(self, template: Template, created: datetime, step_seconds: tuple[float, float],
              business_key: str) -> None:
        pick = self.random
        case_id = self.filler.new_id()
        ids = {template.case["id"]: case_id}
        ids.update((row["id"], self.filler.new_id()) for row in template.tasks)
        times, moment = {}, created
        for n, old in enumerate(template.times):
            if n:
                moment += timedelta(seconds=pick.uniform(*step_seconds))
            times[old] = moment
        previous, seq = "0" * 64, 0
        rows = []
        for body in template.events:
            at = times[stored_time(body["at"])]
            details = {key: (business_key if key == "business_key" else ids.get(value, value)
                             if isinstance(value, str) else value) for key, value in body["details"].items()}
            event = {**body, "case_id": case_id, "at": rfc3339(at), "details": details}
            event.pop("hash")
            event.pop("prev_hash")
            digest = chain_hash(event, previous)
            rows.append(event_row(case_id, {**event, "prev_hash": previous, "hash": digest}, at))
            previous, seq = digest, event["seq"]
        state = template.case["state"]
        for old, new in ids.items():
            state = state.replace(old, new)
        self.filler.add(cases, {**template.case, "id": case_id, "business_key": business_key, "state": state,
                                "created_at": times[template.case["created_at"]],
                                "updated_at": times[template.case["updated_at"]],
                                "event_seq": seq, "event_hash": previous})
        for row in template.tasks:
            self.filler.add(tasks, {**row, "id": ids[row["id"]], "case_id": case_id,
                                    "created_at": times[row["created_at"]],
                                    "ended_at": times[row["ended_at"]] if row["ended_at"] else None})
        for row in rows:
            self.filler.add(events, row)


def business_key(pick: random.Random, keys: int) -> str:
    return f"BK-{pick.randrange(keys):07d}"


class Fill:
    """The two parts of the fill, on one database: the history, then the open work."""

    def __init__(self, engine: Engine, finished: int, open_tasks: int, seed: int):
        self.done, self.waiting = make_templates(engine)
        self.cloner = Cloner(engine, seed)
        self.finished, self.open_tasks = finished, open_tasks
        self.now = datetime.now(timezone.utc).replace(tzinfo=None)
        self.keys = max(1, (finished + open_tasks) // 2)  # about two cases a business key

    def history(self) -> dict:
        """The finished cases, over the past year but its last three days, in the order they began."""
        pick, year = self.cloner.random, 365 * 86400
        for offset in sorted(pick.uniform(0, year - 3 * 86400) for _ in range(self.finished)):
            # six steps of 5 minutes to 6 hours each: done within two days
            self.cloner.clone(self.done[pick.random() < 0.5], self.now - timedelta(seconds=year - offset),
                              (300, 6 * 3600), business_key(pick, self.keys))
        self.cloner.filler.flush()
        return dict(self.cloner.filler.counts)

    def open_work(self) -> dict:
        """The open cases, over the past 30 days but the last, in the order they began; each waits at a step
        drawn by OPEN_AT_STEP."""
        pick, month = self.cloner.random, 30 * 86400
        for offset in sorted(pick.uniform(0, month - 86400) for _ in range(self.open_tasks)):
            template = pick.choices(self.waiting, OPEN_AT_STEP)[0]
            self.cloner.clone(template, self.now - timedelta(seconds=month - offset), (60, 2 * 3600),
                              business_key(pick, self.keys))
        self.cloner.filler.flush()
        return dict(self.cloner.filler.counts)

    def lanes(self) -> list[str]:
        """The lanes of the open tasks, the largest first."""
        share: dict[str, float] = {}
        for template, weight in zip(self.waiting, OPEN_AT_STEP, strict=True):
            share[template.ready_lane or ""] = share.get(template.ready_lane or "", 0) + weight
        return sorted(share, key=lambda lane: -share[lane])


def database_bytes(engine: Engine) -> int:
    with engine.db.reader.connect() as conn:
        if engine.db.is_sqlite:
            return int(conn.exec_driver_sql("SELECT page_count * page_size FROM pragma_page_count, "
                                            "pragma_page_size").scalar() or 0)
        return int(conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar() or 0)


def sample_keys(engine: Engine, count: int, seed: int) -> list[str]:
    """Business keys that are stored (the search's input), drawn at random."""
    with engine.db.reader.connect() as conn:
        found = sorted({row[0] for row in conn.execute(select(cases.c.business_key).where(
            cases.c.business_key.is_not(None), cases.c.business_key != TEMPLATE_KEY))})
    return random.Random(seed).sample(found, min(count, len(found)))


# --- the server --------------------------------------------------------------------------------------

class FlatServer(Server):
    """bench/run.py's Server, but on a database filled beforehand (not emptied) and with a tokens file;
    `usm serve` with its defaults but for the empty --definitions."""

    def __init__(self, database_url: str, tokens: dict[str, list[str]]):
        # Server.__init__ would empty a PostgreSQL database and start on a SQLite file of its own.
        self.workers, self.threads = max(2, os.cpu_count() or 1), 8  # usm serve's defaults (api/cli.py)
        self.dir = Path(tempfile.mkdtemp(prefix="usm-flat-http-"))
        (self.dir / "definitions").mkdir()
        self.port = free_port()
        self.token = secrets.token_urlsafe(24)
        self.database = "postgresql" if database_url.startswith("postgresql") else "sqlite"
        self.database_url = database_url
        self.lane_tokens = {role: secrets.token_urlsafe(24) for role in tokens}
        (self.dir / "tokens.toml").write_text("".join(token_entry(f"holder-{role}", roles, self.lane_tokens[role])
                                                      for role, roles in tokens.items()))
        self.log = open(self.dir / "server.log", "wb")
        usm = Path(sys.executable).with_name("usm")
        command = [str(usm)] if usm.exists() else [sys.executable, "-m", "usm_engine.api.cli"]
        command += ["serve", "--host", "127.0.0.1", "--port", str(self.port),
                    "--definitions", str(self.dir / "definitions")]
        env = {key: value for key, value in os.environ.items() if not key.startswith("USM_")}
        env.update({"USM_DATABASE_URL": database_url, "USM_ADMIN_TOKEN": self.token,
                    "USM_TOKENS_FILE": str(self.dir / "tokens.toml"),
                    "PYTHONPATH": str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")})
        self.process = subprocess.Popen(command, cwd=self.dir, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)


def measure_throughput(server: FlatServer, seconds: float, repeat: int = 1) -> tuple[Result, Result]:
    """Warm-up, then the fetch protocol with CLIENTS clients for `seconds`: the completes and the fetches (the
    fastest of `repeat` tries: the machine is shared)."""
    warm, _ = run_http(server, CLIENTS, WARM_COMPLETIONS, 60, protocol="fetch")
    cap = int(max(warm.per_second, 50) * seconds * 2) + WARM_COMPLETIONS  # cases to seed: more than can be done
    original = bench_run.next_task
    tries = []
    for _ in range(repeat):
        fetches: list[float] = []

        def timed_next_task(client: Client, case_id: str, fetches: list[float] = fetches) -> str | None:
            began = time.perf_counter()
            try:
                return original(client, case_id)
            finally:
                fetches.append(time.perf_counter() - began)

        bench_run.next_task = timed_next_task  # run_http's drive() looks it up in bench.run at each call
        database_cpu = postgres_cpu()
        try:
            result, _ = run_http(server, CLIENTS, cap, seconds, protocol="fetch")
        finally:
            bench_run.next_task = original
        # PostgreSQL's own processes count among "other processes" in run_http's figures: their share apart
        result.notes["database_cpu_ms"] = postgres_cpu_since(database_cpu) * 1000 / max(1, result.count)
        tries.append((result, Result("fetch: GET /api/v1/tasks?case=ID", fetches, result.wall)))
    best = max(tries, key=lambda pair: pair[0].per_second)
    best[0].notes["tries"] = [round(result.per_second) for result, _ in tries]
    return best


def postgres_cpu() -> dict[int, float]:
    """CPU seconds used so far by each process of a PostgreSQL server on this machine (none if none is seen)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    found[int(entry.name)] = _cpu_seconds(int(entry.name))
            except OSError:
                continue
    return found


def postgres_cpu_since(before: dict[int, float]) -> float:
    """PostgreSQL's CPU seconds since `before`, of the processes alive now (one that ended meanwhile is missed)."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in postgres_cpu().items())


@dataclass
class Probe:
    """One kind of read: the requests it cycles through (path, token), and what the engine is asked in-process
    to capture its SQL."""

    name: str
    requests: list[tuple[str, str]]
    engine_call: Any
    result: Result | None = None
    items: int = 0  # on the last page read
    plans: list[tuple[str, str, float]] = field(default_factory=list)  # (sql, plan, median ms in-process)


def probes(server: FlatServer, lanes: list[str], keys: list[str], case_id: str) -> list[Probe]:
    found = []
    admin = server.token
    for lane in [*lanes, EMPTY_LANE]:
        label = f"worklist ?lane={lane}" + (" (no ready task in it)" if lane == EMPTY_LANE else "")
        filters = {"state": "ready", "case": None, "lane": lane, "definition": None, "topic": None}
        found.append(Probe(label, [(f"/api/v1/tasks?lane={lane.replace(' ', '%20')}", admin)],
                           lambda engine, filters=filters: engine.list_tasks(filters, None, None, 50)))
    for lane in lanes:
        role = lane_role(lane) or ""
        filters = {"state": "ready", "case": None, "lane": None, "definition": None, "topic": None}
        found.append(Probe(f"worklist of the {role} lane's holder (GET /api/v1/tasks)",
                           [("/api/v1/tasks", server.lane_tokens[role])],
                           lambda engine, filters=filters, role=role: engine.list_tasks(filters, {role}, None, 50)))
    found.append(Probe("case search ?business_key=", [(f"/api/v1/cases?business_key={key}", admin) for key in keys],
                       lambda engine, key=keys[0]: engine.list_cases({"business_key": key}, None, 50)))
    filters = {"state": "ready", "case": case_id, "lane": None, "definition": None, "topic": None}
    found.append(Probe("fetch: tasks of one case ?case=", [(f"/api/v1/tasks?case={case_id}", admin)],
                       lambda engine, filters=filters: engine.list_tasks(filters, None, None, 50)))
    # its ready tasks are what every command on a case reads too (case_work.py), with the same statement
    found.append(Probe("a case: GET /api/v1/cases/ID", [(f"/api/v1/cases/{case_id}", admin)],
                       lambda engine: engine.get_case(case_id)))
    return found


def measure_reads(server: FlatServer, found: list[Probe], requests: int) -> None:
    clients: dict[str, Client] = {}
    try:
        for probe in found:
            samples = []
            for n in range(requests + 20):
                path, token = probe.requests[n % len(probe.requests)]
                client = clients.setdefault(token, Client(server.port, token))
                began = time.perf_counter()
                status, body = client.call("GET", path)
                took = time.perf_counter() - began
                if status != 200:
                    raise RuntimeError(f"GET {path}: {status} {body}")
                if n >= 20:
                    samples.append(took)
                    probe.items = len(body["items"] if "items" in body else body.get("tasks", []))
            probe.result = Result(probe.name, samples, sum(samples))
            print(f"  {probe.name}: p50 {ms(probe.result.pct(50))} ms, p99 {ms(probe.result.pct(99))} ms",
                  file=sys.stderr, flush=True)
    finally:
        for client in clients.values():
            client.close()


def capture_plans(engine: Engine, found: list[Probe], repeat: int = 20) -> None:
    """Run each probe's engine read with a listener that keeps the SQL sent, then explain and time each."""
    for probe in found:
        sent: list[tuple[str, Any]] = []

        def capture(_conn, _cursor, sql, parameters, _context, _many, sent=sent) -> None:
            if sql.lstrip().upper().startswith("SELECT"):
                sent.append((sql, parameters))

        probe.engine_call(engine)  # the spec cache filled, as a serving process has it
        event.listen(engine.db.reader, "before_cursor_execute", capture)
        try:
            probe.engine_call(engine)
        finally:
            event.remove(engine.db.reader, "before_cursor_execute", capture)
        with engine.db.reader.connect() as conn:
            for sql, parameters in sent:
                runs = []
                for _ in range(repeat + 1):
                    began = time.perf_counter()
                    conn.exec_driver_sql(sql, parameters).all()
                    runs.append((time.perf_counter() - began) * 1000)
                probe.plans.append((with_values(sql, parameters), explain(conn, sql, parameters),
                                    statistics.median(runs[1:])))


def with_values(sql: str, parameters: Any) -> str:
    """The statement with its values written in, for the report (not for running); a long IN list cut short."""
    text = " ".join(sql.split())
    if isinstance(parameters, dict):
        for name, value in sorted(parameters.items(), key=lambda item: -len(item[0])):
            text = text.replace(f"%({name})s", repr(value))
    else:
        for value in parameters or ():
            text = text.replace("?", repr(value), 1)
    return re.sub(r"IN \(('[^']*'), ('[^']*'), (?:'[^']*', )+('[^']*')\)",
                  lambda m: f"IN ({m.group(1)}, {m.group(2)}, … {m.group(0).count(',') + 1} ids)", text)


def explain(conn, sql: str, parameters: Any) -> str:
    if conn.dialect.name == "postgresql":
        return "\n".join(row[0] for row in conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + sql, parameters))
    depth = {0: 0}
    lines = []
    for node, parent, _, detail in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, parameters):
        depth[node] = depth.get(parent, 0) + 1
        lines.append("  " * (depth[node] - 1) + detail)
    return "\n".join(lines)


# --- one size ------------------------------------------------------------------------------------------

@dataclass
class Stage:
    """The store as measured: what it held, how long filling it took, and what was measured on it."""

    counts: dict
    fill_seconds: float
    verified: dict
    size_bytes: int
    throughput: Result
    fetches: Result
    reads: list[Probe] = field(default_factory=list)


@dataclass
class Run:
    finished: int
    history: Stage               # the finished cases only
    with_open: Stage | None      # the same with the open tasks added


def settled(engine: Engine) -> None:
    """insight_plans.settle (SQLite's log checkpointed; PostgreSQL's VACUUM ANALYZE), and on PostgreSQL a
    CHECKPOINT: the fill leaves a gigabyte of dirty buffers that the checkpointer would otherwise write out
    during the measurements that follow (the larger fill more than the smaller)."""
    settle(engine)
    if not engine.db.is_sqlite:
        with engine.db.writer.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("CHECKPOINT")


def filled(engine: Engine, label: str, part) -> tuple[dict, float, dict, int]:
    print(f"{label}: filling ...", file=sys.stderr, flush=True)
    began = time.perf_counter()
    counts = part()
    settled(engine)
    seconds = time.perf_counter() - began
    verified = engine.verify_trails(limit=1000)
    print(f"  {counts['cases']} cases, {counts['tasks']} tasks, {counts['events']} events ({seconds:.0f} s); "
          f"trail check of a page: {verified}", file=sys.stderr, flush=True)
    return counts, seconds, verified, database_bytes(engine)


def serve_and_measure(url: str, holders: dict[str, list[str]], seconds: float, repeat: int, reads=None,
                      requests: int = 0) -> tuple[Result, Result, list[Probe]]:
    """`usm serve` on the database: the throughput, then, if `reads` makes probes for the server, the reads."""
    with running(FlatServer(url, holders), timeout=120) as server:
        throughput, fetches = measure_throughput(server, seconds, repeat)
        bench_run._progress(throughput)
        if throughput.notes["first_errors"] or not throughput.count:
            print(f"  errors: {throughput.notes['first_errors']}\n{server.log_tail()}", file=sys.stderr)
        found = reads(server) if reads else []
        if found:
            measure_reads(server, found, requests)
    return throughput, fetches, found


def run_size(database: str, postgres_url: str | None, finished: int, args) -> Run:
    folder = None
    if database == "postgresql":
        assert postgres_url
        reset_postgres(postgres_url)
        url = postgres_url
    else:
        folder = Path(tempfile.mkdtemp(prefix="usm-flat-"))
        url = f"sqlite:///{folder}/flat.db"
    try:
        engine = Engine(EngineSettings(url))
        try:
            engine.migrate()
            engine.deploy([("six_lanes.bpmn", laned_six()), (CHAIN.name, CHAIN.read_bytes())], ACTOR)
            work = Fill(engine, finished, args.open_tasks, args.seed)
            history = filled(engine, f"{database}, {finished} finished cases", work.history)
        finally:
            engine.close()
        lanes = work.lanes()
        holders = {lane_role(lane) or "": [lane_role(lane) or ""] for lane in lanes}
        throughput, fetches, _ = serve_and_measure(url, holders, args.seconds, args.repeat)
        stage = Stage(*history, throughput, fetches)
        if not args.open_tasks:
            return Run(finished, stage, None)
        engine = Engine(EngineSettings(url))
        try:
            opened = filled(engine, f"{database}, {finished} finished cases + {args.open_tasks} open tasks",
                            work.open_work)
            keys = sample_keys(engine, max(1, args.requests), args.seed)
            with engine.db.reader.connect() as conn:
                open_case = conn.execute(select(tasks.c.case_id).where(tasks.c.state == "ready",
                                                                       tasks.c.definition_key == PROCESS)
                                         .limit(1)).scalar_one()
        finally:
            engine.close()
        throughput, fetches, found = serve_and_measure(url, holders, args.seconds, args.repeat,
                                                       lambda server: probes(server, lanes, keys, open_case),
                                                       args.requests)
        engine = Engine(EngineSettings(url))
        try:
            capture_plans(engine, found)
        finally:
            engine.close()
        return Run(finished, stage, Stage(*opened, throughput, fetches, found))
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


# --- report --------------------------------------------------------------------------------------------

def throughput_figures(stage: Stage, label: str) -> dict[str, tuple[float, str]]:
    """name -> (value, kind): 'rate' (should not fall) or 'ms' (should not rise)."""
    t = stage.throughput
    return {f"{label}: completions/s": (t.per_second, "rate"),
            f"{label}: complete p50 ms": (t.pct(50) * 1000, "ms"),
            f"{label}: complete p99 ms": (t.pct(99) * 1000, "ms"),
            f"{label}: fetch p50 ms": (stage.fetches.pct(50) * 1000, "ms"),
            f"{label}: fetch p99 ms": (stage.fetches.pct(99) * 1000, "ms"),
            f"{label}: server CPU ms / completion": (t.notes["server_cpu_ms"], "ms"),
            f"{label}: PostgreSQL CPU ms / completion": (t.notes.get("database_cpu_ms", 0.0), "ms")}


def figures(run: Run) -> dict[str, tuple[float, str]]:
    found = throughput_figures(run.history, "history only")
    if run.with_open:
        found.update(throughput_figures(run.with_open, "with the open tasks"))
        for probe in run.with_open.reads:
            assert probe.result is not None
            found[f"{probe.name} p50 ms"] = (probe.result.pct(50) * 1000, "ms")
            found[f"{probe.name} p99 ms"] = (probe.result.pct(99) * 1000, "ms")
    return found


def stage_lines(stage: Stage, label: str) -> list[str]:
    t, c = stage.throughput, stage.counts
    return [f"- {label}: {c['cases']:,} cases, {c['tasks']:,} tasks, {c['events']:,} trail events "
            f"({stage.size_bytes / 1e6:,.0f} MB), filled and settled in {stage.fill_seconds:.0f} s; trail check of "
            f"a page of {stage.verified.get('cases')} cases: {'ok' if stage.verified.get('ok') else stage.verified}",
            f"  - throughput: {t.count} completions in {t.wall:.1f} s = **{t.per_second:.0f}/s**, complete p50 "
            f"{ms(t.pct(50))} ms, p99 {ms(t.pct(99))} ms; fetch p50 {ms(stage.fetches.pct(50))} ms, p99 "
            f"{ms(stage.fetches.pct(99))} ms; server CPU {t.notes['server_cpu_ms']:.2f} ms / completion, "
            f"PostgreSQL CPU {t.notes.get('database_cpu_ms', 0):.2f} ms / completion, tries {t.notes.get('tries')} /s, "
            f"other processes {t.notes['others_cores']:.2f} cores, errors {t.errors}"]


def size_section(run: Run) -> list[str]:
    out = [f"## {run.finished:,} finished cases", ""] + stage_lines(run.history, "history only")
    if run.with_open:
        out += stage_lines(run.with_open, "with the open tasks")
        out += ["", "| read (one client, one at a time) | requests | p50 ms | p99 ms | max ms | items on the page |",
                "|---|---:|---:|---:|---:|---:|"]
        for probe in run.with_open.reads:
            r = probe.result
            assert r is not None
            out.append(f"| {probe.name} | {r.count} | {ms(r.pct(50))} | {ms(r.pct(99))} | {ms(max(r.samples))} | "
                       f"{probe.items} |")
    return out + [""]


def comparison(first: Run, last: Run) -> list[str]:
    a, b = figures(first), figures(last)
    out = [f"## {first.finished:,} → {last.finished:,} finished cases", "",
           f"| figure | {first.finished:,} | {last.finished:,} | ratio | within 15 % |", "|---|---:|---:|---:|---|"]
    for name, (value, kind) in a.items():
        if name not in b:
            continue
        other = b[name][0]
        if not value and not other:  # (PostgreSQL's CPU on SQLite)
            continue
        ratio = other / value if value else float("nan")
        ok = ratio >= 0.85 if kind == "rate" else ratio <= 1.15
        slow = " (over 20 ms)" if name.endswith("p99 ms") and not name.startswith(("history", "with")) \
            and max(value, other) > 20 else ""
        out.append(f"| {name} | {value:.2f} | {other:.2f} | {ratio:.2f} | {'yes' if ok else '**no**'}{slow} |")
    return out + ["", "Ratio = the larger store's figure ÷ the smaller's: a rate within 15 % is ≥ 0.85, a time "
                  "≤ 1.15. A read over 20 ms at p99 fails the issue's other bound, whatever its ratio.", ""]


def plans_section(run: Run, dialect: str) -> list[str]:
    if not run.with_open:
        return []
    kind = "EXPLAIN (ANALYZE, BUFFERS)" if dialect == "postgresql" else "EXPLAIN QUERY PLAN"
    out = [f"## Plans at {run.finished:,} finished cases and the open tasks ({kind})", ""]
    seen: set[tuple[str, str]] = set()
    for probe in run.with_open.reads:
        out += [f"### {probe.name}", ""]
        for sql, plan, took in probe.plans:
            shape = re.sub(r"'[^']*'|\d+ ids", "?", sql)
            if (shape, plan) in seen:  # (PostgreSQL's plans carry times and row counts: never the same)
                out += [f"median {took:.2f} ms in-process; the plan above for `{sql[:100]}…`", ""]
                continue
            seen.add((shape, plan))
            out += [f"median {took:.2f} ms in-process", "", "```sql", sql, "```", "", "```", plan, "```", ""]
    return out


def report(args, runs: list[Run], command: str) -> str:
    out = [f"# Flat: {args.database}, {' vs '.join(f'{r.finished:,}' for r in runs)} finished cases", "",
           f"command: `{command}`", ""]
    out += [f"- {fact}" for fact in machine_facts()]
    out += [f"- each size: the history alone, then with {args.open_tasks:,} open tasks added; usm serve's "
            f"defaults; {CLIENTS} clients for {args.seconds:.0f} s; {args.requests} requests per read", ""]
    for run in runs:
        out += size_section(run)
    if len(runs) > 1:
        out += comparison(runs[0], runs[-1])
    dialect = "postgresql" if args.database == "postgresql" else "sqlite"
    for run in runs:
        out += plans_section(run, dialect)
    return "\n".join(out) + "\n"


def _sizes(text: str) -> list[int]:
    values = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    if not values or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError("give one or more whole numbers, comma-separated")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.flat", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--postgres-url", help="PostgreSQL database of its own (its schema public is DROPPED); "
                                               "default: USM_BENCH_POSTGRES_URL")
    parser.add_argument("--cases", type=_sizes, default=[1000, 100_000],
                        help="finished cases of each run, comma-separated (default 1000,100000)")
    parser.add_argument("--open-tasks", type=int, default=100_000, help="open cases, one ready task each, in every run")
    parser.add_argument("--seconds", type=float, default=25.0, help="length of the throughput measurement")
    parser.add_argument("--repeat", type=int, default=1, help="throughput: keep the fastest of this many tries")
    parser.add_argument("--requests", type=int, default=500, help="requests per read measured")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--out", type=Path, help="report file (default bench/results/flat-DATABASE.md)")
    args = parser.parse_args(argv)
    postgres_url = None
    if args.database == "postgresql":
        postgres_url = args.postgres_url or os.environ.get("USM_BENCH_POSTGRES_URL")
        if not postgres_url:
            parser.error("--database postgresql needs --postgres-url or USM_BENCH_POSTGRES_URL (a database of its own)")
    command = "python -m bench.flat " + " ".join(argv if argv is not None else sys.argv[1:])
    runs = [run_size(args.database, postgres_url, finished, args) for finished in args.cases]
    text = report(args, runs, command)
    out = args.out or HERE / "results" / f"flat-{args.database}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    print(f"written to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

