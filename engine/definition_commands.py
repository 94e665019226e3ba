"""Deploying definitions and reading them back."""
from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError

from . import compliance, definition_diff, store, store_compliance
from .audit import DEPLOYMENT_CHAIN, GENESIS, Recorder, seal
from .blueprints import SpecCache
from .catalogue import Catalogue, load_catalogue
from .clock import rfc3339
from .compliance import Requirement, is_compliance_file
from .database import Database
from .deploy_problems import refusal
from .deployment import CompiledDefinition, compile_bundle
from .errors import ConcurrentUpdate, DefinitionNotFound, NotFound
from .projections import event_row
from .settings import EngineSettings


class DefinitionCommands:
    """The Engine's commands and reads about definitions (service.py provides what is declared here)."""

    db: Database
    settings: EngineSettings
    specs: SpecCache
    _now: Callable[[], datetime]

    def validate(self, files: list[tuple[str, bytes]]) -> list[dict]:
        """Raises DefinitionInvalid listing the problems; returns the warnings (what would deploy, but not
        as drawn)."""
        compiled, _, _ = self._compile_upload(files)
        return [warning for definition in compiled for warning in definition.warnings]

    def _compile_upload(self, files: list[tuple[str, bytes]]
                        ) -> tuple[list[CompiledDefinition], list[Requirement], list[str]]:
        """Diagrams through compile_bundle, compliance files checked against them; all problems or none."""
        diagrams = [(name, content) for name, content in files if not is_compliance_file(name)]
        compliance_files = [(name, content) for name, content in files if is_compliance_file(name)]
        with self.db.reader.connect() as conn:
            known = store.deployed_keys(conn)
        compiled = (compile_bundle(diagrams, known, self.settings.limits, self.settings.max_instances)
                    if diagrams or not compliance_files else [])
        requirements, problems = compliance.parse(compliance_files)
        if requirements:
            wanted = {activity.partition("/")[0] for r in requirements for activity in r.activities}
            with self.db.reader.connect() as conn:
                elements = store_compliance.latest_elements(conn, wanted)
            elements.update({definition.key: definition.meta["elements"] for definition in compiled})
            texts = {name: content.decode("utf-8", errors="replace") for name, content in compliance_files}
            problems += compliance.check_references(requirements, elements, texts)
        if problems:
            first = problems[0]
            raise refusal(problems, f"the compliance cross-reference is not valid: {first.file}"
                                    f"{':' + str(first.line) if first.line else ''}: {first.message}")
        return compiled, requirements, [name for name, _ in compliance_files]

    def deploy(self, files: list[tuple[str, bytes]], actor: str) -> tuple[bool, list[dict]]:
        """Deploy an upload; returns (anything new?, one entry per process). Identical content keeps the
        existing version; changed content becomes the next version. All or nothing."""
        compiled, requirements, compliance_files = self._compile_upload(files)
        now = self._now()
        results, created_any = [], False
        try:
            with self.db.writer.begin() as conn:
                store.lock_deployments(conn)
                if compliance_files:
                    store_compliance.replace_compliance(conn, compliance_files, [
                        {"ref": r.ref, "standard": r.standard, "requirement_id": r.id, "title": r.title,
                         "note": r.note, "activities": json.dumps(r.activities), "source_file": r.source_file,
                         "deployed_at": now, "deployed_by": actor} for r in requirements])
                for definition in compiled:
                    latest = store.find_definition(conn, definition.key)
                    if latest is not None and latest.hash == definition.hash:
                        results.append({**self._definition_summary(latest), "created": False,
                                        "warnings": definition.warnings})
                        continue
                    version = (latest.version + 1) if latest is not None else 1
                    values = {"id": str(uuid.uuid4()), "key": definition.key, "version": version,
                              "name": definition.name, "hash": definition.hash,
                              "bpmn_file": definition.bpmn_file, "deployed_at": now, "deployed_by": actor,
                              "spec": json.dumps(definition.spec), "embedded": json.dumps(definition.embedded),
                              "meta": json.dumps(definition.meta)}
                    store.insert_definition(conn, values, definition.sources)
                    self._record_deployment(conn, values, actor, now)
                    created_any = True
                    results.append({"key": definition.key, "name": definition.name, "version": version,
                                    "hash": definition.hash, "deployed_at": rfc3339(now),
                                    "deployed_by": actor, "created": True, "warnings": definition.warnings})
        except IntegrityError:
            raise ConcurrentUpdate("another deployment of the same definition finished first; "
                                   "deploy again to get the next version") from None
        return created_any, results

    @staticmethod
    def _record_deployment(conn: Connection, values: dict, actor: str, now: datetime) -> None:
        """Deployments form their own chain ("definitions"): who deployed which content, when."""
        seq, prev_hash = store.chain_head(conn, DEPLOYMENT_CHAIN)
        recorder = Recorder(None, actor, now, values["key"], values["version"], values["hash"])
        recorder.add("definition_deployed", details={"name": values["name"], "file": values["bpmn_file"]})
        rows, head_seq, head_hash = seal(recorder, seq, prev_hash or GENESIS)
        store.insert_events(conn, [event_row(DEPLOYMENT_CHAIN, row, now) for row in rows])
        store.set_chain_head(conn, DEPLOYMENT_CHAIN, head_seq, head_hash)

    @staticmethod
    def _definition_summary(row: Row[Any]) -> dict:
        return {"key": row.key, "name": row.name, "version": row.version, "hash": row.hash,
                "deployed_at": rfc3339(row.deployed_at), "deployed_by": row.deployed_by}

    def list_definitions(self) -> list[dict]:
        with self.db.reader.connect() as conn:
            rows = store.latest_definitions(conn)
        catalogue = Catalogue({row.key: self.specs.compiled(row.key, row.version) for row in rows})
        return [{**self._definition_summary(row), **catalogue.describe(row.key)} for row in rows]

    def get_definition(self, key: str) -> dict:
        with self.db.reader.connect() as conn:
            latest = store.find_definition(conn, key)
            if latest is None:
                raise DefinitionNotFound(f"no definition with key '{key}' is deployed")
            versions = store.definition_versions(conn, key)
        meta = json.loads(latest.meta)
        return {**self._definition_summary(latest), **load_catalogue(self.db, self.specs).describe(key),
                "versions": [self._definition_summary(row) for row in versions],
                "lanes": meta["lanes"],
                "user_tasks": [{"element_id": t["element_id"], "name": t["name"], "lane": t["lane"],
                                "documentation": t["documentation"], "form": t["form"] or {"type": "object"}}
                               for t in meta["user_tasks"]],
                "start_inputs": meta.get("start_inputs") or {"type": "object", "properties": {}, "required": []}}

    def definition_source(self, key: str, version: int) -> tuple[str, bytes]:
        with self.db.reader.connect() as conn:
            row = store.find_definition(conn, key, version)
            if row is None:
                raise DefinitionNotFound(f"definition '{key}' has no version {version}")
            content = store.definition_file(conn, row.id, row.bpmn_file)
        if content is None:  # the database keeps a version's files with it; this would be a damaged one
            raise DefinitionNotFound(f"definition '{key}' version {version} has lost its file {row.bpmn_file}")
        return row.bpmn_file, content

    # --- compliance cross-reference ------------------------------------------------------------

    def diff_definition(self, key: str, before: int, after: int) -> dict:
        """What changed from one deployed version of a definition to another (definition_diff.py)."""
        versions = []
        with self.db.reader.connect() as conn:
            for version in (before, after):
                row = store.find_definition(conn, key, version)
                if row is None:
                    known = store.definition_versions(conn, key)
                    raise DefinitionNotFound(f"definition '{key}' has no version {version} (it has versions 1 to "
                                             f"{known[-1].version})" if known else
                                             f"no definition with key '{key}' is deployed")
                names = definition_diff.stored_file_names(row.bpmn_file, json.loads(row.meta))
                files = {name: store.definition_file(conn, row.id, name) for name in names}
                versions.append(definition_diff.StoredFiles(
                    row.bpmn_file, {name: content for name, content in files.items() if content is not None}))
        return {"key": key, "from": before, "to": after, **definition_diff.compare(key, *versions)}

    def list_compliance(self) -> list[dict]:
        with self.db.reader.connect() as conn:
            rows = store_compliance.compliance(conn)
            keys = {a.partition("/")[0] for row in rows for a in json.loads(row.activities)}
            elements = store_compliance.latest_elements(conn, keys)
        return [self._requirement(row, elements) for row in rows]

    @staticmethod
    def _requirement(row: Row[Any], elements: dict) -> dict:
        activities = []
        for activity in json.loads(row.activities):
            key, _, element_id = activity.partition("/")
            info = elements.get(key, {}).get(element_id, {})
            activities.append({"definition": key, "element_id": element_id, "name": info.get("name"),
                               "lane": info.get("lane")})
        return {"ref": row.ref, "standard": row.standard, "id": row.requirement_id, "title": row.title,
                "note": row.note, "activities": activities}

    def find_requirement(self, reference: str) -> dict:
        """By its ref ("iso20000:8.6.1") or, when only one standard uses it, by its id ("8.6.1")."""
        requirements = self.list_compliance()
        matches = ([r for r in requirements if r["ref"] == reference]
                   or [r for r in requirements if r["id"] == reference])
        if not matches:
            raise NotFound(f"no requirement '{reference}' in the deployed compliance cross-reference")
        if len(matches) > 1:
            raise NotFound(f"'{reference}' names a requirement in several standards; use one of: "
                           + ", ".join(r["ref"] for r in matches))
        return matches[0]

    def requirement_cases(self, reference: str, cursor: str | None, limit: int) -> tuple[dict, list[dict], str | None]:
        requirement = self.find_requirement(reference)
        activities = sorted({(a["definition"], a["element_id"]) for a in requirement["activities"]})
        with self.db.reader.connect() as conn:
            rows, next_cursor = store_compliance.cases_executing(conn, activities, cursor, limit)
        items = [{"case_id": row.id, "definition": row.definition_key, "version": row.definition_version,
                  "business_key": row.business_key, "status": row.status, "created_at": rfc3339(row.created_at),
                  "executed": executed} for row, executed in rows]
        return requirement, items, next_cursor
