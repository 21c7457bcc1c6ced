"""Sync pages: the outbox overview, "retry now" (one tenant or every failed job), one job (inspect, retry,
discard), the live state of a page of tenants as JSON for the list's script, and reconcile with its fixes. Thin:
parse, call one service, render or redirect."""
from __future__ import annotations

from flask import abort, flash, jsonify, redirect, render_template, request, url_for

from portal.access import roles
from portal.services.errors import Conflict, NotFound, ServiceError
from portal.services.outbox import decommission, reads, reconcile, store
from portal.services.outbox.products import LABELS
from portal.web.forms import ConfirmForm
from portal.web.helpers import current_actor
from portal.web.sync import presentation
from portal.web.sync.blueprint import READERS, WRITERS, bp
from portal.web.sync.forms import FixForm

MAX_STATE_KEYS = 200
MAX_RECONCILE_ROWS = 500  # more is for the command: flask --app portal reconcile


@bp.get("/")
@roles(*READERS)
def index():
    return render_template("sync/index.html", overview=reads.overview(), confirm=ConfirmForm(), labels=LABELS)


@bp.post("/retry")
@roles(*WRITERS)
def retry_all():
    if ConfirmForm().validate_on_submit():
        count = store.retry_now(None, current_actor())
        flash(f"{count} job(s) will be tried again now." if count else "No failed or waiting job.", "success")
    return redirect(url_for("sync.index"))


@bp.post("/tenants/<tenant_id>/retry")
@roles(*WRITERS)
def retry_tenant(tenant_id: str):
    if ConfirmForm().validate_on_submit():
        try:
            count = store.retry_now(tenant_id, current_actor())
        except NotFound:
            abort(404)
        except Conflict as exc:  # a job of this tenant runs now
            flash(exc.message, "error")
        else:
            flash(f"Tenant {tenant_id}: {count} job(s) will be tried again now." if count else
                  f"Tenant {tenant_id} has no failed or waiting job.", "success")
    return redirect(url_for("tenants.detail", tenant_id=tenant_id))


@bp.get("/jobs/<int:job_id>")
@roles(*READERS)
def job(job_id: int):
    try:
        view = reads.get_job(job_id)
    except NotFound:
        abort(404, f"No outbox job {job_id}: it may belong to a tenant that was decommissioned.")
    return render_template("sync/job.html", view=view, job=view.job, confirm=ConfirmForm(),
                           labels=LABELS)


@bp.post("/jobs/<int:job_id>/retry")
@roles(*WRITERS)
def job_retry(job_id: int):
    return _job_action(job_id, store.retry_job, "Job {id} will be tried again now.")


@bp.post("/jobs/<int:job_id>/discard")
@roles(*WRITERS)
def job_discard(job_id: int):
    return _job_action(job_id, store.discard_job, "Job {id} was discarded: it will not be delivered, and the "
                                                 "tenant's later changes no longer wait for it.")


def _job_action(job_id: int, action, done: str):
    if ConfirmForm().validate_on_submit():
        try:
            action(job_id, current_actor())
        except NotFound:
            abort(404)
        except Conflict as exc:  # running, done or discarded already
            flash(exc.message, "error")
        else:
            flash(done.format(id=job_id), "success")
    return redirect(url_for("sync.job", job_id=job_id))


@bp.get("/states")
@roles(*READERS)
def states():
    """{tenant_key: {product: {status, text, title}}} for the tenant ids in ?t=: the list's script polls it."""
    keys = [k.lower() for k in request.args.getlist("t")[:MAX_STATE_KEYS]]
    found = reads.states_for_keys(keys)
    return jsonify({key: {product: {"status": s.status, "word": presentation.word(s), "badge": presentation.badge(s),
                                    "title": presentation.describe(s), "retrying": s.retrying}
                          for product, s in by_product.items()} for key, by_product in found.items()})


@bp.get("/reconcile")
@roles(*READERS)
def reconcile_page():
    report = reconcile.compare(include_in_sync=request.args.get("all") == "1")
    return render_template("sync/reconcile.html", report=report, rows=report.rows[:MAX_RECONCILE_ROWS],
                           labels=LABELS, show_all=request.args.get("all") == "1",
                           decommissions=decommission.recent(10))


@bp.post("/reconcile/fix")
@roles(*WRITERS)
def reconcile_fix():
    form = FixForm()
    if form.validate_on_submit():
        try:
            flash(reconcile.fix(form.domain.data, form.action.data, current_actor()), "success")
        except ServiceError as exc:  # not found, not understood, or the product could not be read
            flash(exc.message, "error")
    else:
        flash("The fix was not understood; reload the page and try again.", "error")
    return redirect(url_for("sync.reconcile_page"))
