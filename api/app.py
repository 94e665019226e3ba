"""The Flask application factory: the settings passed in, no state in globals."""
from __future__ import annotations

import logging

from flask import Flask, Response

from usm_engine.engine.clock import Clock, SystemClock
from usm_engine.engine.service import Engine
from usm_engine.engine.settings import Settings

from . import logs, metrics, problems
from .auth import TokenRegistry
from .json_responses import OrjsonProvider
from .openapi import build_document
from .routes import audit, cases, definitions, diagram, insight, meta, pages_cases, pages_work, signin, tasks
from .sessions import Sessions, new_secret

API_VERSION = "1.0.0"
# JSON needs no sources at all: the policy a page of its own (the diagram) replaces.
SECURITY_HEADERS = (("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
                    ("X-Content-Type-Options", "nosniff"), ("X-Frame-Options", "DENY"),
                    ("Referrer-Policy", "no-referrer"), ("Cross-Origin-Resource-Policy", "same-origin"),
                    ("Cache-Control", "no-store"))


def create_app(settings: Settings, *, clock: Clock | None = None, migrate: bool = True) -> Flask:
    """The API over an engine with `settings` (api/settings.py reads them from the environment)."""
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json = OrjsonProvider(app)
    if not app.logger.handlers or app.logger.level == logging.NOTSET:
        logging.basicConfig(level=logging.INFO)

    engine = Engine(settings.engine, clock=clock, observer=metrics.PrometheusObserver())
    if migrate:
        engine.migrate()
    app.extensions["usm_settings"] = settings
    app.extensions["usm_engine"] = engine
    app.extensions["usm_tokens"] = tokens = TokenRegistry(settings.admin_token, settings.tokens_file)
    # Without USM_SESSION_SECRET a secret of this process only: right for one process (tests, a WSGI host of
    # one worker); `usm serve` makes one before gunicorn forks, so that all its workers share it.
    session_clock = clock or SystemClock()
    app.extensions["usm_sessions"] = Sessions(settings.session_secret or new_secret(), settings.session_hours,
                                              tokens, lambda: session_clock.now().timestamp())

    problems.install(app)
    logs.install(app)
    metrics.install(app)
    for blueprint in (meta.bp, definitions.bp, cases.bp, cases.messages_bp, tasks.bp, tasks.external_bp, audit.bp,
                      diagram.bp, signin.bp, pages_cases.bp, pages_work.bp, insight.bp, insight.pages):
        app.register_blueprint(blueprint)
    app.extensions["usm_openapi"] = build_document(app, API_VERSION)

    app.debug = False  # never, whatever the environment says: debug mode runs code sent by the browser

    @app.after_request
    def _headers(response: Response) -> Response:
        # Each unless the view set its own (the diagram page has a narrower policy). Not Headers.setdefault,
        # which raises and catches an exception per header that is absent, i.e. six on every answer.
        present = {name.lower() for name, _value in response.headers}
        response.headers.extend([(name, value) for name, value in SECURITY_HEADERS if name.lower() not in present])
        return response

    return app
