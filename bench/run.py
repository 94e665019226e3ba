"""Cost of one task completion: SpiffWorkflow alone, the engine on SQLite, and the full HTTP path.

Run by hand from the repository root (not part of the tests); BENCHMARKS.md has the results:

    python -m bench.run       # 3000 completions in-process, 5000 over HTTP (usm serve's 2 x 8, 8 clients)
    python -m bench.run --workers 2,3,4 --threads 1,8 --http-clients 8,16 --repeat 2 --profile --py-spy
    USM_BENCH_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/usm_bench \
        python -m bench.run --paths http --http-databases sqlite,postgresql --protocols complete,fetch

Every path drives the same process, bench/chain.bpmn (10 user tasks in a row, no forms, one lane, a
script task and a gateway half way), so one case gives 10 completions. The paths (--paths):

  library   SpiffWorkflow alone, no database, no HTTP: json.loads the stored instance, restore it
            around the cached spec (workflow_from_dict), attach the sandboxed script engine, complete
            the ready user task, do_engine_steps, workflow_to_dict + json.dumps.
  engine    Engine.complete_task in-process on a SQLite file (reads, form check, restore, run,
            advance, audit, save in one transaction); start_case is measured separately.
  wsgi      the Flask app in-process through its test client (routing, auth, body checks, JSON;
            no gunicorn, no socket).
  postgres  the engine on PostgreSQL, only when USM_BENCH_POSTGRES_URL is set. Its schema `public` is
            DROPPED and re-created first: point it at a database of its own.
  http      `usm serve` (gunicorn) started as a subprocess on a free 127.0.0.1 port, its own temp
            directory and SQLite file, no definitions; the chain is deployed over HTTP, cases are
            started over HTTP, then K client threads (http.client, keep-alive) each complete the tasks
            of their own cases, taking the next task id from the complete response (--protocols
            complete) or asking GET /api/v1/tasks?case=ID for it before each complete (fetch). With
            --http-databases postgresql the server runs on USM_BENCH_POSTGRES_URL instead. Bounded by
            --http-completions or --http-seconds, whichever comes first. Comma lists of --workers,
            --threads and --http-clients try every combination.

The ratio column is library-only throughput divided by the path's throughput: how many times the
library's own cost one completion costs on that path (for the HTTP rows, with K clients in parallel
on the same machine, so it reflects capacity, not single-request latency).

--profile adds a cProfile of the in-process engine loop, and --py-spy samples the in-process loop and
the gunicorn workers (wall and on-CPU).
"""
from __future__ import annotations

import argparse
import contextlib
import cProfile
import hashlib
import http.client
import json
import math
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:  # `python bench/run.py` from anywhere
    sys.path.insert(0, str(ROOT))

from bench.profiles import cprofile_tables, stack_tables  # noqa: E402
from usm_engine.engine.blueprints import SpecCache, StoredDefinition  # noqa: E402
from usm_engine.engine.deployment import compile_bundle  # noqa: E402
from usm_engine.engine.runner import new_workflow, ready_manual_tasks  # noqa: E402
from usm_engine.engine.sandbox import make_script_engine  # noqa: E402
from usm_engine.engine.service import Engine  # noqa: E402
from usm_engine.engine.settings import EngineSettings  # noqa: E402
from usm_engine.engine.spiff_setup import workflow_from_dict, workflow_to_dict  # noqa: E402

BPMN = HERE / "chain.bpmn"
PROCESS_KEY = "bench_chain"
TASKS_PER_CASE = 10
ACTOR = "bench"


def task_data(n: int) -> dict:
    """What each completion submits (the same on every path)."""
    return {"note": "done", "n": n}


def _allow_all(_lane) -> bool:
    return True


# --- statistics ------------------------------------------------------------------------------------

@dataclass
class Result:
    path: str
    samples: list[float]              # seconds per operation (latency as the caller saw it)
    wall: float                       # seconds from first start to last finish
    errors: int = 0
    notes: dict = field(default_factory=dict)

    @property
    def count(self) -> int:
        return len(self.samples)

    @property
    def per_second(self) -> float:
        return self.count / self.wall if self.wall > 0 else float("nan")

    def pct(self, q: float) -> float:
        ordered = sorted(self.samples)
        if not ordered:
            return float("nan")
        index = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
        return ordered[index]

    @property
    def mean(self) -> float:
        return sum(self.samples) / len(self.samples) if self.samples else float("nan")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


# --- the benchmark process -------------------------------------------------------------------------

def bench_files() -> list[tuple[str, bytes]]:
    return [(BPMN.name, BPMN.read_bytes())]


def cached_blueprint():
    """The blueprint the engine would build: compiled at 'deploy', spec rebuilt from its JSON once."""
    (compiled,) = compile_bundle(bench_files(), set())
    stored = StoredDefinition(compiled.key, 1, compiled.spec, compiled.embedded, compiled.meta)
    return SpecCache(lambda key, version: stored).blueprint(compiled.key, 1, {})


# --- a. library only -------------------------------------------------------------------------------

def run_library(completions: int) -> Result:
    blueprint = cached_blueprint()
    script_engine = make_script_engine()

    def new_case() -> str:
        workflow = new_workflow(blueprint, {}, script_engine)
        workflow.do_engine_steps()
        return json.dumps(workflow_to_dict(workflow))

    def complete(state: str, n: int, phases: list[float] | None) -> tuple[str, bool]:
        t0 = time.perf_counter()
        workflow = workflow_from_dict(json.loads(state), blueprint.spec, blueprint.subprocess_specs)
        workflow.script_engine = script_engine
        t1 = time.perf_counter()
        task = ready_manual_tasks(workflow)[0]
        task.data.update(task_data(n))
        task.run()
        t2 = time.perf_counter()
        workflow.do_engine_steps()
        t3 = time.perf_counter()
        state = json.dumps(workflow_to_dict(workflow))
        t4 = time.perf_counter()
        if phases is not None:
            phases[0] += t1 - t0
            phases[1] += t2 - t1
            phases[2] += t3 - t2
            phases[3] += t4 - t3
        return state, not workflow.is_completed()

    # warm-up: one whole case, not counted
    state, running = new_case(), True
    while running:
        state, running = complete(state, 0, None)

    samples, phases, n, cpu = [], [0.0, 0.0, 0.0, 0.0], 0, 0.0
    start_samples = []
    watch = LoadWatch()
    begin = time.perf_counter()
    while n < completions:
        t = time.perf_counter()
        state = new_case()
        start_samples.append(time.perf_counter() - t)
        running = True
        while running and n < completions:
            t, c = time.perf_counter(), time.process_time()
            state, running = complete(state, n, phases)
            samples.append(time.perf_counter() - t)
            cpu += time.process_time() - c
            n += 1
    wall = sum(samples)
    result = Result("library only (SpiffWorkflow, no DB, no HTTP)", samples, wall)
    result.notes["others_cores"] = watch.others_cores()
    result.notes["cpu_ms"] = cpu * 1000 / len(samples)
    result.notes["phases"] = {name: total / len(samples) for name, total in
                              zip(("restore (json.loads + workflow_from_dict)", "complete (task.run)",
                                   "do_engine_steps", "serialize (workflow_to_dict + json.dumps)"), phases,
                                  strict=True)}
    result.notes["state_bytes_last"] = len(state)
    result.notes["start"] = Result("library: new case + steps + serialize", start_samples, sum(start_samples))
    result.notes["elapsed"] = time.perf_counter() - begin
    return result


# --- b. the engine in-process ----------------------------------------------------------------------

def reset_postgres(url: str) -> None:
    """As tests/conftest.py does: an empty public schema."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def run_engine(url: str, completions: int, label: str, profile_to: Path | None = None,
               spy_to: Path | None = None) -> Result:
    engine = Engine(EngineSettings(url))
    try:
        engine.migrate()
        engine.deploy(bench_files(), ACTOR)
        # warm-up: one whole case (fills the spec cache, compiles the scripts), not counted
        case, _ = engine.start_case(PROCESS_KEY, ACTOR)
        while case["tasks"]:
            case = engine.complete_task(case["tasks"][0]["id"], task_data(0), ACTOR, _allow_all)

        cases = math.ceil(completions / TASKS_PER_CASE)
        start_samples, first_tasks = [], []
        for _ in range(cases):
            t = time.perf_counter()
            case, _ = engine.start_case(PROCESS_KEY, ACTOR)
            start_samples.append(time.perf_counter() - t)
            first_tasks.append(case["tasks"][0]["id"])

        profiler = cProfile.Profile() if profile_to else None
        spy = spying(os.getpid(), spy_to) if spy_to else contextlib.nullcontext()
        with spy:
            watch = LoadWatch()
            begin = time.perf_counter()
            if profiler:
                profiler.enable()
            samples = _complete_all(engine, first_tasks, completions)
            if profiler:
                profiler.disable()
            wall = time.perf_counter() - begin
        suffix = " (under cProfile)" if profiler else " (under py-spy)" if spy_to else ""
        result = Result(label + suffix, samples, wall)
        result.notes["others_cores"] = watch.others_cores()
        result.notes["cpu_ms"] = watch.own_cpu() * 1000 / len(samples)
        result.notes["start"] = Result(f"{label}: start_case", start_samples, sum(start_samples))
        if profiler:
            profile_to.parent.mkdir(parents=True, exist_ok=True)
            profiler.dump_stats(str(profile_to))
            result.notes["profile"] = profile_to
        if spy_to:
            result.notes["stacks"] = spy_to
        return result
    finally:
        engine.close()


def run_wsgi(url: str, completions: int) -> Result:
    """The Flask app in-process through its test client: routing, auth, body checks and JSON, no
    gunicorn and no socket. Sits between the engine and the HTTP rows."""
    import logging

    from usm_engine.api.app import create_app
    from usm_engine.api.settings import settings_from_env

    token = secrets.token_urlsafe(24)
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    log_file = open(Path(url.split("///", 1)[-1]).with_suffix(".log"), "w")
    # create_app() sets up INFO logging to stderr as the server has it; send it to a file (the server's
    # goes to its log file too) and undo it afterwards so the later in-process rows are not affected.
    logging.basicConfig(level=logging.INFO, stream=log_file)
    app = create_app(settings_from_env(overrides={"USM_DATABASE_URL": url, "USM_ADMIN_TOKEN": token,
                                                  "USM_TOKENS_FILE": None}))
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    try:
        response = client.post("/api/v1/definitions", data=BPMN.read_bytes(), headers=headers,
                               content_type="application/xml")
        assert response.status_code in (200, 201), response.get_json()

        def start() -> str:
            response = client.post("/api/v1/cases", json={"definition": PROCESS_KEY}, headers=headers)
            assert response.status_code == 201, response.get_json()
            return response.get_json()["tasks"][0]["id"]

        def complete(task_id: str, n: int) -> str | None:
            response = client.post(f"/api/v1/tasks/{task_id}/complete", json={"data": task_data(n)}, headers=headers)
            assert response.status_code == 200, response.get_json()
            tasks = response.get_json()["tasks"]
            return tasks[0]["id"] if tasks else None

        task_id = start()  # warm-up: one whole case, not counted
        while task_id:
            task_id = complete(task_id, 0)
        first_tasks = [start() for _ in range(math.ceil(completions / TASKS_PER_CASE))]
        samples, n = [], 0
        watch = LoadWatch()
        begin = time.perf_counter()
        for task_id in first_tasks:
            while task_id and n < completions:
                t = time.perf_counter()
                task_id = complete(task_id, n)
                samples.append(time.perf_counter() - t)
                n += 1
            if n >= completions:
                break
        result = Result("Flask app in-process (test client, SQLite; no gunicorn, no socket)", samples,
                        time.perf_counter() - begin)
        result.notes["others_cores"] = watch.others_cores()
        result.notes["cpu_ms"] = watch.own_cpu() * 1000 / len(samples)
        return result
    finally:
        app.extensions["usm_engine"].close()
        for handler in root.handlers:
            if handler not in saved[1]:
                root.removeHandler(handler)
        root.setLevel(saved[0])
        log_file.close()


def _complete_all(engine: Engine, first_tasks: list[str], completions: int) -> list[float]:
    samples, n = [], 0
    for task_id in first_tasks:
        while task_id and n < completions:
            t = time.perf_counter()
            case = engine.complete_task(task_id, task_data(n), ACTOR, _allow_all)
            samples.append(time.perf_counter() - t)
            n += 1
            task_id = case["tasks"][0]["id"] if case["tasks"] else None
        if n >= completions:
            break
    return samples


@contextlib.contextmanager
def spying(pid: int, out: Path, subprocesses: bool = False, rate: int = 250, idle: bool = True):
    """Record py-spy samples of `pid`. idle=True: wall time (keeps samples that wait on locks or I/O);
    idle=False: on-CPU samples only."""
    exe = Path(sys.executable).with_name("py-spy")
    exe = str(exe) if exe.exists() else shutil.which("py-spy")
    if not exe:
        raise SystemExit("--py-spy needs py-spy: pip install py-spy (into this virtualenv)")
    out.parent.mkdir(parents=True, exist_ok=True)
    command = ([exe, "record", "-p", str(pid), "-f", "raw", "--nolineno", "--nonblocking", "-r", str(rate),
                "-o", str(out)] + (["--idle"] if idle else []) + (["--subprocesses"] if subprocesses else []))
    spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.5)  # attach (and find the workers) before the measured part starts
    if spy.poll() is not None:
        raise RuntimeError(f"py-spy exited with {spy.returncode}: {spy.stderr.read().decode(errors='replace')}")
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        try:
            spy.wait(timeout=60)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait()
        spy.stderr.close()


# --- c. the full HTTP path -------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def machine_busy_seconds() -> float:
    """CPU seconds all processes of the machine have used (user+nice+system+irq+softirq+steal)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class LoadWatch:
    """How many cores other processes kept busy while an in-process measurement ran."""

    def __init__(self):
        self.machine, self.own, self.wall = machine_busy_seconds(), time.process_time(), time.perf_counter()

    def own_cpu(self) -> float:
        return time.process_time() - self.own

    def others_cores(self) -> float:
        machine = machine_busy_seconds() - self.machine
        own = time.process_time() - self.own
        return max(0.0, machine - own) / max(1e-9, time.perf_counter() - self.wall)


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                found.append(int(entry.name))
    return found


class Server:
    """`usm serve` in a temp directory with its own SQLite file, or on the PostgreSQL database given (its
    schema emptied first); always stopped by close()."""

    def __init__(self, workers: int, threads: int, postgres_url: str | None = None, definitions: Path | None = None):
        self.workers, self.threads = workers, threads
        self.dir = Path(tempfile.mkdtemp(prefix="usm-bench-http-"))
        (self.dir / "definitions").mkdir()
        self.port = free_port()
        self.token = secrets.token_urlsafe(24)
        self.database = "postgresql" if postgres_url else "sqlite"
        if postgres_url:
            reset_postgres(postgres_url)
        self.database_url = postgres_url or f"sqlite:///{self.dir}/bench.db"
        self.log = open(self.dir / "server.log", "wb")
        usm = Path(sys.executable).with_name("usm")
        command = [str(usm)] if usm.exists() else [sys.executable, "-m", "usm_engine.api.cli"]
        command += ["serve", "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(workers),
                    "--threads", str(threads), "--definitions", str(definitions or self.dir / "definitions")]
        env = {key: value for key, value in os.environ.items() if not key.startswith("USM_")}
        env.update({"USM_DATABASE_URL": self.database_url, "USM_ADMIN_TOKEN": self.token,
                    "PYTHONPATH": str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")})
        self.process = subprocess.Popen(command, cwd=self.dir, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    conn.close()
                    # every worker must be up too, or the first requests measure worker boot
                    if len(self.gunicorn_workers()) >= self.workers:
                        return
                conn.close()
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the server did not answer /healthz within {timeout} s:\n{self.log_tail()}")

    def cpu_seconds(self) -> float:
        return sum(_cpu_seconds(pid) for pid in [self.process.pid, *_children(self.process.pid)])

    def gunicorn_workers(self) -> list[int]:
        """The master's children except `usm serve`'s timer worker (python -m api.cli worker)."""
        found = []
        for pid in _children(self.process.pid):
            try:
                args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"worker" not in args[-3:]:
                found.append(pid)
        return found

    def log_tail(self, lines: int = 30) -> str:
        self.log.flush()
        text = (self.dir / "server.log").read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def close(self) -> None:
        try:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)  # gunicorn: graceful stop of master and workers
                try:
                    self.process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(self.process.pid, signal.SIGKILL)  # our own session, started above
                    self.process.wait(timeout=10)
        finally:
            self.log.close()
            shutil.rmtree(self.dir, ignore_errors=True)


class Client:
    """One keep-alive connection; reconnects when the server closes it."""

    def __init__(self, port: int, token: str):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def call(self, method: str, path: str, body=None, content_type: str | None = None) -> tuple[int, dict]:
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        headers = dict(self.headers)
        if content_type:
            headers["Content-Type"] = content_type
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        payload = response.read()
        if response.will_close:
            self.conn.close()
        return response.status, (json.loads(payload) if payload else {})

    def close(self) -> None:
        self.conn.close()


PROTOCOLS = {
    "complete": "each complete's response names the case's next task",
    "fetch": "before each complete, GET /api/v1/tasks?case=ID finds the case's ready task (a worklist client)",
}


def next_task(client: Client, case_id: str) -> str | None:
    """The fetch protocol's read: the case's first ready task, as a worklist client finds it."""
    status, page = client.call("GET", f"/api/v1/tasks?case={case_id}")
    if status != 200:
        raise RuntimeError(f"GET tasks: {status} {page}")
    return page["items"][0]["id"] if page["items"] else None


def run_http(server: Server, clients: int, completions: int, seconds: float,
             around=contextlib.nullcontext, protocol: str = "complete") -> tuple[Result, Result]:
    """Start enough cases with `clients` threads, then drive completions with `clients` threads. Samples
    are the complete calls (the submit), as a user would time them; the rate counts completions."""
    cases_per_client = math.ceil(completions / TASKS_PER_CASE / clients) + 1
    queues: list[list[tuple[str, str]]] = [[] for _ in range(clients)]  # (case id, its first task id)
    start_samples: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def seed(index: int) -> None:
        client = Client(server.port, server.token)
        try:
            for _ in range(cases_per_client):
                t = time.perf_counter()
                status, case = client.call("POST", "/api/v1/cases", {"definition": PROCESS_KEY})
                took = time.perf_counter() - t
                if status != 201:
                    with lock:
                        errors.append(f"start case: {status} {case}")
                    continue
                with lock:
                    start_samples.append(took)
                queues[index].append((case["id"], case["tasks"][0]["id"]))
        finally:
            client.close()

    begin = time.perf_counter()
    threads = [threading.Thread(target=seed, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    plural = "s" if clients > 1 else ""
    start_result = Result(f"http: start case ({clients} client{plural})", start_samples,
                          time.perf_counter() - begin, errors=len(errors))

    samples: list[float] = []
    issued = [0]
    stop_at = [0.0]
    barrier = threading.Barrier(clients + 1)
    complete_errors: list[str] = []

    def take() -> int | None:
        with lock:
            if issued[0] >= completions or time.perf_counter() >= stop_at[0]:
                return None
            issued[0] += 1
            return issued[0]

    def drive(index: int) -> None:
        client = Client(server.port, server.token)
        mine: list[float] = []
        try:
            barrier.wait()
            pending = list(queues[index])
            case_id, task_id = pending.pop(0) if pending else (None, None)
            while task_id is not None:
                n = take()
                if n is None:
                    break
                t = time.perf_counter()
                try:
                    status, case = client.call("POST", f"/api/v1/tasks/{task_id}/complete", {"data": task_data(n)})
                except (OSError, http.client.HTTPException) as exc:
                    client.close()
                    client = Client(server.port, server.token)
                    status, case = -1, {"detail": repr(exc)}
                took = time.perf_counter() - t
                if status == 200:
                    mine.append(took)
                    if protocol == "fetch":
                        task_id = next_task(client, case_id) if case["status"] == "running" else None
                    else:
                        task_id = case["tasks"][0]["id"] if case["tasks"] else None
                else:
                    with lock:
                        complete_errors.append(f"{status} {case.get('detail', case)}")
                    task_id = None
                if task_id is None:
                    case_id, task_id = pending.pop(0) if pending else (None, None)
                    if task_id is not None and protocol == "fetch":
                        task_id = next_task(client, case_id)
        finally:
            client.close()
            with lock:
                samples.extend(mine)

    threads = [threading.Thread(target=drive, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    with around():
        cpu_server_before, cpu_client_before = server.cpu_seconds(), time.process_time()
        machine_before = machine_busy_seconds()
        stop_at[0] = time.perf_counter() + seconds
        begin = time.perf_counter()
        barrier.wait()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - begin
        cpu_server = server.cpu_seconds() - cpu_server_before
        machine = machine_busy_seconds() - machine_before
        cpu_client = time.process_time() - cpu_client_before
    label = (f"http on {server.database} ({protocol}): workers={server.workers} threads={server.threads}, "
             f"{clients} client{'s' if clients > 1 else ''}")
    result = Result(label, samples, wall, errors=len(complete_errors))
    result.notes.update({"cpu_ms": (cpu_server + cpu_client) * 1000 / max(1, len(samples)),
                         "server_cpu_ms": cpu_server * 1000 / max(1, len(samples)),
                         "client_cpu_ms": cpu_client * 1000 / max(1, len(samples)),
                         "cpu_busy": (cpu_server + cpu_client) / wall / (os.cpu_count() or 1),
                         "others_cores": max(0.0, machine - cpu_server - cpu_client) / wall,
                         "first_errors": complete_errors[:3] + errors[:3],
                         "clients": clients, "workers": server.workers, "threads": server.threads,
                         "database": server.database, "protocol": protocol,
                         "timed_out": len(samples) < completions and not complete_errors})
    return result, start_result


@contextlib.contextmanager
def running(server: Server, timeout: float = 60):
    """`server` once it answers; its log on stderr if anything fails; always stopped."""
    try:
        server.wait_ready(timeout)
        yield server
    except Exception:
        print(f"--- server log (workers={server.workers} threads={server.threads}) ---\n{server.log_tail()}",
              file=sys.stderr)
        raise
    finally:
        server.close()


@contextlib.contextmanager
def serving(workers: int, threads: int, warm_clients: int, postgres_url: str | None = None):
    """A started server with the chain deployed over HTTP and every worker warmed up."""
    with running(Server(workers, threads, postgres_url)) as server:
        client = Client(server.port, server.token)
        status, body = client.call("POST", "/api/v1/definitions", BPMN.read_bytes(), content_type="application/xml")
        client.close()
        if status not in (200, 201):
            raise RuntimeError(f"deploy over HTTP failed: {status} {body}")
        # warm-up: every worker loads the spec and compiles the scripts; not counted
        run_http(server, warm_clients, max(200, workers * threads * TASKS_PER_CASE), 30)
        yield server


def run_http_matrix(args) -> list[Result]:
    results: list[Result] = []
    for database in args.http_databases:
        postgres_url = os.environ.get("USM_BENCH_POSTGRES_URL") if database == "postgresql" else None
        if database == "postgresql" and not postgres_url:
            raise SystemExit("--http-databases postgresql needs USM_BENCH_POSTGRES_URL (a database of its own)")
        for workers in args.workers:
            for threads in args.threads:
                with serving(workers, threads, max(args.http_clients), postgres_url) as server:
                    results += _measure_setting(args, server)
    return results


def _measure_setting(args, server: Server) -> list[Result]:
    """Every protocol and client count on one server: the best of --repeat tries of each."""
    results = []
    for protocol in args.protocols:
        for clients in args.http_clients:
            tries = []
            for _ in range(args.repeat):
                result, start = run_http(server, clients, args.http_completions, args.http_seconds,
                                         protocol=protocol)
                result.notes["start"] = start
                _progress(result)
                tries.append(result)
            best = max(tries, key=lambda r: r.per_second)
            best.notes["tries"] = [round(r.per_second) for r in tries]
            results.append(best)
    return results


def run_http_spied(args, best: Result) -> list[Result]:
    """Two more HTTP measurements at the best setting with py-spy sampling every worker: wall time
    (--idle: lock waits and socket reads count) and on-CPU time."""
    n = best.notes
    spied = []
    postgres_url = os.environ.get("USM_BENCH_POSTGRES_URL") if n["database"] == "postgresql" else None
    with serving(n["workers"], n["threads"], n["clients"], postgres_url) as server:
        for idle, kind in ((True, "wall"), (False, "cpu")):
            out = args.out.with_suffix(f".server-{kind}.txt")
            result, _ = run_http(server, n["clients"], args.http_completions, args.http_seconds,
                                 around=lambda out=out, idle=idle: spying(server.process.pid, out, subprocesses=True,
                                                                          rate=100, idle=idle),
                                 protocol=n["protocol"])
            result.path += f" (under py-spy, {'wall time' if idle else 'on-CPU'})"
            result.notes.update(stacks=out, idle=idle)
            spied.append(result)
            _progress(result)
    return spied


def source_fingerprint() -> str:
    """Which engine and API code was measured (the tree changes under us; no git here)."""
    digest = hashlib.sha256()
    for path in sorted([*(ROOT / "engine").rglob("*.py"), *(ROOT / "api").rglob("*.py")]):
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


# --- report ----------------------------------------------------------------------------------------

def _progress(result: Result) -> None:
    print(f"  {result.path}: {result.count} in {result.wall:.1f} s = {result.per_second:.0f}/s, "
          f"p50 {ms(result.pct(50))} ms, p99 {ms(result.pct(99))} ms, errors {result.errors}",
          file=sys.stderr, flush=True)


def machine_facts() -> list[str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import sqlite3

    import gunicorn
    import sqlalchemy

    return [f"date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
            f"nproc: {os.cpu_count()} ({cpu})",
            f"Python {platform.python_version()} ({platform.python_implementation()}), {platform.system()} "
            f"{platform.release()}",
            f"SpiffWorkflow {metadata.version('SpiffWorkflow')}, SQLAlchemy {sqlalchemy.__version__}, "
            f"SQLite {sqlite3.sqlite_version}, gunicorn {gunicorn.__version__}, "
            f"Flask {metadata.version('flask')}",
            "load average at the end (1/5/15 min): " + " / ".join(f"{v:.2f}" for v in os.getloadavg())
            + " (other work on the machine adds noise)",
            f"engine/ + api/ source fingerprint: {source_fingerprint()} (sha256 of their .py files)"]


def table(results: list[Result], baseline: Result | None) -> str:
    lines = ["| path | completions | completions/s | mean ms | p50 ms | p95 ms | p99 ms | max ms | "
             "× library-only (by completions/s) | CPU ms per completion | × library-only (by CPU) | "
             "other processes (cores) | errors |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    base_cpu = baseline.notes.get("cpu_ms") if baseline else None
    for r in results:
        ratio = f"{baseline.per_second / r.per_second:.1f}×" if baseline and r.per_second else "–"
        cpu = r.notes.get("cpu_ms")
        cpu_text = f"{cpu:.2f}" if cpu else "–"
        cpu_ratio = f"{cpu / base_cpu:.1f}×" if cpu and base_cpu else "–"
        others = f"{r.notes['others_cores']:.2f}" if "others_cores" in r.notes else "–"
        lines.append(f"| {r.path} | {r.count} | {r.per_second:.0f} | {ms(r.mean)} | {ms(r.pct(50))} | "
                     f"{ms(r.pct(95))} | {ms(r.pct(99))} | {ms(max(r.samples) if r.samples else float('nan'))} | "
                     f"{ratio} | {cpu_text} | {cpu_ratio} | {others} | {r.errors} |")
    return "\n".join(lines)


def report(args, results: list[Result], http_results: list[Result], profiled: list[Result], command: str) -> str:
    """The markdown report; `profiled` holds the extra runs under cProfile or py-spy."""
    baseline = next((r for r in results if r.path.startswith("library")), None)
    out = ["# usm-engine benchmark: one task completion", "", f"command: `{command}`", ""]
    out += [f"- {fact}" for fact in machine_facts()]
    out += ["", "## Per task completion", ""]
    best_http = max(http_results, key=lambda r: r.per_second) if http_results else None
    main_rows = list(results) + ([best_http] if best_http else [])
    out.append(table(main_rows, baseline))
    out += ["", "Ratio by completions/s = library-only completions/s ÷ the path's. In-process paths run one "
            "completion at a time on one core; the HTTP row is the best server setting below, with concurrent "
            "clients on the same machine, so it can use both cores. Ratio by CPU = CPU time per completion "
            "(for HTTP: every server process plus the client threads) ÷ the library's: what one completion "
            "costs, whatever the concurrency, and much less sensitive to other work on the machine. "
            "The Flask row's CPU includes the test client's own work.", ""]
    if baseline is not None:
        out += ["## Library-only phases (mean per completion)", "", "| phase | ms |", "|---|---:|"]
        for name, seconds in baseline.notes["phases"].items():
            out.append(f"| {name} | {ms(seconds)} |")
        out += ["", f"Instance JSON after the last completion: {baseline.notes['state_bytes_last']} bytes.", ""]
    starts = [r.notes["start"] for r in results + ([best_http] if best_http else []) if "start" in r.notes]
    if starts:
        out += ["## Starting a case (measured separately)", "", table(starts, None), ""]
    if http_results:
        out += ["## HTTP: every server setting tried", "",
                "| database | protocol | workers | threads | clients | completions | completions/s | p50 ms | "
                "p95 ms | p99 ms | server CPU ms/completion | client CPU ms/completion | our CPU use (of all cores) | "
                "other processes (cores) | errors | CPU-bound capacity (/s) |",
                "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in http_results:
            n = r.notes
            tries = n.get("tries", [])
            rate = f"{r.per_second:.0f}" + (f" (tries: {', '.join(map(str, tries))})" if len(tries) > 1 else "")
            out.append(f"| {n['database']} | {n['protocol']} | {n['workers']} | {n['threads']} | {n['clients']} | "
                       f"{r.count} | {rate} | "
                       f"{ms(r.pct(50))} | {ms(r.pct(95))} | {ms(r.pct(99))} | {n['server_cpu_ms']:.2f} | "
                       f"{n['client_cpu_ms']:.2f} | {n['cpu_busy']:.0%} | {n['others_cores']:.2f} | {r.errors} | "
                       f"{capacity(n):.0f} |")
            for error in n["first_errors"]:
                out.append(f"|  |  |  |  |  | error: {error[:120]} | | | | | | | | | | |")
        out += ["", "Protocols: " + "; ".join(f"`{name}`: {what}" for name, what in PROTOCOLS.items())
                + ". Latency is the complete call's.", "",
                "CPU-bound capacity = cores × 1000 ÷ (server + client CPU ms per completion): the rate this "
                "machine could reach if the server never waited and nothing else ran. It moves much less with "
                "the machine's other load than the measured rate does.", ""]
    for r in profiled:
        head = (f"{r.count} completions, {r.per_second:.0f}/s, p50 {ms(r.pct(50))} ms, p99 {ms(r.pct(99))} ms "
                "while profiled.")
        if "profile" in r.notes:
            out += [f"## cProfile: {r.path}", "", head, "", cprofile_tables(r.notes["profile"]), ""]
        if "stacks" in r.notes and r.path.startswith("http"):
            kind = ("wall time (--idle: includes waiting for the SQLite lock and for the client's bytes)"
                    if r.notes.get("idle") else "on-CPU samples only")
            out += [f"## py-spy: {r.path}", "", head,
                    f"Shares of the samples taken inside gunicorn's handle_request, summed over the workers; {kind}.",
                    "", stack_tables(r.notes["stacks"]), ""]
        elif "stacks" in r.notes:
            out += [f"## py-spy (wall time, --idle): {r.path}", "", head, "",
                    stack_tables(r.notes["stacks"], base=("complete_task", "engine/")), ""]
    return "\n".join(out) + "\n"


def capacity(notes: dict) -> float:
    per_completion = notes["server_cpu_ms"] + notes["client_cpu_ms"]
    return (os.cpu_count() or 1) * 1000 / per_completion if per_completion else float("nan")


def _int_list(text: str) -> list[int]:
    values = [int(part) for part in text.split(",") if part.strip()]
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError("give one or more positive whole numbers, comma-separated")
    return values


def _name_list(allowed: tuple[str, ...]):
    def parse(text: str) -> list[str]:
        names = [part.strip() for part in text.split(",") if part.strip()]
        if not names or any(name not in allowed for name in names):
            raise argparse.ArgumentTypeError(f"give one or more of {', '.join(allowed)}, comma-separated")
        return names
    return parse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--completions", type=int, default=3000,
                        help="task completions for the in-process paths (library, engine, postgres)")
    parser.add_argument("--http-completions", type=int, default=5000,
                        help="task completions per HTTP measurement (stops early at --http-seconds)")
    parser.add_argument("--http-seconds", type=float, default=60.0, help="time limit per HTTP measurement")
    parser.add_argument("--http-clients", type=_int_list, default=[8],
                        help="concurrent HTTP clients; a comma list runs each in turn (e.g. 1,16)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="HTTP: measure each setting this many times and keep the fastest (the machine is shared)")
    parser.add_argument("--workers", type=_int_list, default=[2],
                        help="gunicorn worker processes; a comma list tries each")
    parser.add_argument("--threads", type=_int_list, default=[8],
                        help="threads per worker (8 = usm serve's default; 1 = sync worker); a comma list tries each")
    parser.add_argument("--http-databases", type=_name_list(("sqlite", "postgresql")), default=["sqlite"],
                        help="databases for the HTTP path: sqlite, postgresql (needs USM_BENCH_POSTGRES_URL)")
    parser.add_argument("--protocols", type=_name_list(tuple(PROTOCOLS)), default=["complete"],
                        help="HTTP client protocols: " + "; ".join(f"{k}: {v}" for k, v in PROTOCOLS.items()))
    parser.add_argument("--paths", default="library,engine,wsgi,postgres,http",
                        help="which paths to run, comma-separated (postgres also needs USM_BENCH_POSTGRES_URL)")
    parser.add_argument("--profile", action="store_true",
                        help="also run the SQLite engine path once more under cProfile and add its top functions")
    parser.add_argument("--py-spy", action="store_true",
                        help="also sample with py-spy (needs py-spy): the in-process SQLite engine loop, and one "
                             "more HTTP run at the best setting; adds step and function tables")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "latest.md",
                        help="markdown report to write (bench/results/ is git-ignored)")
    args = parser.parse_args(argv)
    paths = {p.strip() for p in args.paths.split(",") if p.strip()}
    command = "python -m bench.run " + " ".join(argv if argv is not None else sys.argv[1:])

    results: list[Result] = []
    profiled: list[Result] = []
    tmp = Path(tempfile.mkdtemp(prefix="usm-bench-"))
    try:
        if "library" in paths:
            print("library only ...", file=sys.stderr, flush=True)
            results.append(run_library(args.completions))
            _progress(results[-1])
        if "engine" in paths:
            print("engine on SQLite ...", file=sys.stderr, flush=True)
            results.append(run_engine(f"sqlite:///{tmp}/bench.db", args.completions, "engine + SQLite (in-process)"))
            _progress(results[-1])
        if "wsgi" in paths:
            print("Flask app in-process ...", file=sys.stderr, flush=True)
            results.append(run_wsgi(f"sqlite:///{tmp}/wsgi.db", args.completions))
            _progress(results[-1])
        postgres_url = os.environ.get("USM_BENCH_POSTGRES_URL")
        if "postgres" in paths and postgres_url:
            print("engine on PostgreSQL ...", file=sys.stderr, flush=True)
            reset_postgres(postgres_url)
            results.append(run_engine(postgres_url, args.completions, "engine + PostgreSQL (in-process)"))
            _progress(results[-1])
        if args.profile:
            print("engine on SQLite under cProfile ...", file=sys.stderr, flush=True)
            profile_path = args.out.with_suffix(".engine.prof")
            profiled.append(run_engine(f"sqlite:///{tmp}/profile.db", args.completions,
                                       "engine + SQLite (in-process)", profile_to=profile_path))
            _progress(profiled[-1])
        if args.py_spy:
            print("engine on SQLite under py-spy ...", file=sys.stderr, flush=True)
            profiled.append(run_engine(f"sqlite:///{tmp}/spied.db", args.completions, "engine + SQLite (in-process)",
                                       spy_to=args.out.with_suffix(".engine.txt")))
            _progress(profiled[-1])
        http_results: list[Result] = []
        if "http" in paths:
            print("full HTTP path ...", file=sys.stderr, flush=True)
            http_results = run_http_matrix(args)
            if args.py_spy and http_results:
                print("HTTP at the best setting under py-spy ...", file=sys.stderr, flush=True)
                profiled.extend(run_http_spied(args, max(http_results, key=lambda r: r.per_second)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    text = report(args, results, http_results, profiled, command)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    print(f"written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
