"""API client forms: shape only; the rules (names, scopes, tenant limits, expiry) live in services.api_clients."""
from flask_wtf import FlaskForm
from wtforms import DateField, IntegerField, RadioField, SelectMultipleField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from portal.services.admin.api_clients import SCOPE_LABELS, TENANT_SCOPE_LABELS

EXPIRY_HELP = "Optional. The key stops working at 00:00 UTC on this day; leave blank for no expiry."


class ApiClientCreateForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=128)],
                       description="Who uses the key, e.g. \"CI pipeline\": letters, digits, spaces, '.', '_' or '-'.")
    scopes = SelectMultipleField("Scopes: what the client may do", default=["read"],
                                 choices=[SelectChoice(name, f"{name}: {text}") for name, text in SCOPE_LABELS.items()],
                                 option_widget=CheckboxInput(), widget=ListWidget(prefix_label=False),
                                 validate_choice=False,
                                 description="Give only what the client needs; read only is the default. Each "
                                             "/v1 operation requires exactly one of these.")
    tenant_scope = RadioField("Tenants: which the client may see and change", default="all",
                              choices=[SelectChoice(k, v) for k, v in TENANT_SCOPE_LABELS.items()],
                              validate_choice=False,
                              description="A limited client gets 404 for every other tenant, as if it did not "
                                          "exist, and lists only its own.")
    tenant_pattern = StringField("Tenant id pattern", validators=[Length(max=64)],
                                 description="Only with \"Only tenant ids matching a pattern\": e.g. ci-* ('*' any "
                                             "run of characters, '?' one character; ignoring case).")
    expires_at = DateField("Key expires on (UTC)", validators=[Optional()], description=EXPIRY_HELP)


class ApiClientRotateForm(FlaskForm):
    overlap_hours = IntegerField("Overlap (hours)", default=24,
                                 validators=[InputRequired(message="Give the hours, 0 or more.")],
                                 description="How long the old key keeps working beside the new one, so callers "
                                             "can switch over (0 to 720; never past the old key's own expiry). "
                                             "A key replaced by an earlier rotation stops at once.")
    expires_at = DateField("New key expires on (UTC)", validators=[Optional()], description=EXPIRY_HELP)
