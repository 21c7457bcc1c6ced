"""A tenant's users, in its own store: list, add, disable, enable and reset a password (POSTGRES, ORACLE); search
and show (LDAP, read-only). Everyone who reads tenants reads them; only administrators change them."""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from portal.access import roles
from portal.services.errors import Conflict, NotFound, ValidationError
from portal.services.tenants import users
from portal.web.forms import ConfirmForm
from portal.web.helpers import apply_errors, current_actor
from portal.web.tenant_users.forms import AddUserForm, NewPasswordForm, UserSearchForm

bp = Blueprint("tenant_users", __name__, url_prefix="/tenants/<tenant_id>/users")

READERS = ("admin", "operator", "auditor")


def _listing(tenant_id: str, form: AddUserForm, status: int = 200):
    search = UserSearchForm(request.args)
    try:
        listing = users.list_users(tenant_id, search.q.data or "", request.args.get("after") or None)
    except NotFound as exc:
        abort(404, exc.message)
    except users.StoreUnreachable as exc:  # the page works; the store does not: say so on it, not as a 5xx
        return render_template("tenant_users/index.html", tenant_id=tenant_id, listing=None, error=exc.message,
                               search=search, form=form, confirm=ConfirmForm()), status
    return render_template("tenant_users/index.html", tenant_id=tenant_id, listing=listing, error=None,
                           search=search, form=form, confirm=ConfirmForm()), status


@bp.get("/")
@roles(*READERS)
def index(tenant_id: str):
    return _listing(tenant_id, AddUserForm(formdata=None))


@bp.post("/")
@roles("admin")
def add(tenant_id: str):
    form = AddUserForm()
    if form.validate_on_submit():
        try:
            name = users.add_user(tenant_id, form.username.data, form.password.data, form.confirm.data,
                                  current_actor())
        except NotFound as exc:
            abort(404, exc.message)
        except (ValidationError, Conflict) as exc:
            apply_errors(form, exc)
        except users.StoreUnreachable as exc:
            form.form_errors = [exc.message]
        else:
            flash(f"User {name} added: the password grant accepts it now.", "success")
            return redirect(url_for("tenant_users.index", tenant_id=tenant_id))
    return _listing(tenant_id, form, 400)


def _detail(tenant_id: str, username: str, form: NewPasswordForm, status: int = 200):
    try:
        tenant, user = users.show_user(tenant_id, username)
    except NotFound as exc:
        abort(404, exc.message)
    except users.StoreUnreachable as exc:
        flash(exc.message, "error")
        return redirect(url_for("tenant_users.index", tenant_id=tenant_id))
    return render_template("tenant_users/detail.html", tenant=tenant, user=user, form=form,
                           confirm=ConfirmForm(), access=users.access_of(tenant)), status


@bp.get("/<path:username>")
@roles(*READERS)
def detail(tenant_id: str, username: str):
    return _detail(tenant_id, username, NewPasswordForm(formdata=None))


def _switch(tenant_id: str, username: str, disabled: bool):
    if ConfirmForm().validate_on_submit():
        try:
            changed = users.set_disabled(tenant_id, username, disabled, current_actor())
        except NotFound as exc:
            abort(404, exc.message)
        except (ValidationError, users.StoreUnreachable) as exc:
            flash(exc.message, "error")
        else:
            state = "disabled: the password grant refuses it" if disabled else "enabled: its password works again"
            flash(f"User {username} {state}." if changed else f"User {username} was already "
                  f"{'disabled' if disabled else 'enabled'}.", "success" if changed else "info")
    else:
        flash("The form expired: try again.", "error")
    return redirect(url_for("tenant_users.detail", tenant_id=tenant_id, username=username))


@bp.post("/<path:username>/disable")
@roles("admin")
def disable(tenant_id: str, username: str):
    return _switch(tenant_id, username, True)


@bp.post("/<path:username>/enable")
@roles("admin")
def enable(tenant_id: str, username: str):
    return _switch(tenant_id, username, False)


@bp.post("/<path:username>/password")
@roles("admin")
def reset_password(tenant_id: str, username: str):
    form = NewPasswordForm()
    if form.validate_on_submit():
        try:
            users.reset_password(tenant_id, username, form.password.data, form.confirm.data, current_actor())
        except NotFound as exc:
            abort(404, exc.message)
        except ValidationError as exc:
            apply_errors(form, exc)
        except users.StoreUnreachable as exc:
            form.form_errors = [exc.message]
        else:
            flash(f"New password set for {username}.", "success")
            return redirect(url_for("tenant_users.detail", tenant_id=tenant_id, username=username))
    return _detail(tenant_id, username, form, 400)
