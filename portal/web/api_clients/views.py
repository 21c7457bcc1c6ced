"""API clients of the /v1 API: list, create (key shown once), revoke."""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for

from portal.access import roles
from portal.services import api_clients
from portal.services.errors import NotFound, ValidationError
from portal.web.api_clients.forms import ApiClientCreateForm
from portal.web.forms import ConfirmForm
from portal.web.helpers import apply_errors, current_actor

bp = Blueprint("api_clients", __name__, url_prefix="/api-clients")


@bp.get("/")
@roles("admin", "auditor")
def index():
    return render_template("api_clients/index.html", clients=api_clients.list_clients(), confirm=ConfirmForm())


@bp.route("/new", methods=["GET", "POST"])
@roles("admin")
def create():
    form = ApiClientCreateForm()
    if form.validate_on_submit():
        try:
            client, key = api_clients.create_client(form.name.data, current_actor())
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            # Rendered, not redirected: the key must not travel through the session cookie, and is never shown again.
            return render_template("api_clients/created.html", client=client, key=key)
    return render_template("api_clients/new.html", form=form)


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
