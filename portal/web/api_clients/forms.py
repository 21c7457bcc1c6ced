"""API client forms: shape only; the name rules live in services.api_clients."""
from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import DataRequired, Length


class ApiClientCreateForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=128)],
                       description="Who uses the key, e.g. \"CI pipeline\": letters, digits, spaces, '.', '_' or '-'.")
