"""Certificate pages: list and upload, detail, delete; PKCS#12 truststores for each product."""
from __future__ import annotations

from flask import Response, abort, flash, redirect, render_template, url_for

from portal.access import roles
from portal.services.certificates import service as certificates, truststores
from portal.services.errors import Conflict, NotFound, ValidationError
from portal.web.certificates.blueprint import READERS, WRITERS, bp
from portal.web.certificates.forms import TruststoreForm, UploadForm
from portal.web.forms import ConfirmForm
from portal.web.helpers import apply_errors, current_actor, or_404


def _read(field) -> bytes | None:
    """At most one byte past the cap, so the service can say "too large" without holding a huge file."""
    storage = field.data
    if not storage or not getattr(storage, "filename", None):
        return None
    return storage.stream.read(certificates.MAX_UPLOAD_BYTES + 1)


def _index(form: UploadForm, status: int = 200):
    rows = [(cert, certificates.info(cert)) for cert in certificates.list_certificates()]
    return render_template("certificates/index.html", rows=rows, form=form, confirm=ConfirmForm(),
                           roles=certificates.ROLE_LABELS), status


@bp.get("/")
@roles(*READERS)
def index():
    return _index(UploadForm())


@bp.post("/")
@roles(*WRITERS)
def upload():
    form = UploadForm()
    if not form.validate_on_submit():
        return _index(form, 400)
    try:
        result = certificates.upload_certificate(
            form.role.data, _read(form.certificate) or b"", current_actor(), filename=form.certificate.data.filename,
            label=form.label.data or "", key_data=_read(form.private_key), key_passphrase=form.key_passphrase.data)
    except (ValidationError, Conflict) as exc:
        apply_errors(form, exc)
        return _index(form, 400)
    stored = ", ".join(c.label for c in result.stored)
    flash(f"Stored {len(result.stored)} certificate(s): {stored}." + (
        f" {len(result.skipped)} already stored, skipped." if result.skipped else ""), "success")
    if len(result.stored) == 1:
        return redirect(url_for("certificates.detail", cert_id=result.stored[0].id))
    return redirect(url_for("certificates.index"))


@bp.get("/<int:cert_id>")
@roles(*READERS)
def detail(cert_id: int):
    cert = or_404(certificates.get_certificate, cert_id)
    return render_template("certificates/detail.html", cert=cert, info=certificates.info(cert),
                           roles=certificates.ROLE_LABELS, confirm=ConfirmForm())


@bp.post("/<int:cert_id>/delete")
@roles(*WRITERS)
def delete(cert_id: int):
    if ConfirmForm().validate_on_submit():
        try:
            cert = certificates.delete_certificate(cert_id, current_actor())
        except NotFound as exc:
            abort(404, exc.message)
        flash(f"Certificate {cert.label} deleted.", "success")
    return redirect(url_for("certificates.index"))


@bp.get("/truststores")
@roles(*READERS)
def truststore_page():
    return _truststores({key: TruststoreForm(prefix=key) for key in truststores.PRODUCTS})


def _truststores(forms: dict[str, TruststoreForm], status: int = 200):
    contents = {key: [(c, truststores.alias(c)) for c in truststores.contents(key)] for key in truststores.PRODUCTS}
    return render_template("certificates/truststores.html", products=truststores.PRODUCTS, contents=contents,
                           forms=forms, roles=certificates.ROLE_LABELS), status


@bp.post("/truststores/<product>")
@roles("admin", "operator")
def truststore_download(product: str):
    if product not in truststores.PRODUCTS:
        abort(404, f"No truststore for {product!r}.")
    forms = {key: TruststoreForm(prefix=key) for key in truststores.PRODUCTS}
    form = forms[product]
    if not form.validate_on_submit():
        return _truststores(forms, 400)
    try:
        store = truststores.build_truststore(product, form.password.data or "", current_actor())
    except ValidationError as exc:
        apply_errors(form, exc)
        return _truststores(forms, 400)
    return Response(store.data, mimetype="application/x-pkcs12",
                    headers={"Content-Disposition": f'attachment; filename="{store.filename}"',
                             "Cache-Control": "no-store"})
