"""Propagation to IS 7 and API Manager: the outbox's state, "retry now", and reconcile. Everyone signed in reads;
admins and operators (who run synchronisation) retry and fix; auditors only read."""
from portal.services.outbox import reads
from portal.web.sync import presentation, views  # noqa: F401  (the routes register on bp)
from portal.web.sync.blueprint import bp  # the app factory registers it

bp.add_app_template_filter(presentation.badge, "sync_badge")
bp.add_app_template_filter(presentation.describe, "sync_title")
bp.add_app_template_filter(reads.error_product, "error_product")

__all__ = ["bp"]
