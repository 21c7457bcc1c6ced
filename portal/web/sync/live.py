"""The live parts of the tenant page and the sync page as JSON, for static/js/sync.js: a version that changes only
when what the part shows changes, whether anything is still open (the script stops polling when not), a sentence
for the page's polite live region, each product's state, and the part itself rendered by the same template as the
page (so the words stay those of web/sync/presentation.py). Everyone who reads the pages may read these."""
from __future__ import annotations

from flask import abort, jsonify, render_template

from portal.access import roles
from portal.services.errors import NotFound
from portal.services.outbox import reads
from portal.services.outbox.products import LABELS
from portal.web.forms import ConfirmForm
from portal.web.sync import presentation
from portal.web.sync.blueprint import READERS, bp


@bp.get("/tenants/<tenant_id>/live")
@roles(*READERS)
def tenant_live(tenant_id: str):
    try:
        tenant, view = reads.tenant_sync_of(tenant_id)
    except NotFound as exc:
        abort(404, exc.message)
    html = render_template("sync/_tenant_live.html", tenant_id=tenant.tenant_id, tenant_key=tenant.tenant_key,
                           sync_view=view, sync_labels=LABELS, confirm=ConfirmForm())
    return _answer({
        "tenantId": tenant.tenant_id, "version": presentation.tenant_version(view), "settled": view.settled,
        "running": view.running, "retryable": view.retryable,
        "announce": presentation.announcement(view.states, LABELS),
        "products": {product: presentation.state_json(state) for product, state in view.states.items()},
        "html": html})


@bp.get("/live")
@roles(*READERS)
def overview_live():
    overview = reads.overview()
    html = render_template("sync/_overview_live.html", overview=overview, labels=LABELS, confirm=ConfirmForm())
    return _answer({"version": presentation.overview_version(overview), "settled": overview.settled,
                    "counts": overview.counts, "announce": presentation.overview_announcement(overview),
                    "html": html})


def _answer(body: dict):
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response
