from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=64)],
                           render_kw={"autocomplete": "username", "autofocus": True})
    password = PasswordField("Password", validators=[DataRequired(), Length(max=256)],
                             render_kw={"autocomplete": "current-password"})


class ChangePasswordForm(FlaskForm):
    current_password = PasswordField("Current password", validators=[DataRequired()],
                                     render_kw={"autocomplete": "current-password"})
    new_password = PasswordField("New password", validators=[DataRequired()],
                                 description="At least 12 characters; a passphrase is best.",
                                 render_kw={"autocomplete": "new-password"})
    confirm = PasswordField("Repeat new password",
                            validators=[DataRequired(), EqualTo("new_password", "The two passwords differ.")],
                            render_kw={"autocomplete": "new-password"})
