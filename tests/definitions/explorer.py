"""An exhaustive path explorer for the USM definitions.

For a startable definition it takes, at every user task, every combination of the decision fields that
gateways read (the enum and boolean fields of the task's form whose names appear in a condition), with
and without the waiting timer firing while the task is open, and drives each path to its end: each loop
at most twice (a task reached a third time in one case ends that path as "pruned"). It asserts nothing
itself; it reports each finished path and what went wrong on it.

Where the choices are taken: the explored definition's own tasks and those of the frames it calls
(definitions meant only to be called). A process it forks into is explored as a definition of its own,
so inside a fork, and in linked cases started by hand-offs, the tasks take one default answer each; a
definition that has no user task of its own (a static workflow) is explored through the processes it
calls directly. Without that, the paths of Agree would be multiplied by those of Change and Operate.

It runs in-process on one SQLite file and shares common prefixes: before the alternatives of a task it
copies the database into memory (sqlite3's backup API), and before each further alternative it copies
it back, so every path pays only for its own steps. The same choices can be replayed through the HTTP
API (`replay`).
"""
from __future__ import annotations

import ast
import itertools
import sqlite3
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from usm_engine.engine.case_reading import blueprint_of, read_case, restore
from tests.definitions.support import DEFAULT_DECISIONS, REQUEST, Driver, models

MAX_VISITS = 2
ANYONE = lambda lane: True  # noqa: E731 - the explorer completes every lane's tasks


def decision_names() -> set[str]:
    """Every name a gateway condition of definitions/ reads."""
    names = set()
    for model in models().values():
        for flow in model.flows.values():
            condition = flow.find("{http://www.omg.org/spec/BPMN/20100524/MODEL}conditionExpression")
            if condition is not None and (condition.text or "").strip():
                tree = ast.parse(condition.text.strip(), mode="eval")
                names |= {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    return names


@dataclass(frozen=True)
class Choice:
    """What was done at one user task: the decisions given, and whether a timer fired first."""

    case: int            # index of the case in the path's cases (0 = the started one)
    element_id: str
    decisions: tuple      # ((field, value), ...)
    timer: str | None     # the name of the timer that fires before the task is completed


@dataclass
class Path:
    choices: list[Choice]
    statuses: list[str]           # how the started case ended
    problems: list[str] = field(default_factory=list)


class EnginePort:
    """The engine in-process, with a clock the explorer moves."""

    def __init__(self, engine, clock):
        self.engine, self.clock = engine, clock

    def start(self, key: str) -> str:
        return self.engine.start_case(key, "explorer", data={"request": REQUEST})[0]["id"]

    def case(self, case_id: str) -> dict:
        return self.engine.get_case(case_id)

    def task(self, task_id: str) -> dict:
        return self.engine.get_task(task_id)

    def complete(self, task_id: str, data: dict) -> None:
        self.engine.complete_task(task_id, data, "explorer", ANYONE)

    def fire_timers(self) -> None:
        self.engine.fire_due_timers()

    def verified(self) -> bool:
        return self.engine.verify_trails()["ok"]


class HttpPort:
    """The same moves through the HTTP API (the timer worker stays a function call, as `usm worker`)."""

    def __init__(self, client, app, clock):
        self.driver, self.app, self.clock = Driver(client, app), app, clock

    def start(self, key: str) -> str:
        return self.driver.start(key)["id"]

    def case(self, case_id: str) -> dict:
        return self.driver.case(case_id)

    def task(self, task_id: str) -> dict:
        return self.driver.get(f"/api/v1/tasks/{task_id}")

    def complete(self, task_id: str, data: dict) -> None:
        self.driver.post(f"/api/v1/tasks/{task_id}/complete", {"data": data}, 200)

    def fire_timers(self) -> None:
        self.app.extensions["usm_engine"].fire_due_timers()

    def verified(self) -> bool:
        return self.driver.get("/api/v1/audit/verify")["ok"]


def path_cases(port, root: str) -> list[dict]:
    """The started case and every case linked from it, in the order they were started."""
    cases, pending = [], [root]
    while pending:
        case = port.case(pending.pop(0))
        cases.append(case)
        pending.extend(case.get("child_cases") or [])
    return cases


def next_task(cases: list[dict]) -> tuple[int, dict] | None:
    """The first ready user task of the first running case that has one."""
    for index, case in enumerate(cases):
        if case["status"] == "running":
            for task in case["tasks"]:
                if not task.get("topic"):
                    return index, task
    return None


def decision_fields(form: dict, decisions: set[str]) -> list[str]:
    """The form's fields that a gateway reads: enum or boolean fields named in a condition."""
    return sorted(name for name, prop in form.get("properties", {}).items()
                  if name in decisions and (prop.get("type") == "boolean" or "enum" in prop))


def answer(form: dict, decisions: dict, element_id: str) -> dict:
    return Driver.answer(form, dict(decisions), {}, element_id)


# Outside the explored scope, the shortest way through: a risk or an incident handed over is dealt with
# by operations, not by a chain of forks through Agree and Change.
DEFAULTS = {**DEFAULT_DECISIONS, "measure_call": "service request", "recovery_route": "operate"}


def default_decisions(form: dict, fields: list[str]) -> dict:
    values = {}
    for name in fields:
        prop = form["properties"][name]
        values[name] = DEFAULTS.get(name, prop["enum"][0] if "enum" in prop else False)
    return values


def earliest_timer(case: dict, seen: frozenset = frozenset()) -> tuple | None:
    """(due time, name) of the case's earliest waiting timer not in `seen`."""
    due = [(w["due_at"], w["name"]) for w in case["waiting_for"] if w["type"] == "timer" and w.get("due_at")]
    due = [timer for timer in due if timer not in seen]
    return min(due) if due else None


def take(port, cases: list[dict], choice: Choice, task: dict) -> None:
    """Do one choice: let the timer fire first if asked, then complete the task if it is still there."""
    if choice.timer:
        due = min(w["due_at"] for w in cases[choice.case]["waiting_for"]
                  if w["type"] == "timer" and w["name"] == choice.timer)
        port.clock.move_to(datetime.fromisoformat(due.replace("Z", "+00:00")) + timedelta(seconds=1))
        port.fire_timers()
        still = [t for t in port.case(cases[choice.case]["id"])["tasks"] if t["id"] == task["id"]]
        if not still:
            return  # an interrupting timer took the task away
    port.complete(task["id"], answer(task["form"], dict(choice.decisions), task["element_id"]))


def drive_with_defaults(port, root: str, max_steps: int = 300) -> list[str]:
    """Complete every task of a case and the cases it links to with default answers, to their end."""
    for _ in range(max_steps):
        cases = path_cases(port, root)
        found = next_task(cases)
        if found is None:
            return check_end(port, cases)
        task = port.task(found[1]["id"])
        fields = [name for name, prop in task["form"].get("properties", {}).items()
                  if prop.get("type") == "boolean" or "enum" in prop]
        port.complete(task["id"], answer(task["form"], default_decisions(task["form"], fields), task["element_id"]))
    return [f"case {root} did not end in {max_steps} steps"]


def check_end(port, cases: list[dict]) -> list[str]:
    problems = []
    for case in cases:
        if case.get("incident"):
            problems.append(f"{case['definition']}: incident {case['incident']}")
        elif case["status"] != "completed":
            problems.append(f"{case['definition']}: ends {case['status']} waiting for {case['waiting_for']}")
    if not port.verified():
        problems.append("a trail does not verify")
    return problems


class Explorer:
    def __init__(self, engine, clock, definitions: dict[str, dict]):
        """`definitions`: GET /api/v1/definitions/{key} of every deployed definition, by key."""
        self.port = EnginePort(engine, clock)
        self.engine, self.clock, self.definitions = engine, clock, definitions
        self.decisions = decision_names()
        self.frames = {key for key, d in definitions.items() if not d["startable"]}

    # --- the search ------------------------------------------------------------------------------

    def explore(self, key: str) -> tuple[list[Path], int]:
        """Every path of a definition, and how many were pruned for taking a loop a third time."""
        self.scope = self._scope(key)
        self.paths: list[Path] = []
        self.pruned = 0
        self.linked: dict[tuple, list[str]] = {}
        start = self.clock.now()
        root = self.port.start(key)
        self._step(root, {}, frozenset(), [])
        self.clock.move_to(start)
        return self.paths, self.pruned

    def _step(self, root: str, visits: dict, timers: frozenset, choices: list[Choice]) -> None:
        """`visits`: how often each place was reached; `timers`: the timers already given their chance to
        fire on this path (each waiting timer fires or not at the first task it waits beside)."""
        cases = [self.port.case(root)]   # linked cases wait until this one ends (see _end)
        found = next_task(cases)
        if found is None:
            self.paths.append(self._end(cases, choices))
            return
        index, summary = found
        task = self.port.task(summary["id"])
        fields = decision_fields(task["form"], self.decisions)
        explored = False
        if fields:
            # Every loop goes back through the task whose decision its gateway reads, so counting the
            # visits of deciding tasks finds every loop taken a third time.
            chain, place = self._runs_in(root, summary["id"])
            if visits.get(place, 0) >= MAX_VISITS:
                self.pruned += 1
                return
            visits = {**visits, place: visits.get(place, 0) + 1}
            explored = set(chain) <= self.scope
        timer = earliest_timer(cases[index], timers)
        options = self._options(task, index, fields, explored, timer)
        if timer is not None:
            timers = timers | {timer}
        saved = self._snapshot() if len(options) > 1 else None
        for number, choice in enumerate(options):
            if number:
                self._restore(saved)
            take(self.port, cases, choice, task)
            self._step(root, visits, timers, choices + [choice])

    def _options(self, task: dict, index: int, fields: list[str], explored: bool,
                 timer: tuple | None) -> list[Choice]:
        form = task["form"]
        if explored:
            values = [[True, False] if form["properties"][name].get("type") == "boolean"
                      else form["properties"][name]["enum"] for name in fields]
            combos = [tuple(zip(fields, combo, strict=True)) for combo in itertools.product(*values)]
        else:
            combos = [tuple(default_decisions(form, fields).items())]
        timers = [None, timer[1]] if timer else [None]
        return [Choice(index, task["element_id"], combo, timer) for combo in combos for timer in timers]

    def _end(self, cases: list[dict], choices: list[Choice]) -> Path:
        """The started case ended: each case it linked to is driven to its end with default answers, once
        per kind (a hand-off of the same type from the same place behaves the same on every path)."""
        problems = check_end(self.port, cases)
        for child_id in cases[0]["child_cases"]:
            child = self.port.case(child_id)
            handoff = child["data"].get("handoff") or {}
            kind = (child["definition"], handoff.get("type"), handoff.get("reason"),
                    (child["data"].get("escalation") or {}).get("step"))
            if kind not in self.linked:
                self.linked[kind] = drive_with_defaults(self.port, child_id)
            problems += self.linked[kind]
        return Path(choices, [cases[0]["status"]], problems)

    # --- where choices are taken -----------------------------------------------------------------

    def _scope(self, key: str) -> set[str]:
        scope = {key} | self.frames
        if not self.definitions[key]["user_tasks"]:   # a thin wrapper: explore what it runs
            scope |= set(self.definitions[key]["calls"])
        return scope

    def _runs_in(self, case_id: str, task_id: str) -> tuple[list[str], str]:
        """The definitions from the case's own down to the one whose process runs the task, and the
        task's place: its element under the call activities that lead to it."""
        engine = self.engine
        row = read_case(engine.db, case_id)
        blueprint = blueprint_of(engine.specs, row)
        task = restore(row, blueprint, engine.script_engine).get_task_from_id(uuid.UUID(task_id))
        chain, place = [], [task.task_spec.bpmn_id]
        workflow = task.workflow
        while True:
            chain.append(blueprint.locate(workflow.spec.name, "")[0])
            if workflow is workflow.top_workflow:
                return chain[::-1], "/".join(place[::-1])
            place.append(workflow.top_workflow.get_task_from_id(workflow.parent_task_id).task_spec.bpmn_id)
            workflow = workflow.parent_workflow

    # --- sharing prefixes ------------------------------------------------------------------------

    def _snapshot(self):
        copy = sqlite3.connect(":memory:")
        with self.engine.db.writer.connect() as connection:
            connection.connection.driver_connection.backup(copy)
        return copy, self.clock.now()

    def _restore(self, saved) -> None:
        copy, now = saved
        with self.engine.db.writer.connect() as connection:
            copy.backup(connection.connection.driver_connection)
        self.clock.move_to(now)


def replay(port, key: str, path: Path) -> list[str]:
    """Drive a case through `port` with a path's choices, then its linked cases with default answers;
    returns the problems seen (none: the same path to the same end)."""
    root = port.start(key)
    for choice in path.choices:
        cases = [port.case(root)]
        found = next_task(cases)
        if found is None or found[1]["element_id"] != choice.element_id:
            return [f"expected {choice.element_id}, found {found}"]
        take(port, cases, choice, port.task(found[1]["id"]))
    case = port.case(root)
    problems = check_end(port, [case])
    if [case["status"]] != path.statuses:
        problems.append(f"the case ends {case['status']}, in-process it ended {path.statuses}")
    for child in case["child_cases"]:
        problems += drive_with_defaults(port, child)
    return problems
