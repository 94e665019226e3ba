"""Idempotency keys: the same request sent again with the same key gets the first answer (the case it
went to, as it is now); the same key with a different request is refused rather than guessed at."""
from __future__ import annotations

import hashlib
import json
from typing import Any

from .case_views import get_case
from .errors import IdempotencyMismatch
from .parts import EngineParts


def fingerprint(*request: Any) -> str:
    """What makes two requests the same: their values, whatever the order of keys in their JSON."""
    return hashlib.sha256(json.dumps(list(request), sort_keys=True).encode()).hexdigest()


def earlier_answer(parts: EngineParts, key: str, request_hash: str, earlier: tuple[str, str] | None,
                   what: str) -> dict | None:
    """The case an earlier request with this key went to, given (its fingerprint, its case id); None if
    there was none. `what` names the request in the refusal: "case" or "message"."""
    if earlier is None:
        return None
    earlier_hash, case_id = earlier
    if earlier_hash != request_hash:
        raise IdempotencyMismatch(
            f"the Idempotency-Key '{key}' was already used for a different {what}; use a new key for a new "
            f"{what}", [{"field": "Idempotency-Key", "message": "reused with another body"}])
    return get_case(parts, case_id)
