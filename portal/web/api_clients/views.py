"""API clients of the /v1 API: list, create with scopes and limits (key shown once), rotate the key, revoke."""
from __future__ import annotations

from datetime import UTC, date, datetime, time

from flask import Blueprint, abort, flash, redirect, render_template, url_for

from portal.access import roles
from portal.services.admin import api_clients
from portal.services.errors import NotFound, ValidationError
from portal.web.api_clients.forms import ApiClientCreateForm, ApiClientRotateForm
from portal.web.forms import ConfirmForm
from portal.web.helpers import apply_errors, current_actor

bp = Blueprint("api_clients", __name__, url_prefix="/api-clients")


def _start_of(day: date | None) -> datetime | None:
    return datetime.combine(day, time(0), tzinfo=UTC) if day else None


@bp.get("/")
@roles("admin", "auditor")
def index():
    return render_template("api_clients/index.html", clients=api_clients.list_clients(), confirm=ConfirmForm(),
                           describe_limit=api_clients.describe_limit)


@bp.route("/new", methods=["GET", "POST"])
@roles("admin")
def create():
    form = ApiClientCreateForm()
    if form.validate_on_submit():
        try:
            client, key = api_clients.create_client(
                form.name.data, current_actor(), scopes=form.scopes.data or [], tenant_scope=form.tenant_scope.data,
                tenant_pattern=form.tenant_pattern.data, expires_at=_start_of(form.expires_at.data))
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            # Rendered, not redirected: the key must not travel through the session cookie, and is never shown again.
            return render_template("api_clients/created.html", client=client, key=key, rotated=False,
                                   describe_limit=api_clients.describe_limit)
    return render_template("api_clients/new.html", form=form)


@bp.route("/<app_id>/rotate", methods=["GET", "POST"])
@roles("admin")
def rotate(app_id: str):
    try:
        client = api_clients.get_client(app_id)
    except NotFound:
        abort(404, "No such API client.")
    form = ApiClientRotateForm()
    if form.validate_on_submit():
        try:
            client, key = api_clients.rotate_key(app_id, current_actor(), overlap_hours=form.overlap_hours.data,
                                                 expires_at=_start_of(form.expires_at.data))
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            return render_template("api_clients/created.html", client=client, key=key, rotated=True,
                                   describe_limit=api_clients.describe_limit)
    return render_template("api_clients/rotate.html", form=form, client=client)


@bp.post("/<app_id>/revoke")
@roles("admin")
def revoke(app_id: str):
    if ConfirmForm().validate_on_submit():
        try:
            client = api_clients.revoke_client(app_id, current_actor())
        except NotFound:
            abort(404, "No such API client.")
        flash(f"API client {client.name} ({client.app_id}) revoked: its key no longer works.", "success")
    return redirect(url_for("api_clients.index"))
