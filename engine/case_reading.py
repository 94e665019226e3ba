"""Reading one case as commands and views need it: its row, the specs it runs on, its restored workflow."""
from __future__ import annotations

import json
from typing import Any

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from sqlalchemy.engine import Connection, Row

from . import store
from .blueprints import Blueprint, SpecCache
from .database import Database
from .errors import CaseNotFound
from .spiff_setup import workflow_from_dict
from .state_json import state_value


def case_row(conn: Connection, case_id: str) -> Row[Any]:
    """The case's row, state included."""
    row = store.get_case(conn, case_id)
    if row is None:
        raise CaseNotFound(f"no case with id '{case_id}'")
    return row


def read_case(db: Database, case_id: str) -> Row[Any]:
    """The case's row, read on a connection of its own."""
    with db.reader.connect() as conn:
        return case_row(conn, case_id)


def blueprint_of(specs: SpecCache, row: Row[Any]) -> Blueprint:
    """The specs the case runs on: its definition version and the called versions it pinned at start."""
    return specs.blueprint(row.definition_key, row.definition_version, json.loads(row.pins))


def restore(row: Row[Any], blueprint: Blueprint, script_engine: PythonScriptEngine) -> BpmnWorkflow:
    """The case's SpiffWorkflow instance, from its stored state, running its scripts in `script_engine`."""
    workflow = workflow_from_dict(state_value(row.state), blueprint.spec, blueprint.subprocess_specs)
    # SpiffWorkflow does not serialize the script engine: without this the restored case would run
    # scripts with the unrestricted default.
    workflow.script_engine = script_engine
    return workflow
