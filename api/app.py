"""The Flask application factory: configuration from the environment, no state in globals."""
from __future__ import annotations

import logging
import os

from flask import Flask

from engine.deployment import Limits
from engine.service import Engine, EngineSettings

from . import logs, metrics, problems
from .auth import TokenRegistry
from .openapi import build_document
from .routes import audit, cases, definitions, diagram, meta, tasks

API_VERSION = "1.0.0"


def settings_from_env(environ=os.environ) -> dict:
    """Every setting, with its default; the README's configuration table lists the same names."""
    return {
        "USM_DATABASE_URL": environ.get("USM_DATABASE_URL", "sqlite:///usm.db"),
        "USM_ADMIN_TOKEN": environ.get("USM_ADMIN_TOKEN") or None,
        "USM_TOKENS_FILE": environ.get("USM_TOKENS_FILE") or None,
        "USM_MAX_BODY_BYTES": int(environ.get("USM_MAX_BODY_BYTES", str(4 * 1024 * 1024))),
        "USM_MAX_DEFINITION_BYTES": int(environ.get("USM_MAX_DEFINITION_BYTES", str(2 * 1024 * 1024))),
        "USM_MAX_ELEMENTS": int(environ.get("USM_MAX_ELEMENTS", "5000")),
        "USM_MAX_CASE_DATA_BYTES": int(environ.get("USM_MAX_CASE_DATA_BYTES", str(1024 * 1024))),
        "USM_MAX_PAGE_SIZE": int(environ.get("USM_MAX_PAGE_SIZE", "500")),
    }


def create_app(overrides: dict | None = None, *, clock=None, migrate: bool = True) -> Flask:
    config = {**settings_from_env(), **(overrides or {})}
    app = Flask(__name__)
    app.config.update(config)
    app.config["MAX_CONTENT_LENGTH"] = config["USM_MAX_BODY_BYTES"]
    app.json.sort_keys = False
    if not app.logger.handlers or app.logger.level == logging.NOTSET:
        logging.basicConfig(level=logging.INFO)

    engine = Engine(EngineSettings(
        database_url=config["USM_DATABASE_URL"],
        limits=Limits(max_file_bytes=config["USM_MAX_DEFINITION_BYTES"], max_elements=config["USM_MAX_ELEMENTS"]),
        max_case_data_bytes=config["USM_MAX_CASE_DATA_BYTES"]), clock=clock, observer=metrics.PrometheusObserver())
    if migrate:
        engine.migrate()
    app.extensions["usm_engine"] = engine
    app.extensions["usm_tokens"] = TokenRegistry(config["USM_ADMIN_TOKEN"], config["USM_TOKENS_FILE"])

    problems.install(app)
    logs.install(app)
    metrics.install(app)
    for blueprint in (meta.bp, definitions.bp, cases.bp, cases.messages_bp, tasks.bp, tasks.external_bp, audit.bp,
                      diagram.bp):
        app.register_blueprint(blueprint)
    app.extensions["usm_openapi"] = build_document(app, API_VERSION)

    app.debug = False  # never, whatever the environment says: debug mode runs code sent by the browser

    @app.after_request
    def _headers(response):
        # JSON needs no sources at all; the diagram page sets its own, narrower-than-default policy.
        response.headers.setdefault("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("Cross-Origin-Resource-Policy", "same-origin")
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    return app
