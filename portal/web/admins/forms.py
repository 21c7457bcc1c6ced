from flask_wtf import FlaskForm
from wtforms import SelectChoice, SelectField, StringField
from wtforms.validators import DataRequired, Length

from portal.models import ROLES

ROLE_LABELS = {
    "admin": "admin: everything",
    "operator": "operator: tenants and synchronisation",
    "auditor": "auditor: read-only",
}
ROLE_CHOICES = [SelectChoice(role, ROLE_LABELS[role]) for role in ROLES]


class AdminCreateForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=64)],
                           description="Lower-case letters, digits, '.', '_', '@' or '-'.")
    role = SelectField("Role", choices=ROLE_CHOICES, default="operator")


class RoleForm(FlaskForm):
    role = SelectField("Role", choices=ROLE_CHOICES)
