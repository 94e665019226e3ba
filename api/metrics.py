"""Prometheus metrics at /metrics: requests by route and status, their latency, and what the engine reports
(cases started, tasks completed, incidents, timers fired and how late).

Under `usm serve` every gunicorn worker and the timer worker write to one directory (the
PROMETHEUS_MULTIPROC_DIR it sets up), so a scrape of any worker sees the sum of all of them."""
from __future__ import annotations

import os
import time

from flask import Blueprint, Response, current_app, g, request
from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, REGISTRY,
                               generate_latest, multiprocess)

from usm_engine.engine.observer import Observer

from .contract import operation

REQUESTS = Counter("usm_http_requests", "HTTP requests answered", ["method", "route", "status"])
LATENCY = Histogram("usm_http_request_seconds", "Time to answer an HTTP request", ["method", "route"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
CASES_STARTED = Counter("usm_cases_started", "Cases started (directly, by a message or by a hand-off)",
                        ["definition"])
TASKS_COMPLETED = Counter("usm_tasks_completed", "Tasks completed", ["definition"])
INCIDENTS = Counter("usm_incidents", "Cases that got an incident", ["definition"])
TIMERS_FIRED = Counter("usm_timers_fired", "Cases whose due timers fired", ["definition"])
TIMER_LATENESS = Histogram("usm_timer_lateness_seconds", "How long after their due time timers fired",
                           buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600))
POOL_IN_USE = Gauge("usm_db_connections_in_use", "Database connections in use by the server processes",
                    multiprocess_mode="livesum")

bp = Blueprint("metrics", __name__)


class PrometheusObserver(Observer):
    def case_started(self, definition: str) -> None:
        CASES_STARTED.labels(definition).inc()

    def task_completed(self, definition: str) -> None:
        TASKS_COMPLETED.labels(definition).inc()

    def incident(self, definition: str) -> None:
        INCIDENTS.labels(definition).inc()

    def timer_fired(self, definition: str, lateness_seconds: float) -> None:
        TIMERS_FIRED.labels(definition).inc()
        TIMER_LATENESS.observe(max(lateness_seconds, 0.0))


def install(app) -> None:
    app.register_blueprint(bp)

    @app.before_request
    def _start_clock():
        g.started = time.perf_counter()

    @app.after_request
    def _count(response):
        # The route pattern, not the path: ids in paths would make a new series per case.
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        if "started" in g:
            LATENCY.labels(request.method, route).observe(time.perf_counter() - g.started)
        POOL_IN_USE.set(current_app.extensions["usm_engine"].db.connections_in_use())
        return response


@bp.get("/metrics")
@operation("Prometheus metrics: requests, latency, cases started, tasks completed, incidents, timers",
           roles="anyone", responses={200: ""}, response_content={200: "text/plain"}, tag="meta", public=True)
def metrics():
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
