"""Conformance, second half: every deployed file's startable definitions are started and driven as
people and workers would drive them, to see what a case of a model written by others comes to.

Each file gets an engine of its own on a copy of one migrated SQLite file (definitions of different
files share keys such as `Process_1`), with a clock that stands still until the driver moves it. A case
is started with no data and driven one step at a time: a ready user task completed with random data its
form accepts, an external task locked and completed (with no data) by a stub worker, and when nothing
is ready, the clock moved to the next due timer and the timers fired. Linked cases that the messages of
a case start are left alone (the stub worker may complete their external tasks, which share topics):
nothing a linked case does reaches back to the case that started it, and each definition a message
starts is also started on its own.

The outcome of a case: completed; waiting (for a message or signal, with nothing else to do); incident
(the model's own, or the engine's: see conformance_incidents.py); limit (MAX_STEPS steps, or the time
budget, spent); stopped (the driver could not take a step: a form it found no data for, or a step the
engine refused as a client error); crashed (an exception other than the engine's own refusals escaped
the engine: a bug, what a server would answer with a 5xx).
"""
from __future__ import annotations

import random
import shutil
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from .clock import FixedClock, parse_rfc3339
from .conformance_forms import form_data
from .conformance_incidents import classify
from .errors import EngineError
from .service import Engine, EngineSettings

MAX_STEPS = 200
SECONDS_PER_CASE = 5.0   # a budget the driver stops at, measured; the report gives each case's time
ACTOR, WORKER = "conformance", "conformance-worker"
LOCK_SECONDS = 600


class NoData(Exception):
    """The driver found no data that a task's form accepts."""


def anyone(_lane: str | None) -> bool:
    return True  # the driver holds every lane's role: authorization is not what this run looks at


@dataclass
class CaseResult:
    file: str
    definition: str
    outcome: str             # completed | waiting | incident | limit | stopped | crashed
    steps: int = 0
    seconds: float = 0.0
    detail: str = ""         # what it waits for, the incident's message, why it stopped, the crash
    element: str | None = None  # where the incident happened
    owner: str | None = None    # an incident's: model | engine
    cause: str | None = None    # an incident's kind, without particulars
    linked_cases: int = 0       # cases its messages started (not driven)


@dataclass
class Driven:
    """The cases of one file and the definitions it did not start (only called, or several message starts)."""

    cases: list[CaseResult] = field(default_factory=list)
    not_started: list[str] = field(default_factory=list)


def template_database(folder: Path) -> Path:
    """An empty database at the newest schema, which every file's engine starts from a copy of."""
    path = folder / "template.db"
    engine = Engine(EngineSettings(database_url=f"sqlite:///{path}"))
    engine.migrate()
    engine.close()  # the last connection closing moves SQLite's write-ahead log into the file
    return path


def drive_file(bundle: list[tuple[str, bytes]], relative: str, template: Path) -> Driven:
    """Deploy the bundle on a fresh engine and start and drive each startable definition once."""
    copy = template.with_name("case.db")
    shutil.copyfile(template, copy)
    clock = FixedClock()
    engine = Engine(EngineSettings(database_url=f"sqlite:///{copy}"), clock=clock)
    driven = Driven()
    try:
        engine.deploy(bundle, ACTOR)
        for definition in engine.list_definitions():
            if definition["startable"]:
                driven.cases.append(drive_case(engine, clock, relative, definition["key"]))
            else:
                driven.not_started.append(definition["key"])
    finally:
        engine.close()
        for leftover in copy.parent.glob("case.db*"):
            leftover.unlink()
    return driven


def drive_case(engine: Engine, clock: FixedClock, relative: str, key: str) -> CaseResult:
    result = CaseResult(relative, key, "limit")
    started = time.perf_counter()
    try:
        case, _ = engine.start_case(key, ACTOR, data={})
        rng = random.Random(f"{relative}:{key}")
        while True:
            case = engine.get_case(case["id"])
            if case["status"] != "running":
                break
            if result.steps >= MAX_STEPS or time.perf_counter() - started > SECONDS_PER_CASE:
                result.detail = (f"not finished after {result.steps} steps" if result.steps >= MAX_STEPS else
                                 f"not finished within {SECONDS_PER_CASE:g} s")
                break
            if not take_step(engine, clock, case, rng):
                break
            result.steps += 1
        conclude(result, engine.get_case(case["id"]))
    except (EngineError, NoData) as exc:
        result.outcome, result.detail = "stopped", _refusal(exc)
    except Exception as exc:  # noqa: BLE001 - an escaping exception is what this run looks for
        result.outcome, result.detail = "crashed", f"{type(exc).__name__}: {exc}"
    result.seconds = time.perf_counter() - started
    return result


def take_step(engine: Engine, clock: FixedClock, case: dict, rng: random.Random) -> bool:
    """One step of a running case; False when there is nothing the driver can do (the case waits)."""
    tasks = case["tasks"]
    if tasks:
        task = tasks[0]
        if task.get("topic"):
            for job in engine.lock_external_tasks(WORKER, [task["topic"]], 10, LOCK_SECONDS):
                engine.complete_task(job["id"], {}, WORKER, anyone, worker=WORKER)
        else:
            form = engine.get_task(task["id"])["form"]
            try:
                data = form_data(form, rng)
            except ValueError as exc:
                raise NoData(f"{exc} (task '{task['element_id']}')") from None
            engine.complete_task(task["id"], data, ACTOR, anyone)
        return True
    due = [parse_rfc3339(w["due_at"]) for w in case["waiting_for"] if w["type"] == "timer" and w.get("due_at")]
    if not due:
        return False
    # SpiffWorkflow fires a timer once its moment has passed, not at it.
    clock.move_to(max(clock.now(), min(due).replace(tzinfo=clock.now().tzinfo) + timedelta(seconds=1)))
    engine.fire_due_timers()
    return True


def conclude(result: CaseResult, case: dict) -> None:
    """The outcome of a case the driver left, from the case as the engine reports it."""
    result.linked_cases = len(case.get("child_cases") or [])
    if case["status"] == "completed":
        result.outcome = "completed"
    elif case.get("incident"):
        incident = case["incident"]
        result.outcome, result.detail = "incident", incident["message"]
        result.element = incident.get("element_id")
        result.owner, result.cause = classify(incident["message"])
    elif result.outcome == "limit" and result.detail:
        return
    elif case["status"] == "running":
        events = [f"{w['type']} '{w['name']}'" if w.get("name") else w["type"] for w in case["waiting_for"]]
        result.outcome, result.detail = "waiting", ", ".join(events) or "nothing"
    else:
        result.outcome, result.detail = "stopped", f"the case is {case['status']}"


def _refusal(exc: EngineError | NoData) -> str:
    if isinstance(exc, NoData):
        return str(exc)
    return f"the engine refused a step ({type(exc).__name__}): {exc.detail}"
