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
    """A sealed audit event as a row of the events table."""
    return {"chain": chain, "seq": event["seq"], "at": at, "case_id": event["case_id"], "type": event["type"],
            "actor": event["actor"], "element_id": event["element_id"], "element_name": event["element_name"],
            "lane": event["lane"], "definition": event["definition"], "version": event["version"],
            "definition_hash": event["definition_hash"], "data_changes": json.dumps(event["data_changes"]),
            "details": json.dumps(event["details"]), "prev_hash": event["prev_hash"], "hash": event["hash"],
            "element_definition": event.get("element_definition")}
