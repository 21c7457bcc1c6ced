from flask_wtf import FlaskForm
from wtforms import SelectField, StringField
from wtforms.validators import DataRequired, Length

from portal.models import ROLES

ROLE_CHOICES = [
    ("admin", "admin: everything"),
    ("operator", "operator: tenants and synchronisation"),
    ("auditor", "auditor: read-only"),
]
assert [r for r, _ in ROLE_CHOICES] == list(ROLES)


class AdminCreateForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=64)],
                           description="Lower-case letters, digits, '.', '_', '@' or '-'.")
    role = SelectField("Role", choices=ROLE_CHOICES, default="operator")


class RoleForm(FlaskForm):
    role = SelectField("Role", choices=ROLE_CHOICES)
