"""Tenant user forms: shape only; the rules (names, password policy, confirmation) are the service's."""
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField

NEW_PASSWORD = {"autocomplete": "new-password"}


def _password() -> PasswordField:
    return PasswordField("Password", render_kw=NEW_PASSWORD,
                         description="At least the portal's minimum length; not the user name.")


def _confirm() -> PasswordField:
    return PasswordField("Password again", render_kw=NEW_PASSWORD)


class UserSearchForm(FlaskForm):
    class Meta:
        csrf = False  # a GET search changes nothing

    q = StringField("Name starts with", render_kw={"autocomplete": "off", "spellcheck": "false"})


class NewPasswordForm(FlaskForm):
    password = _password()
    confirm = _confirm()


class AddUserForm(FlaskForm):
    username = StringField("User name", render_kw={"autocomplete": "off", "spellcheck": "false"},
                           description="What the user types at the password grant; no spaces.")
    password = _password()
    confirm = _confirm()
