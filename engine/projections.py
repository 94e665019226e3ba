"""Small projections shared by commands, reads and the API: a lane's role, a row version's ETag, and a
sealed audit event as a row."""
from __future__ import annotations

import json
from datetime import datetime


def lane_role(lane: str | None) -> str | None:
    """The role that may complete tasks of a lane: its name lower-cased, spaces as '-'."""
    return "-".join(lane.lower().split()) if lane else None


def etag_of(row_version: int) -> str:
    return f'"v{row_version}"'


def event_row(chain: str, event: dict, at: datetime) -> dict:
    """A sealed audit event as a row of the events table. The row keeps no case id (the chain is the case's),
    no previous hash (the event before it has it) and no definition hash (the definitions row has it: the
    events of a command are sealed with the hash of the version they ran on, engine/case_state.recorder_for
    and the deployments' recorder); the public form reads them back (audit.event_from_row)."""
    return {"chain": chain, "seq": event["seq"], "at": at, "type": event["type"], "actor": event["actor"],
            "element_id": event["element_id"], "element_name": event["element_name"], "lane": event["lane"],
            "definition": event["definition"], "version": event["version"],
            "data_changes": json.dumps(event["data_changes"]), "details": json.dumps(event["details"]),
            "hash": bytes.fromhex(event["hash"]), "element_definition": event.get("element_definition")}
