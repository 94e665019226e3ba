"""The compliance cross-reference: requirements (ISO/IEC 20000-1 clauses, ISO/IEC 27001 controls) mapped
to the activities that evidence them, so an auditor can go from a clause to the activities and from
there to every case that executed them.

Files are TOML, one per standard, deployed with the diagrams (definitions/compliance/*.toml):

    standard = "ISO/IEC 20000-1:2018"
    [[requirement]]
    id = "8.6.1"
    title = "Incident management"
    activities = ["usm-recover/Activity_Analyze", ...]     # "<definition key>/<element id>"
    note = "…"                                             # optional

Every activity must name an element of a definition in the same upload or already deployed; anything
else is a deploy-time problem with file and line, and then nothing is deployed.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import PurePosixPath

from .deploy_problems import DeployProblem


@dataclass
class Requirement:
    ref: str            # "<file stem>:<id>", unique across standards
    standard: str
    id: str
    title: str
    note: str | None
    activities: list[str]
    source_file: str


def is_compliance_file(name: str) -> bool:
    return name.lower().endswith(".toml")


def _line_of(text: str, needle: str) -> int | None:
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return number
    return None


def parse(files: list[tuple[str, bytes]]) -> tuple[list[Requirement], list[DeployProblem]]:
    requirements: list[Requirement] = []
    problems: list[DeployProblem] = []
    for name, content in files:
        try:
            text = content.decode("utf-8")
            document = tomllib.loads(text)
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            problems.append(DeployProblem(name, f"the compliance file is not valid TOML: {exc}",
                                          getattr(exc, "lineno", None)))
            continue
        standard = document.get("standard")
        entries = document.get("requirement")
        if not isinstance(standard, str) or not isinstance(entries, list) or not entries:
            problems.append(DeployProblem(
                name, 'a compliance file needs standard = "…" and at least one [[requirement]] table', 1))
            continue
        stem = PurePosixPath(name).stem
        seen = set()
        for number, entry in enumerate(entries, start=1):
            ident, title, activities = entry.get("id"), entry.get("title"), entry.get("activities")
            line = _line_of(text, f'"{ident}"') if isinstance(ident, str) else None
            if not (isinstance(ident, str) and ident and isinstance(title, str) and isinstance(activities, list)
                    and activities and all(isinstance(a, str) for a in activities)):
                problems.append(DeployProblem(name, f"requirement {number} needs id, title and a non-empty list "
                                              'of activities ("<definition key>/<element id>")', line))
                continue
            if ident in seen:
                problems.append(DeployProblem(name, f"requirement '{ident}' appears twice in this file", line))
                continue
            seen.add(ident)
            note = entry.get("note") if isinstance(entry.get("note"), str) else None
            requirements.append(Requirement(f"{stem}:{ident}", standard, ident, title, note, activities, name))
    return requirements, problems


def check_references(requirements: list[Requirement], elements_by_key: dict[str, dict],
                     texts: dict[str, str]) -> list[DeployProblem]:
    """Problems for activities that name no definition, or no element of it."""
    problems = []
    for requirement in requirements:
        for activity in requirement.activities:
            key, _, element_id = activity.partition("/")
            line = _line_of(texts.get(requirement.source_file, ""), f'"{activity}"')
            if not element_id:
                message = f"'{activity}' must be written '<definition key>/<element id>'"
            elif key not in elements_by_key:
                message = (f"requirement {requirement.id} names '{activity}', but no definition '{key}' is in the "
                           "upload or deployed")
            elif element_id not in elements_by_key[key]:
                message = (f"requirement {requirement.id} names '{activity}', but definition '{key}' has no "
                           f"element '{element_id}'")
            else:
                continue
            problems.append(DeployProblem(requirement.source_file, message, line, element_id))
    return problems
