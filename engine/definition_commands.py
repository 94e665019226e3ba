"""Deploying definitions and reading them back."""
from __future__ import annotations

import json
import uuid
from datetime import datetime

from sqlalchemy.exc import IntegrityError

from . import store
from .audit import GENESIS, Recorder, seal
from .clock import rfc3339
from .deployment import compile_bundle
from .errors import ConcurrentUpdate, DefinitionNotFound
from .projections import event_row

DEPLOYMENT_CHAIN = "definitions"


class DefinitionCommands:
    def validate(self, files: list[tuple[str, bytes]]) -> None:
        with self.db.reader.connect() as conn:
            known = store.deployed_keys(conn)
        compile_bundle(files, known, self.settings.limits)

    def deploy(self, files: list[tuple[str, bytes]], actor: str) -> tuple[bool, list[dict]]:
        """Deploy an upload; returns (anything new?, one entry per process). Identical content keeps the
        existing version; changed content becomes the next version. All or nothing."""
        with self.db.reader.connect() as conn:
            known = store.deployed_keys(conn)
        compiled = compile_bundle(files, known, self.settings.limits)
        now = self._now()
        results, created_any = [], False
        try:
            with self.db.writer.begin() as conn:
                for definition in compiled:
                    latest = store.find_definition(conn, definition.key)
                    if latest is not None and latest.hash == definition.hash:
                        results.append({**self._definition_summary(latest), "created": False})
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
                                    "deployed_by": actor, "created": True})
        except IntegrityError:
            raise ConcurrentUpdate("another deployment of the same definition finished first; "
                                   "deploy again to get the next version") from None
        return created_any, results

    @staticmethod
    def _record_deployment(conn, values: dict, actor: str, now: datetime) -> None:
        """Deployments form their own chain ("definitions"): who deployed which content, when."""
        seq, prev_hash = store.chain_head(conn, DEPLOYMENT_CHAIN)
        recorder = Recorder(None, actor, now, values["key"], values["version"], values["hash"], {}, {})
        recorder.add("definition_deployed", details={"name": values["name"], "file": values["bpmn_file"]})
        rows, _, _ = seal(recorder, seq, prev_hash or GENESIS)
        store.insert_events(conn, [event_row(DEPLOYMENT_CHAIN, row, now) for row in rows])

    @staticmethod
    def _definition_summary(row) -> dict:
        return {"key": row.key, "name": row.name, "version": row.version, "hash": row.hash,
                "deployed_at": rfc3339(row.deployed_at), "deployed_by": row.deployed_by}

    def list_definitions(self) -> list[dict]:
        with self.db.reader.connect() as conn:
            return [self._definition_summary(row) for row in store.latest_definitions(conn)]

    def get_definition(self, key: str) -> dict:
        with self.db.reader.connect() as conn:
            latest = store.find_definition(conn, key)
            if latest is None:
                raise DefinitionNotFound(f"no definition with key '{key}' is deployed")
            versions = store.definition_versions(conn, key)
        meta = json.loads(latest.meta)
        return {**self._definition_summary(latest),
                "versions": [self._definition_summary(row) for row in versions],
                "lanes": meta["lanes"], "calls": meta["calls"],
                "user_tasks": [{"element_id": t["element_id"], "name": t["name"], "lane": t["lane"],
                                "documentation": t["documentation"], "form": t["form"] or {"type": "object"}}
                               for t in meta["user_tasks"]]}

    def definition_source(self, key: str, version: int) -> tuple[str, bytes]:
        with self.db.reader.connect() as conn:
            row = store.find_definition(conn, key, version)
            if row is None:
                raise DefinitionNotFound(f"definition '{key}' has no version {version}")
            return row.bpmn_file, store.definition_file(conn, row.id, row.bpmn_file)

