"""Sharing pages: the direction switch with its settings, pre-flight and generated deployment.toml fragments; the
product connections with "Test connection". Thin: parse the form, call one service function, render or redirect."""
from __future__ import annotations

from flask import Response, abort, flash, redirect, render_template, request, url_for

from portal.access import roles
from portal.clients.checks import CheckResult
from portal.models.sharing import DIRECTIONS, PRODUCTS
from portal.services.errors import CheckFailed, Conflict, NotFound, ValidationError
from portal.services.sharing import connections, service as sharing, sharing_toml
from portal.web.forms import ConfirmForm
from portal.web.helpers import apply_errors, current_actor
from portal.web.sharing.blueprint import READERS, TESTERS, WRITERS, bp
from portal.web.sharing.forms import ConnectionForm, SharingForm


def _shown_direction() -> str:
    shown = request.args.get("show", "")
    return shown if shown in DIRECTIONS else sharing.direction()


def _page(form: SharingForm, *, status: int = 200, check: CheckResult | None = None,
          confirmation: sharing.ConfirmationRequired | None = None):
    shown = confirmation.target if confirmation else _shown_direction()
    stored = sharing.view()
    return render_template(
        "sharing/index.html", form=form, settings=stored, generated=sharing.render(shown), shown=shown,
        legs=sharing.trust_legs(stored["direction"]), connections=connections.all_connections(),
        labels=sharing.SHORT_LABELS, notify_endpoint=sharing.notify_endpoint(), check=check,
        confirmation=confirmation, forced_reason=sharing_toml.FORCED_SKIP_REASON, export_form=ConfirmForm(),
    ), status


def _mark_fields(form: SharingForm | ConnectionForm, exc: CheckFailed) -> None:
    """A failed check's panel tells the cause once; the form marks only the fields it names, not the cause again."""
    apply_errors(form, ValidationError(dict(exc.result.field_errors)))


def _prefilled() -> SharingForm:
    s = sharing.view()
    is_conn = connections.get("is")
    data = {**s, "identity_server_base_url": s["identity_server_base_url"] or (is_conn.base_url if is_conn else "")}
    return SharingForm(data=data)


@bp.get("/")
@roles(*READERS)
def index():
    return _page(_prefilled())


@bp.post("/")
@roles(*WRITERS)
def save():
    form = SharingForm()
    if not form.validate_on_submit():
        return _page(form, status=400)
    try:
        saved = sharing.set_direction(form.direction.data or "", form.settings(), current_actor(),
                                      confirm=bool(form.confirm.data), check=not form.skip_check.data)
    except sharing.ConfirmationRequired as exc:
        apply_errors(form, exc)
        return _page(form, status=409, confirmation=exc)
    except CheckFailed as exc:
        _mark_fields(form, exc)
        return _page(form, status=400, check=exc.result)
    except ValidationError as exc:
        apply_errors(form, exc)
        return _page(form, status=400)
    except Conflict as exc:
        flash(exc.message, "error")
        return _page(form, status=409)
    flash(f"Sharing saved: {sharing.SHORT_LABELS[saved.direction]}. Apply the generated configuration below to the "
          "products and restart them.", "success")
    return redirect(url_for("sharing.index"))


@bp.get("/config/<product>")
@roles(*READERS)
def config_download(product: str):
    return _config_file(product, _direction_arg())


@bp.post("/config/<product>/with-passwords")
@roles(*WRITERS)
def config_export(product: str):
    target = _direction_arg()
    if not ConfirmForm().validate_on_submit():
        abort(400, "The form expired: reload the page.")
    return _config_file(product, target, include_passwords=True)


def _direction_arg() -> str | None:
    """The optional ?direction= of a configuration file; an unknown one is a missing page."""
    target = request.args.get("direction") or None
    if target is not None and target not in DIRECTIONS:
        abort(404, "No such sharing direction.")
    return target


def _config_file(product: str, target: str | None, include_passwords: bool = False) -> Response:
    """The configuration file as an attachment; with passwords it must not be cached."""
    try:
        filename, text = sharing.download(product, target, current_actor(), include_passwords=include_passwords)
    except NotFound as exc:
        abort(404, exc.message)
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    if include_passwords:
        headers["Cache-Control"] = "no-store"
    return Response(text, mimetype="text/plain", headers=headers)


# --- Connections ----------------------------------------------------------------------------------------------------


def _product_or_404(product: str) -> str:
    if product not in PRODUCTS:
        abort(404, "The portal connects to IS 7 ('is') and API Manager ('apim').")
    return product


def _connections_page(results: dict[str, CheckResult] | None = None, status: int = 200):
    return render_template("sharing/connections.html", connections={p: connections.view(p) for p in PRODUCTS},
                           labels=connections.LABELS, results=results or {}, test_form=ConfirmForm(),
                           auth_label=connections.auth_label), status


def _connection_page(product: str, form: ConnectionForm, *, status: int = 200, check: CheckResult | None = None):
    if product == "apim":
        form.auth.choices = [c for c in form.auth.choices if c.value == "basic"]
    return render_template("sharing/connection_form.html", product=product, label=connections.LABELS[product],
                           form=form, stored=connections.view(product), check=check, test_form=ConfirmForm()), status


@bp.get("/connections")
@roles(*READERS)
def connection_list():
    return _connections_page()


@bp.get("/connections/<product>")
@roles(*READERS)
def connection_edit(product: str):
    stored = connections.view(_product_or_404(product))
    data = {k: v for k, v in stored.items() if k != "password"}
    data.setdefault("auth", "mtls" if product == "is" else "basic")
    data.setdefault("connect_timeout", connections.DEFAULT_TIMEOUTS[0])
    data.setdefault("read_timeout", connections.DEFAULT_TIMEOUTS[1])
    return _connection_page(product, ConnectionForm(data=data))


@bp.post("/connections/<product>")
@roles(*WRITERS)
def connection_save(product: str):
    form = ConnectionForm()
    _product_or_404(product)
    if not form.validate_on_submit():
        return _connection_page(product, form, status=400)
    try:
        connections.save(product, form.data_for_service(), current_actor(), check=not form.skip_check.data)
    except CheckFailed as exc:
        _mark_fields(form, exc)
        return _connection_page(product, form, status=400, check=exc.result)
    except ValidationError as exc:
        apply_errors(form, exc)
        return _connection_page(product, form, status=400)
    except Conflict as exc:
        flash(exc.message, "error")
        return _connection_page(product, form, status=409)
    note = "" if form.skip_check.data else " The connection test passed."
    flash(f"{connections.LABELS[product]} connection saved.{note}", "success")
    return redirect(url_for("sharing.connection_list"))


@bp.post("/connections/<product>/test")
@roles(*TESTERS)
def connection_test(product: str):
    _product_or_404(product)
    if not ConfirmForm().validate_on_submit():
        abort(400, "The form expired: reload the page.")
    return _connections_page({product: connections.test(product)})
