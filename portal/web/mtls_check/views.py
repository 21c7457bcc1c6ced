"""The live mutual-TLS check page: a form, and the result with the steps taken."""
from __future__ import annotations

from flask import Blueprint, current_app, render_template

from portal.access import roles
from portal.services.certificates import mtls_check
from portal.services.errors import ValidationError
from portal.web.helpers import apply_errors
from portal.web.mtls_check.forms import MtlsCheckForm

bp = Blueprint("mtls_check", __name__, url_prefix="/mtls-check")


def _page(form: MtlsCheckForm, result: mtls_check.MtlsCheckResult | None = None, status: int = 200):
    return render_template("mtls_check/index.html", form=form, result=result), status


@bp.get("/")
@roles("admin", "operator", "auditor")
def index():
    return _page(MtlsCheckForm(data={"base_url": current_app.config.get("IS7_BASE_URL") or "", "timeout": 10.0}))


@bp.post("/")
@roles("admin")
def run():
    form = MtlsCheckForm()
    if not form.validate_on_submit():
        return _page(form, status=400)
    try:
        result = mtls_check.check_with_stored(form.base_url.data, form.identity_user.data, form.timeout.data)
    except ValidationError as exc:
        apply_errors(form, exc)
        return _page(form, status=400)
    return _page(form, result)
