"""Tenant pages: list, register, detail, edit, activate/deactivate, connection checks."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("tenants", __name__, url_prefix="/tenants")


@bp.get("/")
@__import__("portal.access", fromlist=["roles"]).roles("admin", "operator", "auditor")
def index():  # placeholder, replaced by the tenant list
    return "tenants"
