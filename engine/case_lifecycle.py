"""Commands on a case as a whole: cancel it, suspend and resume it, retry it after an incident."""
from __future__ import annotations

import json
from typing import Any

from SpiffWorkflow.util.task import TaskState
from sqlalchemy.engine import Row

from .audit import data_changes
from .case_work import open_case
from .data_limits import check_incoming_data
from .errors import Conflict
from .incidents import Incident
from .parts import EngineParts
from .runner import Outcome, external_task, run_failed_again


def cancel_case(parts: EngineParts, case_id: str, actor: str, if_match: str | None) -> dict:
    work = open_case(parts, case_id, actor, _must_not_have_finished, if_match)
    work.workflow.cancel()
    return work.save(Outcome.cancelled(json.loads(work.row.data)))


def suspend_case(parts: EngineParts, case_id: str, actor: str, if_match: str | None) -> dict:
    """Hold a case: it refuses completions, messages and timers until resumed."""
    work = open_case(parts, case_id, actor, _must_be_running_or_in_error, if_match)
    work.recorder.add("case_suspended", previous_status=work.row.status)
    return work.save_status("suspended")


def resume_case(parts: EngineParts, case_id: str, actor: str, if_match: str | None) -> dict:
    work = open_case(parts, case_id, actor, _must_be_suspended, if_match)
    work.recorder.add("case_resumed", previous_status=work.row.status)
    # Back to where it was: an unresolved incident stays an incident.
    return work.save_status("error" if work.row.incident else "running")


def retry_case(parts: EngineParts, case_id: str, actor: str, data: dict, if_match: str | None) -> dict:
    """After an incident: merge `data` into the failed step, run it again, and carry on."""
    work = open_case(parts, case_id, actor, _must_have_an_incident, if_match)
    check_incoming_data(data, parts.settings.max_case_data_bytes)
    workflow, row = work.workflow, work.row
    if workflow.is_completed():
        raise Conflict("this incident cannot be retried: the process already ended (an uncaught BPMN error); "
                       "cancel the case and start a new one")
    failed = workflow.get_tasks(state=TaskState.ERROR)
    incident = Incident.from_dict(json.loads(row.incident) if row.incident else {}, row.definition_key)
    # a worker's failure leaves its task waiting, not in error: the retry data goes there
    targets = failed or [t for t in [external_task(workflow, work.blueprint, incident.task_id or "")] if t]
    work.recorder.add("case_retried", incident.element_id,
                      data_changes({k: targets[0].data.get(k) for k in data} if targets else {}, data),
                      process=incident.process_id, incident=incident.message)
    for task in targets:
        task.data.update(data)
    return work.save(run_failed_again(workflow, work.blueprint, failed, work.recorder))


def _must_not_have_finished(row: Row[Any]) -> None:
    if row.status in ("completed", "cancelled"):
        raise Conflict(f"the case is already {row.status}; only a case that has not finished can be cancelled")


def _must_be_running_or_in_error(row: Row[Any]) -> None:
    if row.status not in ("running", "error"):
        raise Conflict(f"only a running case or one with an incident can be suspended; this one is {row.status}")


def _must_be_suspended(row: Row[Any]) -> None:
    if row.status != "suspended":
        raise Conflict(f"only a suspended case can be resumed; this one is {row.status}")


def _must_have_an_incident(row: Row[Any]) -> None:
    if row.status != "error":
        raise Conflict(f"only a case with an incident can be retried; this one is {row.status}")
