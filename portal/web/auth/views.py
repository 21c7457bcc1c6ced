"""Sign in, sign out, change one's own password."""
from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user

from portal.access import EVERYONE, public, roles, self_service
from portal.services import admins, sessions
from portal.services.errors import ValidationError
from portal.web.auth.forms import ChangePasswordForm, LoginForm
from portal.web.auth.throttle import set_device_cookie, throttled
from portal.web.helpers import apply_errors, current_actor, safe_next

bp = Blueprint("auth", __name__)


def _start(admin) -> None:
    """Flask-Login keeps the session token, so revoking the row in the database ends this cookie."""
    login_user(admin)
    session.permanent = True


@bp.route("/login", methods=["GET", "POST"])
@public
@throttled
def login():
    if current_user.is_authenticated:
        return redirect(url_for("main.dashboard"))
    form = LoginForm()
    if form.validate_on_submit():
        try:
            result = sessions.sign_in(form.username.data, form.password.data, current_actor(),
                                      request.user_agent.string)
        except ValidationError as exc:
            g.login_failed = True
            apply_errors(form, exc)
        else:
            next_url = safe_next(request.args.get("next"), url_for("main.dashboard"))
            session.clear()  # a fresh session: nothing from before sign-in survives
            _start(result.admin)
            response = redirect(next_url)
            set_device_cookie(response, result.admin.username)
            return response
    return render_template("auth/login.html", form=form), 401 if g.get("login_failed") else 200


@bp.post("/logout")
@roles(*EVERYONE)
@self_service
def logout():
    sessions.sign_out(current_user, current_actor())
    logout_user()
    session.clear()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))


@bp.route("/account/password", methods=["GET", "POST"])
@roles(*EVERYONE)
@self_service
def change_password():
    form = ChangePasswordForm()
    if form.validate_on_submit():
        try:
            admins.change_own_password(current_user, form.current_password.data, form.new_password.data,
                                       current_actor(), request.user_agent.string)
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            _start(current_user._get_current_object())
            flash("Password changed. Every other session of yours has been signed out.", "success")
            return redirect(url_for("main.dashboard"))
    return render_template("auth/change_password.html", form=form)
