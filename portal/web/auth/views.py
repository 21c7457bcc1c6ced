"""Sign in, sign out, change one's own password."""
from __future__ import annotations

from flask import Blueprint, flash, g, make_response, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user

from portal.access import EVERYONE, public, roles, self_service
from portal.services.admin import admins, passwords, sessions
from portal.services.errors import ValidationError
from portal.web.auth.forms import ChangePasswordForm, LoginForm
from portal.web.auth.throttle import (
    global_budget_spent,
    global_login_budget,
    password_change_budgets,
    set_device_cookie,
    throttled,
)
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
        # Checked before any hashing: a flood from many addresses costs a counter lookup, not 64 MiB per guess.
        if wait := global_budget_spent():
            return _refused(form, 429, f"Too many failed sign-ins on this portal; try again in {wait} s. "
                                       "A browser that has signed in as you before can still sign in.", wait)
        try:
            result = sessions.sign_in(form.username.data, form.password.data, current_actor(),
                                      request.user_agent.string)
        except passwords.HashingBusy as exc:
            return _refused(form, 503, f"The portal is busy checking other sign-ins; try again in {exc.retry_after} "
                                       "s.", exc.retry_after)
        except ValidationError as exc:
            g.login_failed = True
            global_login_budget().count()
            apply_errors(form, exc)
        else:
            next_url = safe_next(request.args.get("next"), url_for("main.dashboard"))
            session.clear()  # a fresh session: nothing from before sign-in survives
            _start(result.admin)
            response = redirect(next_url)
            set_device_cookie(response, result.admin.username)
            return response
    return render_template("auth/login.html", form=form), 401 if g.get("login_failed") else 200


def _refused(form: LoginForm, status: int, message: str, retry_after: int):
    """The sign-in page again with the reason and Retry-After: the person who typed the right password is told
    why it was not checked, and when to try again."""
    form.form_errors = [message]
    response = make_response(render_template("auth/login.html", form=form), status)
    response.headers["Retry-After"] = str(retry_after)
    return response


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
    status = 200
    if form.validate_on_submit():
        admin = current_user._get_current_object()
        budgets = password_change_budgets(admin.id, admin.current_session_id)
        try:
            waits = [w for b in budgets if (w := b.retry_after())]
            if waits:
                status = 429
                admins.refuse_password_change(admin, current_actor(), max(waits))
            admins.change_own_password(admin, form.current_password.data, form.new_password.data,
                                       current_actor(), request.user_agent.string)
        except ValidationError as exc:
            if status != 429 and exc.errors.get("current_password") == admins.WRONG_CURRENT_PASSWORD:
                for budget in budgets:
                    budget.count()
            apply_errors(form, exc)
        else:
            _start(admin)
            flash("Password changed. Every other session of yours has been signed out.", "success")
            return redirect(url_for("main.dashboard"))
    return render_template("auth/change_password.html", form=form), status
