"""The live check's form: shape only; services.mtls_check validates the values."""
from flask_wtf import FlaskForm
from wtforms import FloatField, StringField
from wtforms.validators import InputRequired, Length, Optional


class MtlsCheckForm(FlaskForm):
    base_url = StringField("IS 7 base URL", validators=[InputRequired(), Length(max=2048)],
                           description="IS's own address, e.g. https://is.example.com:9443 (the portal adds "
                                       "/api/server/v1/tenants?limit=1).")
    identity_user = StringField("WSO2-Identity-User", validators=[Optional(), Length(max=255)],
                                description="The user the call runs as, e.g. admin or admin@tenant.com. Leave it "
                                            "empty to test the system mappings (no header).")
    timeout = FloatField("Timeout (seconds)", default=10.0, validators=[InputRequired()])
