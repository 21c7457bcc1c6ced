"""Browse and filter the audit trail."""
from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from flask import Blueprint, render_template, request
from flask_wtf import FlaskForm
from wtforms import DateField, SelectChoice, SelectField, StringField
from wtforms.validators import Length, Optional

from portal.access import roles
from portal.services.admin import audit

bp = Blueprint("audit", __name__, url_prefix="/audit")


class AuditFilterForm(FlaskForm):
    class Meta:
        csrf = False  # a GET search form changes nothing

    actor = StringField("Actor", validators=[Optional(), Length(max=64)])
    action = StringField("Action starts with", validators=[Optional(), Length(max=64)])
    object_type = SelectField("Object", validators=[Optional()], validate_choice=False)
    object_id = StringField("Object id", validators=[Optional(), Length(max=128)])
    since = DateField("From (UTC)", validators=[Optional()])
    until = DateField("To (UTC, inclusive)", validators=[Optional()])


def _day(d, *, end: bool = False) -> datetime | None:
    if d is None:
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
