"""Bulk onboarding: upload CSV or JSON Lines, dry run, apply, progress."""
from __future__ import annotations

from flask import Blueprint, Response, abort, current_app, flash, jsonify, redirect, render_template, request, url_for
from werkzeug.exceptions import RequestEntityTooLarge

from portal.access import roles
from portal.extensions import csrf
from portal.services.errors import NotFound, ValidationError
from portal.services.tenants import bulk
from portal.web.bulk.forms import UploadForm
from portal.web.forms import ConfirmForm
from portal.web.helpers import current_actor

bp = Blueprint("bulk", __name__, url_prefix="/tenants/bulk")

READERS = ("admin", "operator", "auditor")
WRITERS = ("admin", "operator")


def _job_or_404(job_id: int):
    try:
        return bulk.get_job(job_id)
    except NotFound:
        abort(404)


def _page(form: UploadForm | None = None, status: int = 200):
    """The upload form (a blank one unless given, with its errors) above the recent jobs."""
    return render_template("bulk/index.html", form=form if form is not None else UploadForm(), jobs=bulk.list_jobs(),
                           limits=bulk.max_upload_text()), status


@bp.get("/")
@roles(*READERS)
def index():
    return _page()


@bp.post("/")
@roles(*WRITERS)
@csrf.exempt  # checked below, once the upload cap is raised: the global check would read the body at 2 MiB
def upload():
    request.max_content_length = current_app.config["BULK_MAX_BYTES"]
    if current_app.config["WTF_CSRF_ENABLED"]:
        csrf.protect()  # a bad token is the usual 400 "form expired"
    form = UploadForm()
    if form.validate_on_submit():
        upload_file = form.file.data
        try:
            job = bulk.create_job(upload_file.filename or "", upload_file.read(), current_actor(),
                                  dry_run=form.dry_run.data, check_connections=form.check_connections.data)
        except bulk.FileProblem as exc:
            form.file.errors = list(exc.problems)
        else:
            return redirect(url_for("bulk.job", job_id=job.id))
    return _page(form, 400)


@bp.errorhandler(RequestEntityTooLarge)
def too_large(_exc: RequestEntityTooLarge):
    """The upload is over the cap: say so on the form instead of the generic 413 page."""
    form = UploadForm(formdata=None)
    form.file.errors = [f"The file is too large: bulk onboarding takes {bulk.max_upload_text()}. "
                        "Split it into smaller files."]
    return _page(form, 413)


@bp.get("/<int:job_id>")
@roles(*READERS)
def job(job_id: int):
    job = _job_or_404(job_id)
    shown, count = bulk.problems(job)
    return render_template("bulk/job.html", job=job, progress=bulk.progress(job), problems=shown,
                           problem_count=count, confirm=ConfirmForm())


@bp.get("/<int:job_id>/progress")
@roles(*READERS)
def progress(job_id: int):
    return jsonify(bulk.progress(_job_or_404(job_id)))


@bp.get("/<int:job_id>/report.csv")
@roles(*READERS)
def report(job_id: int):
    body = bulk.report_csv(_job_or_404(job_id))
    return Response(body, mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="bulk-job-{job_id}-report.csv"'})


@bp.post("/<int:job_id>/apply")
@roles(*WRITERS)
def apply(job_id: int):
    _job_or_404(job_id)
    if ConfirmForm().validate_on_submit():
        try:
            new = bulk.apply_job(job_id, current_actor())
        except ValidationError as exc:
            flash(exc.message, "error")
        else:
            return redirect(url_for("bulk.job", job_id=new.id))
    return redirect(url_for("bulk.job", job_id=job_id))
