"""What deployment says when it refuses an upload: problems that name file, line and element, in words a
designer can act on. Part of deployment (see deployment.py)."""
from __future__ import annotations

import re
from dataclasses import dataclass

from lxml import etree

from .errors import DefinitionInvalid


@dataclass(frozen=True)
class DeployProblem:
    """One reason an upload cannot be deployed, located as precisely as the check knows."""

    file: str | None
    message: str
    line: int | None = None
    element_id: str | None = None

    def __post_init__(self) -> None:
        # Parsers report line 0 or None when they do not know it, and elements without an id as "".
        if not (isinstance(self.line, int) and self.line > 0):
            object.__setattr__(self, "line", None)
        if not self.element_id:
            object.__setattr__(self, "element_id", None)

    def as_dict(self) -> dict:
        """The problem as the API and the command line show it."""
        return {"file": self.file, "line": self.line, "element_id": self.element_id, "message": self.message}


def refusal(problems: list[DeployProblem], detail: str | None = None) -> DefinitionInvalid:
    """The error that refuses an upload, listing every problem; `detail` defaults to a summary."""
    return DefinitionInvalid(detail or _summary(problems), [problem.as_dict() for problem in problems])


def _summary(problems: list[DeployProblem]) -> str:
    """One sentence: the first problem, where it is, and how many more there are."""
    first = problems[0]
    where = ":".join(str(part) for part in (first.file, first.line) if part)
    if first.element_id:
        where = f"{where} ({first.element_id})".strip()
    location = f"{where}: " if where else ""
    more = f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})" if len(problems) > 1 else ""
    return f"the definition is not valid: {location}{first.message}{more}"


def problem_at(file: str | None, element: etree._Element, message: str) -> DeployProblem:
    """A problem about `element`: its line, and the id of the element or of its nearest ancestor with one."""
    return DeployProblem(file, message, element.sourceline, nearest_id(element))


def nearest_id(element: etree._Element | None) -> str | None:
    while element is not None:
        if element.get("id"):
            return element.get("id")
        element = element.getparent()
    return None


def source_line(element: etree._Element | None) -> int | None:
    return element.sourceline if element is not None else None


def describe(element: etree._Element) -> str:
    """exclusive gateway 'Approved?' (Gateway_1)"""
    return f"{kind(element)} {label(element)}"


def label(element: etree._Element | None = None, name: str | None = None, element_id: str | None = None) -> str:
    """'Approve request' (Activity_1): how messages name an element."""
    if element is not None:
        name, element_id = element.get("name"), element.get("id")
    name = " ".join((name or "").split())  # modelers put line breaks in names
    if name and element_id:
        return f"'{name}' ({element_id})"
    return f"'{name or element_id or '?'}'"


_KINDS = {"subProcess": "subprocess", "adHocSubProcess": "ad-hoc subprocess", "process": "process"}


def kind(element: etree._Element | None = None, tag: str | None = None) -> str:
    """exclusiveGateway -> 'exclusive gateway', for 'the exclusive gateway ...'."""
    local = etree.QName(element).localname if element is not None else (tag or "").split(":")[-1]
    if local in _KINDS:
        return _KINDS[local]
    return re.sub(r"(?<!^)([A-Z])", lambda m: " " + m.group(1).lower(), local) or "element"
