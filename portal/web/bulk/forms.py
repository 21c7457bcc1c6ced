"""Bulk onboarding form: shape only. Formats, encodings, row caps and every field rule are the service's."""
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import BooleanField


class UploadForm(FlaskForm):
    file = FileField("File", validators=[FileRequired("Choose a CSV or JSON Lines file.")],
                     description="CSV (.csv) or JSON Lines (.jsonl, .ndjson), UTF-8.")
    dry_run = BooleanField("Dry run: validate every row, register nothing", default=True)
    check_connections = BooleanField("Test each identity provider's connection while registering", default=False)
