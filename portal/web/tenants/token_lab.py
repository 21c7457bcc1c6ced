"""The tenant page's credentials and token lab: a generated client secret, rotate and retire signing keys, issue a
test token, and decode and validate any pasted token with the reason, header and claims. Registered on the tenants
blueprint."""
from __future__ import annotations

from flask import flash, redirect, request, url_for

from portal.access import roles
from portal.services.errors import Conflict, NotFound, ValidationError
from portal.services.tenants import service as tenants
from portal.services.tokens import key_ring, service as tokens
from portal.web.forms import ConfirmForm
from portal.web.helpers import current_actor
from portal.web.tenants import lab_view
from portal.web.tenants.forms import TokenLabForm
from portal.web.tenants.views import WRITERS, _get_or_404, bp, detail_page


def _back(tenant_id: str, anchor: str):
    return redirect(url_for("tenants.detail", tenant_id=tenant_id, _anchor=anchor or None))


@bp.post("/<tenant_id>/keys/rotate")
@roles(*WRITERS)
def rotate_key(tenant_id: str):
    tenant = _get_or_404(tenant_id)
    if ConfirmForm().validate_on_submit():
        try:
            key = key_ring.rotate(tenant.tenant_id, current_actor())
        except (Conflict, ValidationError) as exc:
            flash(exc.message, "error")
        else:
            flash(f"New active key {key.kid}; the previous key stays passive (still validates) for the grace "
                  "period.", "success")
    return _back(tenant.tenant_id, "keys")


@bp.post("/<tenant_id>/keys/<kid>/retire")
@roles(*WRITERS)
def retire_key(tenant_id: str, kid: str):
    tenant = _get_or_404(tenant_id)
    if ConfirmForm().validate_on_submit():
        try:
            key_ring.retire(tenant.tenant_id, kid, current_actor())
        except (Conflict, NotFound) as exc:
            flash(exc.message, "error")
        else:
            flash(f"Key {kid} retired: tokens it signed no longer validate.", "success")
    return _back(tenant.tenant_id, "keys")


@bp.post("/<tenant_id>/client-secret")
@roles(*WRITERS)
def generate_client_secret(tenant_id: str):
    """Rendered, not redirected: the new secret is shown once and never put in the session."""
    tenant = _get_or_404(tenant_id)
    if not ConfirmForm().validate_on_submit():
        return _back(tenant.tenant_id, "")
    secret = tenants.new_client_secret(tenant.tenant_id, current_actor())
    return detail_page(tenant, new_secret=secret)


@bp.post("/<tenant_id>/token-lab")
@roles(*WRITERS)
def token_lab(tenant_id: str):
    """Issue or validate, then show the result on the tenant page itself (rendered, not redirected: the token
    is shown once and never stored in the session)."""
    tenant = _get_or_404(tenant_id)
    form = TokenLabForm()
    lab: dict = {"form": form}
    if form.validate_on_submit():
        try:
            if form.issue.data:
                issued = tokens.lab_issue(tenant.tenant_id, current_actor(), request.url_root)
                lab["issued"] = issued
                form.token.data = issued.access_token
            else:
                verdict = tokens.validate(form.token.data or "", request.url_root,
                                          audience=form.audience.data or None, tenant_hint=tenant.tenant_id)
                lab["verdict"], lab["result"] = verdict, lab_view.present(verdict, tenant.tenant_id)
        except Conflict as exc:
            form.issue.errors = [exc.message]
    return detail_page(tenant, lab=lab)
