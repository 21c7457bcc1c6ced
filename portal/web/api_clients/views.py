"""API clients of the /v1 API: list, create (key shown once), revoke."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("api_clients", __name__, url_prefix="/api-clients")


@bp.get("/")
@__import__("portal.access", fromlist=["roles"]).roles("admin", "auditor")
def index():  # placeholder, replaced by the API client list
    return "api clients"
