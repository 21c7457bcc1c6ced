"""Forms used by several areas."""
from flask_wtf import FlaskForm


class ConfirmForm(FlaskForm):
    """CSRF-only form behind every POST button (disable, reset, sign out)."""
