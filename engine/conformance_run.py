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
the engine: a bug, what a server would answer with a 5xx; or one command of the engine did not return
within COMMAND_SECONDS, which would hold a server's thread as long).
"""
from __future__ import annotations

import random
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from .clock import FixedClock, parse_rfc3339
from .conformance_forms import camunda_forms, form_data
from .conformance_incidents import classify
from .errors import EngineError
from .service import Engine, EngineSettings

MAX_STEPS = 200
SECONDS_PER_CASE = 5.0   # a budget the driver stops at, measured; the report gives each case's time
ACTOR, WORKER = "conformance", "conformance-worker"
LOCK_SECONDS = 600
# The step and time budgets are checked between the engine's commands; a command that does not end (a
# process that calls itself without end) is stopped after this long, and the case reported as crashed.
COMMAND_SECONDS = 30.0


class CommandHung(BaseException):
    """Raised into a command that ran out of COMMAND_SECONDS. A BaseException, so that the engine's own
    handlers (which make any Exception of a step the case's incident) let it through and nothing is saved."""


@contextmanager
def command_deadline(seconds: float | None = None) -> Iterator[None]:
    """Interrupt the block after `seconds` (COMMAND_SECONDS if not given) with SIGALRM: on the main thread
    of a POSIX process only; elsewhere the block runs unbounded."""
    seconds = COMMAND_SECONDS if seconds is None else seconds
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(_signum: int, _frame: object) -> None:
        raise CommandHung(f"a command of the engine did not return within {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


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
    start_inputs: list[str] = field(default_factory=list)  # given from the version's start_inputs


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
    # Java service tasks wait for a worker, as they would for a team that plugs in workers for them.
    engine = Engine(EngineSettings(database_url=f"sqlite:///{copy}", java_as_external_tasks=True,
                                   unimplemented_as_external_tasks=True), clock=clock)
    driven = Driven()
    try:
        engine.deploy(bundle, ACTOR)
        forms = camunda_forms(bundle)
        for definition in engine.list_definitions():
            if definition["startable"]:
                driven.cases.append(drive_case(engine, clock, relative, definition["key"], forms))
            else:
                driven.not_started.append(definition["key"])
    finally:
        engine.close()
        for leftover in copy.parent.glob("case.db*"):
            leftover.unlink()
    return driven


def drive_case(engine: Engine, clock: FixedClock, relative: str, key: str,
               forms: dict[tuple[str, str | None], dict] | None = None) -> CaseResult:
    """Start a case (with random data of its start event's form, if it has one) and drive it to its end.
    `forms` are the Camunda forms of the models (conformance_forms.camunda_forms), which the engine does
    not show but which say what a person would fill in."""
    result = CaseResult(relative, key, "limit")
    started = time.perf_counter()
    forms = forms or {}
    try:
        with command_deadline():
            rng = random.Random(f"{relative}:{key}")
            inputs = engine.get_definition(key)["start_inputs"]
            start_form = with_start_inputs(forms.get((key, None)), inputs)
            data = _filled(start_form, rng, "start event") if start_form else {}
            result.start_inputs = sorted(set(inputs.get("properties") or {}) & set(data))
            case, _ = engine.start_case(key, ACTOR, data=data)
            while True:
                case = engine.get_case(case["id"])
                if case["status"] != "running":
                    break
                if result.steps >= MAX_STEPS or time.perf_counter() - started > SECONDS_PER_CASE:
                    result.detail = (f"not finished after {result.steps} steps" if result.steps >= MAX_STEPS else
                                     f"not finished within {SECONDS_PER_CASE:g} s")
                    break
                if not take_step(engine, clock, case, rng, forms):
                    break
                result.steps += 1
            conclude(result, engine.get_case(case["id"]))
    except (EngineError, NoData) as exc:
        result.outcome, result.detail = "stopped", _refusal(exc)
    except (Exception, CommandHung) as exc:  # noqa: BLE001 - an escaping exception is what this run looks for
        result.outcome, result.detail = "crashed", f"{type(exc).__name__}: {exc}"
    result.seconds = time.perf_counter() - started
    return result


def take_step(engine: Engine, clock: FixedClock, case: dict, rng: random.Random,
              forms: dict[tuple[str, str | None], dict] | None = None) -> bool:
    """One step of a running case; False when there is nothing the driver can do (the case waits). A user
    task without a JSON Schema form of its own is filled in by its Camunda form, if `forms` has one."""
    tasks = case["tasks"]
    if tasks:
        task = tasks[0]
        if task.get("topic"):
            for job in engine.lock_external_tasks(WORKER, [task["topic"]], 10, LOCK_SECONDS):
                engine.complete_task(job["id"], {}, WORKER, anyone, worker=WORKER)
        else:
            shown = engine.get_task(task["id"])
            form = with_camunda_form(shown["form"], (forms or {}).get((shown["definition"], task["element_id"])))
            engine.complete_task(task["id"], _filled(form, rng, f"task '{task['element_id']}'"), ACTOR, anyone)
        return True
    due = [parse_rfc3339(w["due_at"]) for w in case["waiting_for"] if w["type"] == "timer" and w.get("due_at")]
    if not due:
        return False
    # SpiffWorkflow fires a timer once its moment has passed, not at it.
    clock.move_to(max(clock.now(), min(due).replace(tzinfo=clock.now().tzinfo) + timedelta(seconds=1)))
    engine.fire_due_timers()
    return True


def with_camunda_form(form: dict, camunda: dict | None) -> dict:
    """The form the engine shows, with the fields of the task's Camunda form added: the engine's form may
    hold only the outputs the task declares (task_outputs.py), and a person fills in both."""
    if camunda is None or form.get("additionalProperties") is False:
        return form if form.get("properties") or camunda is None else camunda
    return _with_fields(form, camunda)


def with_start_inputs(form: dict | None, inputs: dict) -> dict | None:
    """The start event's form with the version's start inputs added: the variables it reads that nothing in
    the model sets (start_inputs.py), which whoever starts a case gives."""
    if not inputs.get("properties"):
        return form
    return _with_fields(form or {"type": "object", "properties": {}, "required": []}, inputs)


def _with_fields(form: dict, extra: dict) -> dict:
    """`form` with the fields of `extra` added (a field of both keeps the form's schema)."""
    required = list(form.get("required") or [])
    return {**form, "properties": {**extra.get("properties", {}), **(form.get("properties") or {})},
            "required": required + [name for name in extra.get("required", []) if name not in required]}


def _filled(form: dict, rng: random.Random, where: str) -> dict:
    try:
        return form_data(form, rng)
    except ValueError as exc:
        raise NoData(f"{exc} ({where})") from None


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
