"""Forms of the sync pages: shape only; the service decides what a fix means."""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import HiddenField
from wtforms.validators import DataRequired, Length


class FixForm(FlaskForm):
    """One reconcile fix: which tenant (by domain) and which action, as the page's button sent them."""

    domain = HiddenField(validators=[DataRequired(), Length(max=253)])
    action = HiddenField(validators=[DataRequired(), Length(max=16)])
