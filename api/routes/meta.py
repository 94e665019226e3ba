"""Health and the OpenAPI document: no authentication, so load balancers and clients can read them."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from ..contract import operation
from ..http import engine

bp = Blueprint("meta", __name__)


@bp.get("/healthz")
@operation("Liveness and database reachability", roles="anyone", responses={200: "Health", 503: "Health"},
           tag="meta", public=True)
def healthz():
    try:
        with engine().db.reader.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError:
        current_app.logger.warning("health check: database unreachable", exc_info=True)
        return jsonify({"status": "degraded", "database": "unreachable"}), 503
    return jsonify({"status": "ok", "database": "ok"})


@bp.get("/api/v1/openapi.json")
@operation("This OpenAPI 3.1 document", roles="anyone", responses={200: ""}, tag="meta", public=True)
def openapi_document():
    return jsonify(current_app.extensions["usm_openapi"])
