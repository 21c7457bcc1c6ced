"""Propagation to IS 7 and API Manager: the outbox's state, "retry now", and reconcile. Everyone signed in reads;
admins and operators (who run synchronisation) retry and fix; auditors only read."""
from flask import Blueprint

bp = Blueprint("sync", __name__, url_prefix="/sync")

READERS = ("admin", "operator", "auditor")
WRITERS = ("admin", "operator")

from portal.services.outbox import reads  # noqa: E402
from portal.web.sync import presentation, views  # noqa: E402,F401  (the routes register on bp)

bp.add_app_template_filter(presentation.badge, "sync_badge")
bp.add_app_template_filter(presentation.describe, "sync_title")
bp.add_app_template_filter(reads.error_product, "error_product")
