"""Dashboard and health checks."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, render_template
from flask_login import current_user

from portal.access import EVERYONE, access_of, public, roles
from portal.services.admin import dashboard as board, status

bp = Blueprint("main", __name__)

# Each dashboard block and the page it summarises: a role sees the block only if it may open that page, so the
# dashboard never shows more than the pages would (the pages' @roles are the one source of who sees what).
BLOCK_PAGES = {"tenants": "tenants.index", "sync": "sync.index", "certificates": "certificates.index",
               "keys": "tenants.index", "api_clients": "api_clients.index", "recent": "audit.index",
               "instance": "admins.index"}


def visible_blocks(role: str) -> frozenset[str]:
    allowed = set()
    for block, endpoint in BLOCK_PAGES.items():
        access = access_of(current_app.view_functions[endpoint])
        if isinstance(access, frozenset) and role in access:
            allowed.add(block)
    return frozenset(allowed)


@bp.get("/")
@roles(*EVERYONE)
def dashboard():
    return render_template("main/dashboard.html", board=board.dashboard(visible_blocks(current_user.role)))


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
