"""The cases part of the conformance report: counts per folder, incidents and their causes, crashes."""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import asdict

from .conformance_run import CaseResult

OUTCOMES = ("completed", "waiting", "incident", "limit", "stopped", "crashed")


def folder_of(file: str) -> str:
    return file.split("/")[0] if "/" in file else "."


def counts(cases: list[CaseResult]) -> dict:
    """Cases started and each outcome; incidents split by owner; the share that completed or waits."""
    found = Counter(case.outcome for case in cases)
    owners = Counter(case.owner for case in cases if case.outcome == "incident")
    settled = found["completed"] + found["waiting"]
    return {"started": len(cases), **{outcome: found[outcome] for outcome in OUTCOMES},
            "model_incidents": owners["model"], "engine_incidents": owners["engine"],
            "completed_or_waiting_percent": round(100 * settled / len(cases), 1) if cases else None}


def case_faults(cases: list[CaseResult]) -> list[str]:
    """The engine's own failures: a crash, and an incident whose cause is the engine's, not the model's."""
    return [f"{case.file}: a case of '{case.definition}' crashed: {case.detail}" if case.outcome == "crashed" else
            f"{case.file}: a case of '{case.definition}' met an incident of the engine: {case.detail}"
            for case in cases if case.outcome == "crashed" or (case.outcome == "incident" and case.owner == "engine")]


def as_dict(cases: list[CaseResult], not_started: int, seconds: float) -> dict:
    by_folder: dict[str, list[CaseResult]] = {}
    for case in cases:
        by_folder.setdefault(folder_of(case.file), []).append(case)
    return {**counts(cases), "definitions_not_started": not_started, "seconds": round(seconds, 1),
            "by_folder": {folder: counts(found) for folder, found in sorted(by_folder.items())},
            "incidents": [{"file": c.file, "definition": c.definition, "element": c.element, "owner": c.owner,
                           "cause": c.cause, "message": c.detail} for c in cases if c.outcome == "incident"],
            "results": [asdict(case) for case in cases]}


def markdown(cases: list[CaseResult], not_started: int, seconds: float) -> list[str]:
    total = counts(cases)
    lines = ["", "## Cases", "",
             f"Every startable definition of every deployed file started once (with random data of its start "
             f"event's form, if it has one, else none) and driven (user tasks with random data their JSON Schema or "
             f"Camunda form accepts, external tasks and Java service tasks by a stub worker, timers by moving the "
             f"clock): "
             f"{total['started']} cases in {seconds:.0f} s; {total['completed']} completed, {total['waiting']} "
             f"waiting on an event, {total['incident']} incidents ({total['model_incidents']} of the model, "
             f"{total['engine_incidents']} of the engine), {total['limit']} at a limit, {total['stopped']} stopped, "
             f"{total['crashed']} crashed. Completed or waiting: {total['completed_or_waiting_percent']} %. "
             f"Definitions not started (only called, or several message starts): {not_started}.", "",
             "| folder | started | completed | waiting | incident (model / engine) | limit | stopped | crashed |",
             "|---|---|---|---|---|---|---|---|"]
    folders: dict[str, list[CaseResult]] = {}
    for case in cases:
        folders.setdefault(folder_of(case.file), []).append(case)
    for folder, found in [*sorted(folders.items()), ("**all**", cases)]:
        c = counts(found)
        lines.append(f"| {folder} | {c['started']} | {c['completed']} | {c['waiting']} | {c['incident']} "
                     f"({c['model_incidents']} / {c['engine_incidents']}) | {c['limit']} | {c['stopped']} | "
                     f"{c['crashed']} |")
    lines += _causes(cases)
    lines += _listing("Incidents", [c for c in cases if c.outcome == "incident"],
                      lambda c: f"{c.owner}: `{c.element}`: {c.detail}")
    lines += _listing("Waiting", [c for c in cases if c.outcome == "waiting"], lambda c: f"for {c.detail}")
    lines += _listing("Limits, stops and crashes", [c for c in cases if c.outcome in ("limit", "stopped", "crashed")],
                      lambda c: f"{c.outcome}: {c.detail}")
    return lines


def _causes(cases: list[CaseResult]) -> list[str]:
    found = Counter((case.owner, case.cause) for case in cases if case.outcome == "incident")
    examples: dict[tuple, str] = {}
    for case in cases:
        examples.setdefault((case.owner, case.cause), case.file)
    return ["", "### Incident causes", "", "| cases | owner | cause | example |", "|---|---|---|---|",
            *(f"| {n} | {owner} | {cause} | `{examples[(owner, cause)]}` |"
              for (owner, cause), n in found.most_common())]


def _listing(title: str, cases: list[CaseResult], describe: Callable[[CaseResult], str]) -> list[str]:
    if not cases:
        return []
    return ["", f"### {title}", "", *(f"- `{c.file}` ({c.definition}): {describe(c)}" for c in cases)]
