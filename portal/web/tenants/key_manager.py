"""The tenant page's key manager section: check the tenant's WSO2-IS-7 key manager in API Manager now, and repair
a missing one. Registered on the tenants blueprint; the section itself is tenants/_key_manager.html, which asks
`key_manager_view(tenant)` for what to show (reconcile's column uses key_manager_label / key_manager_badge)."""
from __future__ import annotations

from flask import flash, redirect, url_for

from portal.access import roles
from portal.models import Tenant
from portal.services.errors import Conflict
from portal.services.sharing import key_managers
from portal.web.forms import ConfirmForm
from portal.web.helpers import current_actor
from portal.web.tenants.views import WRITERS, _get_or_404, bp

ANCHOR = "key-manager"


@bp.app_template_global("key_manager_view")
def key_manager_view(tenant: Tenant) -> key_managers.View:
    return key_managers.view(tenant)


@bp.app_template_global("key_manager_label")
def key_manager_label(status: str) -> str:
    return key_managers.LABELS.get(status, status)


# The badge's CSS state class per status: presentation, so it lives here and not in the service.
BADGES = {"ok": "state-ok", "missing": "state-off", "duplicate": "state-off", "mismatch": "state-warn",
          "unverifiable": "state-warn", "error": "state-warn", "not_expected": ""}


@bp.app_template_global("key_manager_badge")
def key_manager_badge(status: str | None) -> str:
    return BADGES.get(status or "", "")


def _back(tenant_id: str):
    return redirect(url_for("tenants.detail", tenant_id=tenant_id, _anchor=ANCHOR))


@bp.post("/<tenant_id>/key-manager/check")
@roles(*WRITERS)
def check_key_manager(tenant_id: str):
    tenant = _get_or_404(tenant_id)
    if ConfirmForm().validate_on_submit():
        row = key_managers.check(tenant.tenant_id)
        flash(f"Key manager: {key_managers.LABELS[row.status]}. {row.detail}",
              "success" if row.status in ("ok", "not_expected") else "error")
    return _back(tenant.tenant_id)


@bp.post("/<tenant_id>/key-manager/repair")
@roles(*WRITERS)
def repair_key_manager(tenant_id: str):
    tenant = _get_or_404(tenant_id)
    if ConfirmForm().validate_on_submit():
        try:
            row = key_managers.repair(tenant.tenant_id, current_actor())
        except Conflict as exc:
            flash(exc.message, "error")
        else:
            flash(f"Key manager created in API Manager; it is now {key_managers.LABELS[row.status]}.",
                  "success" if row.status == "ok" else "error")
    return _back(tenant.tenant_id)
