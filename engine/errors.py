"""The engine's exceptions. Each names a situation a caller can act on; the API maps kinds to statuses."""
from __future__ import annotations

from enum import Enum


class NextStep(Enum):
    """What the caller has to do next, named for the API layer, which says how (the engine knows no routes)."""

    LOCK_EXTERNAL_TASKS = "lock_external_tasks"


class EngineError(Exception):
    """Base class. `detail` is a sentence for a person; `errors` lists field- or element-level problems;
    `next_step`, when the sentence tells the caller to do something else first, says which."""

    def __init__(self, detail: str, errors: list[dict] | None = None, next_step: NextStep | None = None):
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []
        self.next_step = next_step


class NotFound(EngineError):
    pass


class DefinitionNotFound(NotFound):
    pass


class CaseNotFound(NotFound):
    pass


class TaskNotFound(NotFound):
    pass


class Conflict(EngineError):
    """The request is valid but the case is not in a state that allows it (409)."""


class TaskNotReady(Conflict):
    pass


class ConcurrentUpdate(Conflict):
    """Another command changed the case between our read and our write; nothing was written."""


class PreconditionFailed(EngineError):
    """The caller's If-Match no longer matches the case (412)."""


class InvalidInput(EngineError):
    """The request is well-formed but its content is not acceptable (422)."""


class DefinitionInvalid(InvalidInput):
    """A deployment failed validation; `errors` carry file, line, element_id and message."""


class IdempotencyMismatch(InvalidInput):
    """The Idempotency-Key was used before with a different request body."""


class TooLarge(EngineError):
    """A configured size limit was exceeded (413)."""


class NotAllowed(EngineError):
    """The caller is known but may not do this (403), e.g. completing a task of a lane it does not hold."""
