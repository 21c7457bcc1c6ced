"""Tenant pages: list, register, detail, edit, activate/deactivate, connection checks, decommissioning.

Every change goes through services.tenants, the same calls the /v1 API makes, so the form shows the API's own
validation messages, mapped from API field paths to form fields (forms.field_of_path)."""
from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from portal.access import roles
from portal.clients.checks import CheckResult
from portal.idp import registry
from portal.models import Tenant
from portal.services.admin import audit
from portal.services.errors import CheckFailed, Conflict, NotFound, ServiceError, ValidationError
from portal.services.outbox import decommission, policy, reads, reconcile
from portal.services.outbox.products import LABELS
from portal.services.tenants import kept_secrets, schema_sharing, service as tenants, users as tenant_users
from portal.services.tokens import external_jwks, key_ring
from portal.web.forms import ConfirmForm
from portal.web.helpers import apply_errors, current_actor
from portal.web.tenants import listing
from portal.web.tenants.forms import (
    DecommissionForm,
    TenantForm,
    TenantSearchForm,
    TokenLabForm,
    form_errors,
    label_of,
)

bp = Blueprint("tenants", __name__, url_prefix="/tenants")

READERS = ("admin", "operator", "auditor")
WRITERS = ("admin", "operator")


def _get_or_404(tenant_id: str) -> Tenant:
    try:
        return tenants.get_tenant(tenant_id)
    except NotFound:
        abort(404, f"No tenant with id {tenant_id}.")


@bp.get("/")
@roles(*READERS)
def index():
    form = TenantSearchForm(request.args)
    page = tenants.TenantPage(tenants=[], next_after=None, prev_before=None)
    if form.validate():
        page = tenants.list_tenants(tenants.TenantQuery(
            q=form.q.data or "", idp_type=form.type.data or "", status=form.status.data or "",
            after=request.args.get("after") or None, before=request.args.get("before") or None,
            limit=int(current_app.config["TENANT_PAGE_SIZE"])), for_display=True)
    args = {k: v for k, v in request.args.items() if k in ("q", "type", "status") and v}
    states = reads.states_for_keys(t.tenant_key for t in page.tenants)  # one query for the page
    rows = listing.rows(page.tenants, states, LABELS, url_for("tenants.index"))  # tenant ids are URL-safe
    return render_template("tenants/index.html", form=form, page=page, args=args, rows=rows,
                           filter_fields=listing.filter_fields(form),
                           has_bulk="bulk.index" in current_app.view_functions)


@bp.route("/new", methods=["GET", "POST"])
@roles(*WRITERS)
def create():
    form = TenantForm()
    domain = request.args.get("import", "") if request.method == "GET" else ""
    if domain:  # reconcile's "Import into the registry": start from what the products know
        try:
            form = TenantForm(data=TenantForm.data_from_api(reconcile.import_prefill(domain)))
            flash(f"Prefilled from IS 7 and API Manager's tenant {domain}: add the identity provider settings, "
                  "then register.", "info")
        except ServiceError as exc:
            flash(exc.message, "error")
    return _form_page(form, None)


@bp.route("/<tenant_id>/edit", methods=["GET", "POST"])
@roles(*WRITERS)
def edit(tenant_id: str):
    tenant = _get_or_404(tenant_id)
    try:
        decommission.refuse_change(tenant, "edited")
    except decommission.Decommissioning as exc:
        flash(exc.message, "error")
        return redirect(url_for("tenants.detail", tenant_id=tenant.tenant_id))
    api = tenants.to_api(tenant)
    form = TenantForm(data=TenantForm.data_from_api(api)) if request.method == "GET" else TenantForm()
    form.for_edit(api)
    return _form_page(form, tenant)


def _form_page(form: TenantForm, tenant: Tenant | None):
    """Register (tenant None) or edit: show the chosen type's fields, test the connection, or save (PRG).
    Secrets typed into a submission that does not save are kept for this form (services.tenants.kept_secrets)."""
    check: CheckResult | None = None
    kept: list[str] = []
    if form.is_submitted() and form.validate():
        session_id = _session_id()
        form_key = kept_secrets.edit_form(tenant.tenant_key) if tenant else kept_secrets.REGISTER
        body = form.body(editing=tenant is not None)
        recalled = kept_secrets.recall(form.kept.data, session_id, form_key, body)
        if not form.refresh.data:
            try:
                check, done = _submit(form, tenant, body)
                if done is not None:
                    kept_secrets.forget(form.kept.data, session_id)
                    return _saved(done, "saved" if tenant else "registered")
            except CheckFailed as exc:
                check = exc.result
                apply_errors(form, form_errors(exc.errors))
            except (ValidationError, Conflict) as exc:
                apply_errors(form, form_errors(exc.errors))
            except NotFound:
                abort(404)
        form.kept.data, paths = kept_secrets.keep(form.kept.data, session_id, form_key, body)
        kept = form.mark_kept(paths, recalled.dropped)
    owners = policy.owner_rules()
    if owners.required:
        form.ownerUsername.description = ("Required: a product connection is configured, so the tenant is written to "
                                          "IS 7, which creates every tenant with its owner.")
    config = current_app.config
    return render_template("tenants/form.html", form=form, tenant=tenant, check=check, chosen=form.chosen_type(),
                           owner_rules=owners, kept=kept, kept_minutes=int(config["KEPT_SECRET_SECONDS"]) // 60,
                           grace_hours=_duration(int(config["KEY_GRACE_PERIOD"])))


def _submit(form: TenantForm, tenant: Tenant | None, body: dict) -> tuple[CheckResult | None,
                                                                          tenants.Registration | None]:
    """Test the connection (a check, nothing saved) or save: one service call."""
    skip = bool(form.skip_check.data)
    if form.test_connection.data:
        check = tenants.test_connection(body, tenant_id=tenant.tenant_id if tenant else None)
        apply_errors(form, form_errors(check.field_errors))
        return check, None
    if tenant is None:
        return None, tenants.register_tenant(body, current_actor(), skip_check=skip)
    return None, tenants.update_tenant(tenant.tenant_id, body, current_actor(), skip_check=skip,
                                       confirm_algorithm_change=bool(form.confirmAlgorithmChange.data))


def _session_id() -> int | None:
    return getattr(current_user, "current_session_id", None)


def _duration(seconds: int) -> str:
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return f"{hours} hour{'s' if hours != 1 else ''}"
    return f"{max(1, seconds // 60)} minutes"


def _saved(done: tenants.Registration, verb: str):
    tenant = done.tenant
    for message in done.warnings:  # e.g. the user store's schema is another tenant's too
        flash(f"{label_of(schema_sharing.URL_FIELD)}: {message}", "warning")
    if done.check is not None:
        flash(f"Tenant {tenant.tenant_id} {verb}. Connection check passed: {done.check.summary}", "success")
    elif tenant.verified:
        flash(f"Tenant {tenant.tenant_id} {verb}.", "success")
    else:
        flash(f"Tenant {tenant.tenant_id} {verb} without a passing connection check; it shows as unverified "
              "until a check passes.", "info")
    return redirect(url_for("tenants.detail", tenant_id=tenant.tenant_id))


@bp.get("/<tenant_id>")
@roles(*READERS)
def detail(tenant_id: str):
    return detail_page(_get_or_404(tenant_id))


def detail_page(tenant: Tenant, lab: dict | None = None, new_secret: str | None = None,
                decommission_form: DecommissionForm | None = None):
    """The tenant page; `lab` carries the token lab's form and result after a lab POST (token_lab.py), and
    `new_secret` a client secret just generated, shown this once."""
    changes = audit.search(audit.AuditFilter(object_type="tenant", object_id=tenant.tenant_id), limit=10)
    lab = lab or {"form": TokenLabForm(formdata=None)}
    decommission_form = decommission_form or DecommissionForm(formdata=None)
    return render_template("tenants/detail.html", tenant=tenant, api=tenants.to_api(tenant),
                           schema_warnings=schema_sharing.tenant_warnings(tenant),
                           decommission_form=decommission_form,
                           changes=changes.events, confirm=ConfirmForm(), sync_view=reads.tenant_sync(tenant),
                           sync_labels=LABELS, keys=key_ring.key_views(tenant), lab=lab,
                           new_secret=new_secret, user_access=tenant_users.access_of(tenant),
                           jwks_cache=external_jwks.cache_view(tenant)
                           if not registry.issues_tokens(tenant.idp_type) else None)


def _set_active(tenant_id: str, active: bool):
    tenant = _get_or_404(tenant_id)
    if ConfirmForm().validate_on_submit():
        try:
            tenants.set_tenant_active(tenant.tenant_id, active, current_actor())
        except decommission.Decommissioning as exc:
            flash(exc.message, "error")
        else:
            flash(f"Tenant {tenant.tenant_id} {'activated' if active else 'deactivated'}.", "success")
    return redirect(url_for("tenants.detail", tenant_id=tenant.tenant_id))


@bp.post("/<tenant_id>/decommission")
@roles("admin")
def decommission_tenant(tenant_id: str):
    """Confirmed by typing the tenant id; the worker does the rest (services.outbox.decommission)."""
    tenant = _get_or_404(tenant_id)
    form = DecommissionForm()
    if form.validate_on_submit():
        try:
            decommission.request(tenant.tenant_id, current_actor(), confirm=form.confirm.data)
        except ValidationError as exc:
            apply_errors(form, exc)
            return detail_page(tenant, decommission_form=form), 400
        flash(f"Tenant {tenant.tenant_id} will be decommissioned: the worker deactivates it in IS 7 and API Manager, "
              "deletes it where allowed, then removes it from the registry.", "success")
    return redirect(url_for("tenants.detail", tenant_id=tenant.tenant_id))


@bp.get("/decommissions")
@roles(*READERS)
def decommissions():
    return render_template("tenants/decommissions.html", records=decommission.recent(100),
                           labels=LABELS)


@bp.post("/<tenant_id>/activate")
@roles(*WRITERS)
def activate(tenant_id: str):
    return _set_active(tenant_id, True)


@bp.post("/<tenant_id>/deactivate")
@roles(*WRITERS)
def deactivate(tenant_id: str):
    return _set_active(tenant_id, False)


@bp.post("/<tenant_id>/check")
@roles(*WRITERS)
def recheck(tenant_id: str):
    tenant = _get_or_404(tenant_id)
    if ConfirmForm().validate_on_submit():
        result = tenants.recheck_tenant(tenant.tenant_id, current_actor())
        if result.ok:
            flash(f"Connection check passed: {result.summary}", "success")
        else:
            flash(f"Connection check failed: {result.summary}", "error")
    return redirect(url_for("tenants.detail", tenant_id=tenant.tenant_id))
