"""Bulk onboarding: upload CSV or JSON Lines, dry run, apply, progress."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("bulk", __name__, url_prefix="/tenants/bulk")
