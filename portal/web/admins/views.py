"""Administrator accounts: list, create, disable/enable, reset a password, change a role."""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for

from portal.access import roles
from portal.services.admin import admins, sessions
from portal.services.errors import Conflict, Forbidden, NotFound, ValidationError
from portal.web.admins.forms import AdminCreateForm, RoleForm
from portal.web.forms import ConfirmForm
from portal.web.helpers import apply_errors, current_actor

bp = Blueprint("admins", __name__, url_prefix="/admins")


def _get_or_404(admin_id: int):
    try:
        return admins.get_admin(admin_id)
    except NotFound:
        abort(404)


@bp.get("/")
@roles("admin", "auditor")
def index():
    return render_template("admins/index.html", admins=admins.list_admins(), confirm=ConfirmForm())


@bp.route("/new", methods=["GET", "POST"])
@roles("admin")
def create():
    form = AdminCreateForm()
    if form.validate_on_submit():
        try:
            result = admins.create_admin(form.username.data, form.role.data, current_actor())
        except ValidationError as exc:
            apply_errors(form, exc)
        except Conflict as exc:
            form.username.errors = [exc.message]
        else:
            # Rendered, not redirected: the one-time password must not travel through the session cookie.
            return render_template("admins/one_time_password.html", result=result, created=True)
    return render_template("admins/new.html", form=form)


@bp.get("/<int:admin_id>")
@roles("admin", "auditor")
def detail(admin_id: int):
    admin = _get_or_404(admin_id)
    role_form = RoleForm(role=admin.role)
    return render_template("admins/detail.html", admin=admin, sessions=sessions.live_sessions(admin.id),
                           confirm=ConfirmForm(), role_form=role_form)


def _act(admin_id: int, action, done: str):
    """Run one service action from a confirm button and report the outcome."""
    form = ConfirmForm()
    if form.validate_on_submit():
        try:
            action()
        except (Forbidden, ValidationError, NotFound) as exc:
            flash(exc.message, "error")
        else:
            flash(done, "success")
    return redirect(url_for("admins.detail", admin_id=admin_id))


@bp.post("/<int:admin_id>/disable")
@roles("admin")
def disable(admin_id: int):
    _get_or_404(admin_id)
    return _act(admin_id, lambda: admins.set_admin_active(admin_id, False, current_actor()),
                "Account disabled; its sessions have ended.")


@bp.post("/<int:admin_id>/enable")
@roles("admin")
def enable(admin_id: int):
    _get_or_404(admin_id)
    return _act(admin_id, lambda: admins.set_admin_active(admin_id, True, current_actor()), "Account enabled.")


@bp.post("/<int:admin_id>/role")
@roles("admin")
def set_role(admin_id: int):
    _get_or_404(admin_id)
    form = RoleForm()
    if form.validate_on_submit():
        try:
            admins.set_role(admin_id, form.role.data, current_actor())
        except (Forbidden, ValidationError) as exc:
            flash(exc.message, "error")
        else:
            flash(f"Role changed to {form.role.data}; the account's sessions have ended.", "success")
    else:
        flash("Choose a valid role.", "error")
    return redirect(url_for("admins.detail", admin_id=admin_id))


@bp.post("/<int:admin_id>/reset-password")
@roles("admin")
def reset_password(admin_id: int):
    _get_or_404(admin_id)
    form = ConfirmForm()
    if form.validate_on_submit():
        try:
            result = admins.reset_password(admin_id, current_actor())
        except Forbidden as exc:
            flash(exc.message, "error")
        else:
            return render_template("admins/one_time_password.html", result=result, created=False)
    return redirect(url_for("admins.detail", admin_id=admin_id))
