"""Dashboard and health checks."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, render_template
from flask_login import current_user

from portal.access import EVERYONE, public, roles
from portal.services.admin import status

bp = Blueprint("main", __name__)


@bp.get("/")
@roles(*EVERYONE)
def dashboard():
    return render_template("main/dashboard.html", overview=status.overview(current_user.role))


@bp.get("/healthz")
@public
def healthz():
    """The process is up and serving; says nothing about its dependencies."""
    return jsonify(status="ok")


@bp.get("/readyz")
@public
def readyz():
    """Ready for traffic: the database answers."""
    problem = status.database_problem()
    if problem:
        current_app.logger.warning("readiness check failed: %s", problem)
        return jsonify(status="unavailable", checks={"database": "unreachable"}), 503
    return jsonify(status="ok", checks={"database": "ok"})
