"""JSON Schemas of request and response bodies: used to check requests and to write the OpenAPI document."""
from __future__ import annotations

from usm_engine.engine.store import MAX_VERSION

_TIME = {"type": "string", "format": "date-time"}
_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}

START_CASE = {
    "type": "object",
    "properties": {
        "definition": {"type": "string", "minLength": 1, "maxLength": 255},
        "version": {"type": "integer", "minimum": 1, "maximum": MAX_VERSION},
        "business_key": {"type": ["string", "null"], "maxLength": 255},
        "data": {"type": "object"},
    },
    "required": ["definition"],
    "additionalProperties": False,
}

_WORKER = {"type": "string", "minLength": 1, "maxLength": 255, "description": "the worker that holds the lock"}
_LOCK_SECONDS = {"type": "integer", "minimum": 1, "maximum": 86400}

COMPLETE_TASK = {
    "type": "object",
    "properties": {"data": {"type": "object"},
                   "worker": {**_WORKER, "description": "external tasks: the worker that holds the lock"}},
    "additionalProperties": False,
}

LOCK_EXTERNAL_TASKS = {
    "type": "object",
    "properties": {
        "worker": {**_WORKER, "description": "who takes the lock"},
        "topics": {"type": "array", "minItems": 1, "maxItems": 50,
                   "items": {"type": "string", "minLength": 1, "maxLength": 255}},
        "max_tasks": {"type": "integer", "minimum": 1, "maximum": 100, "default": 1},
        "lock_seconds": {**_LOCK_SECONDS, "default": 300},
    },
    "required": ["worker", "topics"],
    "additionalProperties": False,
}

EXTEND_LOCK = {
    "type": "object",
    "properties": {"worker": _WORKER,
                   "lock_seconds": {**_LOCK_SECONDS, "description": "the lock now ends this many seconds from now"}},
    "required": ["worker", "lock_seconds"],
    "additionalProperties": False,
}

FAIL_TASK = {
    "type": "object",
    "properties": {"worker": _WORKER,
                   "message": {"type": "string", "minLength": 1, "maxLength": 2000,
                               "description": "what went wrong; it becomes the case's incident"}},
    "required": ["worker", "message"],
    "additionalProperties": False,
}

SEND_MESSAGE = {
    "type": "object",
    "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 255}, "data": {"type": "object"}},
    "required": ["name"],
    "additionalProperties": False,
}

ROUTE_MESSAGE = {
    "type": "object",
    "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 255},
                   "business_key": {"type": ["string", "null"], "maxLength": 255},
                   "correlation": {"type": "object"}, "data": {"type": "object"}},
    "required": ["name"],
    "additionalProperties": False,
}

RETRY = {"type": "object", "properties": {"data": {"type": "object"}}, "additionalProperties": False}

EMPTY = {"type": "object", "additionalProperties": False}

TASK_SUMMARY = {
    "type": "object",
    "properties": {
        "id": {"type": "string"}, "element_id": {"type": "string"}, "name": {"type": ["string", "null"]},
        "lane": {"type": ["string", "null"]}, "state": {"type": "string"}, "created_at": _TIME,
        "topic": {"type": "string", "description": "present on an external service task: the topic its worker fetches"},
    },
    "required": ["id", "element_id", "name", "lane", "state", "created_at"],
}

INCIDENT = {
    "type": "object",
    "properties": {"element_id": {"type": ["string", "null"]}, "element_name": {"type": ["string", "null"]},
                   "definition": {"type": ["string", "null"], "description": "the definition holding the element: "
                                  "the case's own or one it called"},
                   "process_id": {"type": "string", "description": "the BPMN process the element is in"},
                   "line": {"type": ["integer", "null"], "description": "the line of the script that failed"},
                   "message": {"type": "string", "description": "what happened, in a sentence"},
                   "action": {"type": "string", "description": "what a person can do about it, in a sentence"},
                   "task_id": {"type": "string", "description": "the external task a worker reported a failure "
                               "on, or whose completion the model failed (a declared output left out): a retry's "
                               "data goes to it"},
                   "reported_by": {"type": "string", "description": "who reported the failure"}},
    "required": ["element_id", "element_name", "definition", "message", "action"],
}

CASE = {
    "type": "object",
    "properties": {
        "id": {"type": "string"}, "definition": {"type": "string"}, "version": {"type": "integer"},
        "business_key": {"type": ["string", "null"]},
        "status": {"enum": ["running", "completed", "cancelled", "error", "suspended"]},
        "workflow": {"type": ["string", "null"]}, "created_at": _TIME, "updated_at": _TIME,
        "data": {"type": "object"}, "tasks": {"type": "array", "items": {"$ref": "#/components/schemas/TaskSummary"}},
        "waiting_for": {"type": "array", "items": {"type": "object", "properties": {
            "type": {"type": "string"}, "name": {"type": ["string", "null"]}, "due_at": _NULLABLE_TIME},
            "required": ["type"]}},
        "parent_case": {"type": ["string", "null"]},
        "child_cases": {"type": "array", "items": {"type": "string"}},
        "incident": {"$ref": "#/components/schemas/Incident"},
        "etag": {"type": "string"},
    },
    "required": ["id", "definition", "version", "business_key", "status", "workflow", "created_at", "updated_at",
                 "data", "tasks", "waiting_for", "parent_case", "etag"],
}

TASK = {
    "type": "object",
    "properties": {
        "id": {"type": "string"}, "case_id": {"type": "string"}, "definition": {"type": "string"},
        "element_id": {"type": "string"}, "name": {"type": ["string", "null"]}, "lane": {"type": ["string", "null"]},
        "state": {"enum": ["ready", "completed", "cancelled"]}, "created_at": _TIME, "ended_at": _NULLABLE_TIME,
        "completed_by": {"type": ["string", "null"]},
        "topic": {"type": ["string", "null"], "description": "an external service task's topic; null for user tasks"},
        "locked_by": {"type": ["string", "null"], "description": "the worker holding the lock on an external task"},
        "locked_until": _NULLABLE_TIME,
        "form": {"type": "object", "description": "JSON Schema (draft 2020-12) of the data this task accepts"},
        "documentation": {"type": ["string", "null"]},
    },
    "required": ["id", "case_id", "definition", "element_id", "name", "lane", "state", "created_at", "form",
                 "documentation"],
}

_KEYS = {"type": "array", "items": {"type": "string"}}

DEFINITION = {
    "type": "object",
    "properties": {"key": {"type": "string"}, "name": {"type": "string"}, "version": {"type": "integer"},
                   "hash": {"type": "string"}, "deployed_at": _TIME, "deployed_by": {"type": "string"}},
    "required": ["key", "name", "version", "hash", "deployed_at", "deployed_by"],
}

DEFINITION_LINKS = {
    "type": "object",
    "properties": {
        "startable": {"type": "boolean", "description": "POST /api/v1/cases accepts it (false: it is only called by "
                      "other definitions, or starts on one of several messages)"},
        "start": {"type": "object", "properties": {
            "plain": {"type": "boolean", "description": "a started case begins at a plain start event"},
            "messages": {**_KEYS, "description": "messages that start a case of it (POST /api/v1/messages); a "
                         "case started directly on its only message start event gets its data as that message"}},
            "required": ["plain", "messages"]},
        "calls": {**_KEYS, "description": "definitions its call activities run inside its cases"},
        "called_by": {**_KEYS, "description": "definitions whose call activities run it"},
        "starts": {**_KEYS, "description": "definitions it starts as linked cases through the messages it throws"},
    },
    "required": ["startable", "start", "calls", "called_by", "starts"],
}

DEFINITION_ITEM = {"allOf": [{"$ref": "#/components/schemas/Definition"}, DEFINITION_LINKS]}

DEFINITION_DETAIL = {
    "allOf": [{"$ref": "#/components/schemas/Definition"}, DEFINITION_LINKS],
    "type": "object",
    "properties": {
        "versions": {"type": "array", "items": {"$ref": "#/components/schemas/Definition"}},
        "lanes": {"type": "array", "items": {"type": "string"}},
        "user_tasks": {"type": "array", "items": {"type": "object", "properties": {
            "element_id": {"type": "string"}, "name": {"type": ["string", "null"]},
            "lane": {"type": ["string", "null"]}, "documentation": {"type": ["string", "null"]},
            "form": {"type": "object"}}}},
        "start_inputs": {"type": "object", "description": "JSON Schema of the variables the latest version's "
                         "conditions and multi-instance collections read that nothing in the model sets, typed "
                         "from their use: start a case with them in its data (the deploy warned of each)"},
    },
    "required": ["versions", "lanes", "user_tasks", "start_inputs"],
}

# What deploys, but not as drawn (e.g. a data store kept as documentation): located like a problem.
WARNINGS = {"type": "array", "items": {"type": "object", "properties": {
    "file": {"type": ["string", "null"]}, "line": {"type": ["integer", "null"]},
    "element_id": {"type": ["string", "null"]}, "message": {"type": "string"}}, "required": ["message"]}}

DEPLOYMENT = {
    "type": "object",
    "properties": {"items": {"type": "array", "items": {"allOf": [
        {"$ref": "#/components/schemas/Definition"},
        {"type": "object", "properties": {"created": {"type": "boolean"}, "warnings": WARNINGS},
         "required": ["created", "warnings"]}]}}},
    "required": ["items"],
}

VALIDATION = {"type": "object", "properties": {"valid": {"const": True}, "warnings": WARNINGS},
              "required": ["valid", "warnings"]}

PROBLEM = {
    "type": "object",
    "properties": {
        "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object", "properties": {
            "field": {"type": "string"}, "file": {"type": ["string", "null"]}, "line": {"type": ["integer", "null"]},
            "element_id": {"type": ["string", "null"]}, "message": {"type": "string"}}, "required": ["message"]}},
    },
    "required": ["type", "title", "status", "detail"],
}

HEALTH = {"type": "object", "properties": {"status": {"type": "string"}, "database": {"type": "string"}},
          "required": ["status", "database"]}

_LINK = {
    "type": "object",
    "properties": {"href": {"type": "string", "description": "a path on this server"},
                   "type": {"type": "string", "description": "the media type it answers"},
                   "title": {"type": "string"},
                   "needs_token": {"type": "boolean", "description": "it answers 401 without a bearer token"},
                   "templated": {"type": "boolean", "description": "href holds {placeholders} to fill in"}},
    "required": ["href", "type", "title", "needs_token"],
}

INDEX = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "description": {"type": "string"},
                   "api_version": {"type": "string"},
                   "links": {"type": "object", "additionalProperties": _LINK}},
    "required": ["name", "description", "api_version", "links"],
}


def page_of(item_ref: str) -> dict:
    return {"type": "object", "properties": {
        "items": {"type": "array", "items": {"$ref": f"#/components/schemas/{item_ref}"}},
        "next": {"type": ["string", "null"]}}, "required": ["items", "next"]}


EVENT = {
    "type": "object",
    "properties": {
        "seq": {"type": "integer"}, "at": _TIME, "case_id": {"type": ["string", "null"]}, "type": {"type": "string"},
        "actor": {"type": "string"}, "element_id": {"type": ["string", "null"]},
        "element_name": {"type": ["string", "null"]}, "lane": {"type": ["string", "null"]},
        "element_definition": {"type": "string", "description": "the definition the element belongs to: the "
                               "case's own or one it called (element ids are unique only within a definition)"},
        "definition": {"type": ["string", "null"]}, "version": {"type": ["integer", "null"]},
        "definition_hash": {"type": ["string", "null"]},
        "data_changes": {"type": "object", "additionalProperties": {"type": "array", "minItems": 2, "maxItems": 2}},
        "details": {"type": "object"}, "hash": {"type": "string"},
        "prev_hash": {"type": ["string", "null"],
                      "description": "the hash of the event before (GENESIS for the first); null when that event "
                                     "is missing from the store: /api/v1/audit/verify says where"},
    },
    "required": ["seq", "at", "case_id", "type", "actor", "element_id", "data_changes", "prev_hash", "hash"],
}

VERIFICATION = {
    "type": "object",
    "properties": {"ok": {"type": "boolean"}, "cases": {"type": "integer"}, "events": {"type": "integer"},
                   "broken": {"type": "object", "properties": {"case_id": {"type": ["string", "null"]},
                                                               "chain": {"type": "string"},
                                                               "seq": {"type": "integer"},
                                                               "reason": {"type": "string"}}},
                   "next": {"type": ["string", "null"], "description": "the cursor of the next page of cases to "
                            "verify; null on the last page"}},
    "required": ["ok", "cases", "events"],
}

REQUIREMENT = {
    "type": "object",
    "properties": {
        "ref": {"type": "string"}, "standard": {"type": "string"}, "id": {"type": "string"},
        "title": {"type": "string"}, "note": {"type": ["string", "null"]},
        "activities": {"type": "array", "items": {"type": "object", "properties": {
            "definition": {"type": "string"}, "element_id": {"type": "string"}, "name": {"type": ["string", "null"]},
            "lane": {"type": ["string", "null"]}}, "required": ["definition", "element_id"]}},
    },
    "required": ["ref", "standard", "id", "title", "activities"],
}

COMPONENTS = {
    "Case": CASE, "CasePage": page_of("Case"), "Task": TASK, "TaskPage": page_of("Task"),
    "TaskSummary": TASK_SUMMARY, "Incident": INCIDENT, "Definition": DEFINITION,
    "DefinitionList": {"type": "object", "properties": {"items": {"type": "array", "items": DEFINITION_ITEM}},
                       "required": ["items"]},
    "DefinitionDetail": DEFINITION_DETAIL, "Deployment": DEPLOYMENT, "Validation": VALIDATION,
    "Problem": PROBLEM, "Health": HEALTH, "Index": INDEX, "StartCase": START_CASE, "CompleteTask": COMPLETE_TASK,
    "SendMessage": SEND_MESSAGE, "RouteMessage": ROUTE_MESSAGE, "Retry": RETRY, "Requirement": REQUIREMENT,
    "LockExternalTasks": LOCK_EXTERNAL_TASKS, "FailTask": FAIL_TASK, "ExtendLock": EXTEND_LOCK,
    "LockedTasks": {"type": "object", "properties": {"items": {"type": "array", "items": {"allOf": [
        {"$ref": "#/components/schemas/Task"},
        {"type": "object", "properties": {"data": {"type": "object", "description": "the case data"},
                                          "business_key": {"type": ["string", "null"]},
                                          "parameters": {"type": "object", "description": (
                                              "the literal parameters the model gives the job (a SpiffWorkflow "
                                              "service task operator's); absent when it gives none")}},
         "required": ["data", "business_key"]}]}}}, "required": ["items"]},
    "ComplianceList": {"type": "object", "properties": {"items": {"type": "array", "items": {
        "$ref": "#/components/schemas/Requirement"}}}, "required": ["items"]},
    "RequirementCases": {"type": "object", "properties": {
        "requirement": {"$ref": "#/components/schemas/Requirement"},
        "items": {"type": "array", "items": {"type": "object", "properties": {
            "case_id": {"type": "string"}, "definition": {"type": "string"}, "version": {"type": "integer"},
            "business_key": {"type": ["string", "null"]}, "status": {"type": "string"}, "created_at": _TIME,
            "executed": {"type": "array", "items": {"type": "string"}}, "trail": {"type": "string"},
            "diagram": {"type": "string"}}, "required": ["case_id", "executed", "trail"]}},
        "next": {"type": ["string", "null"]}}, "required": ["requirement", "items", "next"]},
    "Event": EVENT, "Verification": VERIFICATION,
    "Trail": {"type": "object",
              "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}}},
              "required": ["items"]},
}

# --- migrating cases to another version of their definition ---------------------------------------------

_ELEMENT_ID = {"type": "string", "minLength": 1, "maxLength": 255}
_MIGRATION_FIELDS = {
    "to_version": {"type": "integer", "minimum": 1, "maximum": MAX_VERSION,
                   "description": "the version of the same definition to move to"},
    "mapping": {"type": "object", "propertyNames": _ELEMENT_ID, "additionalProperties": _ELEMENT_ID,
                "maxProperties": 1000,
                "description": "element ids of the case's version -> element ids of the target, for elements that "
                               "were renamed or replaced; every other element corresponds by its id"},
    "dry_run": {"type": "boolean", "default": False, "description": "only report what would happen"},
}

MIGRATE_CASE = {"type": "object", "properties": _MIGRATION_FIELDS, "required": ["to_version"],
                "additionalProperties": False}

MIGRATE_CASES = {
    "type": "object",
    "properties": {
        "filter": {"type": "object", "properties": {
            "definition": {"type": "string", "minLength": 1, "maxLength": 255},
            "version": {"type": "integer", "minimum": 1, "maximum": MAX_VERSION,
                        "description": "only cases on this version"},
            "status": {"enum": ["running", "error", "suspended"], "description": "only cases in this status "
                       "(default: all three; finished cases are never migrated)"},
            "waiting_at": {**_ELEMENT_ID, "description": "only cases with a step at this element that has not "
                           "finished (ready, waiting, running or failed)"}},
            "required": ["definition"], "additionalProperties": False},
        **_MIGRATION_FIELDS,
        "limit": {"type": "integer", "minimum": 1, "maximum": 500, "default": 100,
                  "description": "the most cases to consider in this call (at most USM_MAX_PAGE_SIZE)"},
        "cursor": {"type": "string", "maxLength": 512, "description": "the `next` of the previous call"},
    },
    "required": ["filter", "to_version"],
    "additionalProperties": False,
}

MIGRATION = {
    "type": "object",
    "properties": {
        "case_id": {"type": "string"}, "definition": {"type": "string"},
        "from_version": {"type": "integer"}, "to_version": {"type": "integer"},
        "status": {"type": "string", "description": "the case's status before the migration"},
        "dry_run": {"type": "boolean"},
        "result": {"enum": ["migrated", "would_migrate", "refused"]},
        "mapping": {"type": "object", "additionalProperties": {"type": "string"}},
        "missing": {"type": "array", "description": "steps the case has not finished that have no counterpart "
                    "in the target (map them)", "items": {"type": "object", "properties": {
                        "element_id": {"type": "string"}, "element_name": {"type": ["string", "null"]},
                        "state": {"type": "string"}, "message": {"type": "string"}},
                        "required": ["element_id", "message"]}},
        "reasons": {"type": "array", "items": {"type": "string"}, "description": "why it was refused"},
        "case": {"$ref": "#/components/schemas/Case"},
    },
    "required": ["case_id", "definition", "from_version", "to_version", "status", "dry_run", "result", "mapping",
                 "missing", "reasons"],
}

MIGRATION_BATCH = {
    "type": "object",
    "properties": {"dry_run": {"type": "boolean"},
                   "items": {"type": "array", "items": {"$ref": "#/components/schemas/Migration"}},
                   "next": {"type": ["string", "null"], "description": "more cases may match: send it as `cursor`"},
                   "migrated": {"type": "integer"}, "refused": {"type": "integer"}},
    "required": ["dry_run", "items", "next", "migrated", "refused"],
}

SIGN_IN = {  # the form of /login, application/x-www-form-urlencoded
    "type": "object",
    "properties": {"token": {"type": "string", "description": "a token from `usm token create`, or the admin token"},
                   "next": {"type": "string", "description": "a path on this server to go to (else /)"}},
    "required": ["token"],
}
COMPONENTS.update({"SignIn": SIGN_IN, "MigrateCase": MIGRATE_CASE, "MigrateCases": MIGRATE_CASES,
                   "Migration": MIGRATION, "MigrationBatch": MIGRATION_BATCH})


# --- service-level insight (api/routes/insight.py; what each figure means: engine/insight.py) -----------------
def _report(texts: list[str], counts: list[str], seconds: list[str], **more: dict) -> dict:
    """A report of a period: items of these texts, counts and times in whole seconds (null: none)."""
    kinds = [(texts, {"type": ["string", "null"]}), (counts, {"type": "integer", "minimum": 0}),
             (seconds, {"type": ["integer", "null"], "minimum": 0})]
    item = {"type": "object", "properties": {name: kind for names, kind in kinds for name in names},
            "required": [name for names, _ in kinds for name in names if name not in ("workflow", "priority")],
            "additionalProperties": False}
    properties = {"from": _TIME, "to": _TIME, "workflow": kinds[0][1], "priority": kinds[0][1], **more,
                  "items": {"type": "array", "items": item}}
    return {"type": "object", "properties": properties, "required": ["from", "to", "workflow", "priority", *more,
                                                                     "items"]}


_TIMES = ["p50_seconds", "p90_seconds"]
COMPONENTS.update({
    "ServiceLevels": _report(["workflow", "priority"], ["resolved", "met", "breached", "without_target", "open",
                                                        "escalations", "reclassifications"], _TIMES,
                             by={"enum": ["workflow-priority", "workflow", "priority", "total"]}),
    "StepTimes": _report(["process", "element_id", "name", "lane"], ["completed"], _TIMES),
    "Backlog": _report(["lane", "lane_role", "oldest_since"], ["tasks", "open_calls"], ["oldest_age_seconds"])})
