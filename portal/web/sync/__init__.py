"""Propagation to IS 7 and API Manager: the outbox's state, "retry now", and reconcile. Everyone signed in reads;
admins and operators (who run synchronisation) retry and fix; auditors only read."""
from portal.services.outbox import reads
from portal.web import timefmt
from portal.web.sync import live, presentation, views  # noqa: F401  (the routes register on bp)
from portal.web.sync.blueprint import bp  # the app factory registers it

bp.add_app_template_filter(presentation.badge, "sync_badge")
bp.add_app_template_filter(presentation.describe, "sync_title")
bp.add_app_template_filter(presentation.word, "sync_word")
bp.add_app_template_filter(presentation.step, "sync_step")
bp.add_app_template_filter(presentation.job_word, "job_word")
bp.add_app_template_filter(presentation.job_badge, "job_badge")
bp.add_app_template_filter(presentation.tenant_version, "sync_version")
bp.add_app_template_filter(presentation.overview_version, "sync_overview_version")
bp.add_app_template_filter(timefmt.utc_and_relative, "utc_relative")
bp.add_app_template_filter(reads.error_product, "error_product")

__all__ = ["bp"]
