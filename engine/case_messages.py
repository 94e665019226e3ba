"""BPMN messages from outside: sent to a named case, or routed to the one case that waits for them (or
to a new case of the definition they start), repeat-safe with an idempotency key."""
from __future__ import annotations

import json

from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from . import store_messages
from .case_start import NewCase, WithNewCase, start_on_message
from .case_work import InTransaction, open_case
from .catalogue import load_catalogue
from .data_limits import check_incoming_data
from .errors import Conflict, NotFound
from .idempotency import earlier_answer, fingerprint
from .parts import EngineParts
from .runner import deliver_message, waiting_message_names


def send_message(parts: EngineParts, case_id: str, name: str, data: dict, actor: str, if_match: str | None,
                 in_transaction: InTransaction | None = None) -> dict:
    """Deliver a message to this case; `in_transaction` writes in the save's transaction."""
    work = open_case(parts, case_id, actor, if_match=if_match)
    check_incoming_data(data, parts.settings.max_case_data_bytes)
    if not deliver_message(work.workflow, name, data):
        waiting = sorted(waiting_message_names(work.workflow))
        raise Conflict(f"the case waits for no message named '{name}'" +
                       (f"; it waits for: {', '.join(waiting)}" if waiting else "; it waits for no message"))
    # The catching element records message_received as it runs, with the sender as its actor.
    return work.save(work.advance(), in_transaction=in_transaction)


def route_message(parts: EngineParts, name: str, actor: str, business_key: str | None, correlation: dict | None,
                  data: dict, idempotency_key: str | None) -> tuple[dict, bool]:
    """Deliver a message to the one case that waits for it, or start a case of the definition whose
    message start event it names. Returns (case, started a new case?). With an idempotency key, a
    repeat of the same request returns the case the first one went to, as it is now."""
    check_incoming_data(data, parts.settings.max_case_data_bytes)
    if not idempotency_key:
        return _route(parts, name, actor, business_key, correlation, data, None)
    request_hash = fingerprint(name, business_key, correlation, data)
    repeat = _message_repeat(parts, actor, idempotency_key, request_hash)
    if repeat is not None:
        return repeat, False

    def remember(conn: Connection, case_id: str) -> None:
        store_messages.insert_message_request(conn, {"created_by": actor, "idempotency_key": idempotency_key,
                                                     "request_hash": request_hash, "case_id": case_id,
                                                     "created_at": parts.now()})
    try:
        return _route(parts, name, actor, business_key, correlation, data, remember)
    except IntegrityError:  # the same request, sent again at the same moment, went first
        repeat = _message_repeat(parts, actor, idempotency_key, request_hash)
        if repeat is None:
            raise
        return repeat, False


def _message_repeat(parts: EngineParts, actor: str, key: str, request_hash: str) -> dict | None:
    with parts.db.reader.connect() as conn:
        previous = store_messages.find_message_request(conn, actor, key)
    earlier = (previous.request_hash, previous.case_id) if previous is not None else None
    return earlier_answer(parts, key, request_hash, earlier, "message")


def _route(parts: EngineParts, name: str, actor: str, business_key: str | None, correlation: dict | None,
           data: dict, remember: WithNewCase | None) -> tuple[dict, bool]:
    """`remember` records, in the transaction that delivers or starts, which case the message went to."""
    with parts.db.reader.connect() as conn:
        candidates = store_messages.cases_waiting_for_message(conn, name, business_key)
    correlation = correlation or {}
    waiting = [row for row in candidates if all(
        json.loads(row.data).get(key) == value for key, value in correlation.items())]
    if len(waiting) > 1:
        raise Conflict(f"{len(waiting)} cases wait for message '{name}'; say which with business_key or "
                       "correlation", [{"case_id": row.id, "message": "waits for it"} for row in waiting[:10]])
    if waiting:
        case_id = waiting[0].id
        in_transaction = None if remember is None else lambda conn: remember(conn, case_id)
        return send_message(parts, case_id, name, data, actor, None, in_transaction), False
    started_by = load_catalogue(parts.db, parts.specs).started_by(name)
    if started_by is None:
        raise NotFound(f"no case waits for message '{name}'" +
                       (f" with business key '{business_key}'" if business_key else "") +
                       (" and that correlation" if correlation else "") +
                       ", and no deployed definition starts on it")
    target, by_message_start = started_by
    new = NewCase(target, actor, data, business_key=business_key, start_message=name if by_message_start else None)
    return start_on_message(parts, new, remember), True
