"""Browse and filter the audit trail."""
from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from flask import Blueprint, render_template, request
from flask_wtf import FlaskForm
from wtforms import DateField, SelectChoice, SelectField, StringField, ValidationError
from wtforms.validators import Length, Optional
from wtforms.widgets import TextInput

from portal.access import roles
from portal.services.admin import audit
from portal.web.audit import links

bp = Blueprint("audit", __name__, url_prefix="/audit")
bp.add_app_template_global(links.object_url, "audit_object_url")

DATE_HELP = "YYYY-MM-DD, for example 2026-03-31"


class DayField(DateField):
    """A date typed as text: a browser's date input sends "" for a half-typed date, which the server could only
    ignore; typed text reaches the server, which says what is wrong with it."""

    widget = TextInput()

    def process_formdata(self, valuelist: list[str]) -> None:
        valuelist = [value.strip() for value in valuelist]
        try:
            super().process_formdata(valuelist)
        except ValueError:
            raise ValueError(f"“{valuelist[0][:40]}” is not a date: enter it as {DATE_HELP}.") from None


class AuditFilterForm(FlaskForm):
    class Meta:
        csrf = False  # a GET search form changes nothing

    actor = StringField("Actor", validators=[Optional(), Length(max=64)])
    action = StringField("Action starts with", validators=[Optional(), Length(max=64)])
    object_type = SelectField("Object", validators=[Optional()], validate_choice=False)
    object_id = StringField("Object id", validators=[Optional(), Length(max=128)])
    since = DayField("From (UTC)", validators=[Optional()], description=DATE_HELP,
                     render_kw={"inputmode": "numeric", "autocomplete": "off", "placeholder": "YYYY-MM-DD"})
    until = DayField("To (UTC, inclusive)", validators=[Optional()], description=DATE_HELP,
                     render_kw={"inputmode": "numeric", "autocomplete": "off", "placeholder": "YYYY-MM-DD"})

    def validate_until(self, field: DayField) -> None:
        if field.data and self.since.data and field.data < self.since.data:
            raise ValidationError(f"The end date is before the start date ({self.since.data.isoformat()}).")


def _day(d: date | None, *, end: bool = False) -> datetime | None:
    if d is None or (end and d == date.max):  # the last day there is: no upper bound
        return None
    start = datetime.combine(d, time.min, tzinfo=UTC)
    return start + timedelta(days=1) if end else start


@bp.get("/")
@roles("admin", "auditor")
def index():
    form = AuditFilterForm(request.args)
    form.object_type.choices = [SelectChoice("", "any")] + [SelectChoice(t, t) for t in audit.object_types()]
    before = request.args.get("before", type=int)
    page = audit.AuditPage(events=[], next_before=None)
    if form.validate():
        flt = audit.AuditFilter(actor=form.actor.data or "", action=form.action.data or "",
                                object_type=form.object_type.data or "", object_id=form.object_id.data or "",
                                since=_day(form.since.data), until=_day(form.until.data, end=True))
        page = audit.search(flt, before=before)
    args = {k: v for k, v in request.args.items() if k != "before" and v}
    return render_template("audit/index.html", form=form, page=page, args=args)
